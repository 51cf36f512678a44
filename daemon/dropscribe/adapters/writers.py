"""Is anyone still writing this file? Asked of the kernel, not guessed from timestamps.

A recorder that keeps its file open and pauses for longer than the settle time leaves a file that looks
finished. On a local filesystem the kernel knows better: a read lease (``F_SETLEASE``) is refused with
``EAGAIN`` while any process holds the file open for writing. Leases need the file's owner or
``CAP_LEASE`` and a filesystem that supports them; where they are not available, the open descriptors
listed under ``/proc`` are searched instead (which sees the processes this service may inspect: its own
user's, or all of them with ``CAP_SYS_PTRACE``). Writers on other hosts of a network share are invisible
to both; the content checks and the watch on ``done/`` cover those.

A lease that is broken while held makes the kernel signal the holder with SIGIO, whose default action
ends the process; the service ignores SIGIO before it asks (see ``ignore_lease_breaks``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
from collections.abc import Iterator

_ACCESS_MODE = os.O_ACCMODE


def ignore_lease_breaks() -> None:
    """Call once from the main thread: a lease broken during the check must not end the process."""
    signal.signal(signal.SIGIO, signal.SIG_IGN)


def held_for_writing(fd: int) -> bool:
    """True if some process has the file behind ``fd`` (opened read-only by us) open for writing."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        if exc.errno == errno.EAGAIN:
            return True
        # not the owner and no CAP_LEASE, or a filesystem without leases: ask /proc instead
        st = os.fstat(fd)
        return any(writer_fds(st.st_dev, st.st_ino))
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    return False


def writer_fds(dev: int, ino: int, proc: str = "/proc") -> Iterator[tuple[int, int]]:
    """(pid, fd) of every descriptor open for writing on the file (dev, ino) that we can see."""
    try:
        pids = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return
    for pid in pids:
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:  # gone, or not ours to look at
            continue
        for fd in fds:
            try:
                st = os.stat(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if st.st_ino != ino or st.st_dev != dev:
                continue
            if _open_for_writing(f"{proc}/{pid}/fdinfo/{fd}"):
                yield int(pid), int(fd)


def _open_for_writing(fdinfo: str) -> bool:
    try:
        with open(fdinfo, encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & _ACCESS_MODE in (os.O_WRONLY, os.O_RDWR)
    except (OSError, ValueError, IndexError):
        return False
    return False
