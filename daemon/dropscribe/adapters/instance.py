"""One service per journal: an exclusive ``flock`` on ``<state.path>.lock``, and who holds it.

The lock belongs to the open file, so it goes away with the process however that ends (kill -9, power
loss, ``os._exit``): there is never a stale lock to clean up. The file itself stays; it names the last
holder (``{"pid", "host", "started_at"}``), written after the lock is taken.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropscribe.core.errors import DropscribeError

# `dropscribe status` takes a shared lock for a moment to see whether anyone holds the exclusive one;
# a service starting in that instant must not mistake it for a second service
ACQUIRE_GRACE_S = 1.0
_RETRY_S = 0.02


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) the lock; fields are None while the holder has not written them yet."""

    pid: int | None
    host: str | None
    started_at: float | None

    def describe(self) -> str:
        pid = self.pid if self.pid is not None else "?"
        host = self.host or "?"
        since = ""
        if self.started_at is not None:
            since = " since " + time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.started_at))
        return f"pid {pid} on {host}{since}"


@dataclass(frozen=True)
class ServiceState:
    """The answer of :func:`probe`: whether a service holds the lock, and the last holder on record."""

    running: bool
    holder: Holder | None

    def as_dict(self) -> dict[str, Any]:
        """``running`` and the holder's ``pid``/``host``/``started_at``; when stopped, ``last_holder``."""
        holder = self.holder
        last = None
        if not self.running and holder is not None:
            last = {"pid": holder.pid, "host": holder.host, "started_at": holder.started_at}
        live = holder if self.running else None
        return {
            "running": self.running,
            "pid": live.pid if live else None,
            "host": live.host if live else None,
            "started_at": live.started_at if live else None,
            "last_holder": last,
        }


class AlreadyRunningError(DropscribeError):
    """Another process holds the lock of this journal."""

    def __init__(self, lock_file: Path, holder: Holder) -> None:
        super().__init__(f"another service is already using this journal ({lock_file}): {holder.describe()}")
        self.lock_file = lock_file
        self.holder = holder


def lock_path(state_path: Path) -> Path:
    """``<state.path>.lock``, beside the journal it guards (through any symlink to the journal)."""
    resolved = state_path.resolve()
    return resolved.with_name(resolved.name + ".lock")


def _read_holder(fd: int) -> Holder:
    """Parse the lock file; an empty or half-written one (its holder is starting) gives None fields."""
    chunks = []
    offset = 0
    while True:
        chunk = os.pread(fd, 4096, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    try:
        data: Any = json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return Holder(None, None, None)
    pid, host, started_at = data.get("pid"), data.get("host"), data.get("started_at")
    return Holder(
        pid=pid if isinstance(pid, int) else None,
        host=host if isinstance(host, str) else None,
        started_at=float(started_at) if isinstance(started_at, int | float) else None,
    )


def _try_lock(fd: int, operation: int) -> bool:
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


class InstanceLock:
    """The exclusive lock of one journal, held until :meth:`release` or the end of the process."""

    def __init__(self, path: Path, fd: int, holder: Holder) -> None:
        self.path = path
        self.holder = holder
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, state_path: Path) -> InstanceLock:
        """Take the lock or raise :class:`AlreadyRunningError` naming the holder."""
        path = lock_path(state_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        try:
            deadline = time.monotonic() + ACQUIRE_GRACE_S
            while not _try_lock(fd, fcntl.LOCK_EX):
                if time.monotonic() >= deadline:
                    raise AlreadyRunningError(path, _read_holder(fd))
                time.sleep(_RETRY_S)
            holder = Holder(pid=os.getpid(), host=socket.gethostname(), started_at=time.time())
            body = json.dumps({"pid": holder.pid, "host": holder.host, "started_at": holder.started_at})
            os.ftruncate(fd, 0)
            os.pwrite(fd, (body + "\n").encode("utf-8"), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, holder)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor of the open file drops the flock
            self._fd = None

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def probe(state_path: Path) -> ServiceState:
    """Is a service running on this journal, and who? Takes a shared lock for an instant, never waits."""
    path = lock_path(state_path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return ServiceState(running=False, holder=None)
    try:
        free = _try_lock(fd, fcntl.LOCK_SH)
        if free:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        holder = _read_holder(fd)
    finally:
        os.close(fd)
    if free and holder == Holder(None, None, None):
        return ServiceState(running=False, holder=None)
    return ServiceState(running=not free, holder=holder)
