"""Writers that copy a recording into a watched folder the way real transfers do: slowly, in pieces.

Each writer copies ``src`` to ``dst`` in chunks with pauses, the way one kind of client fills a
drop folder (the transfer temp names the scanner ignores are listed in README.md, "How a file
travels"), and returns the SHA-256 of the bytes it left under ``dst``. Writers are plain blocking
functions; run several at once with :func:`run_transfers`, which also records when each one started
and finished.

Every writer takes ``marks``: a list that receives the ``time.monotonic()`` of each change it makes
that a ``stat`` can see (create, write, truncate, rename, utime; not fsync or close, which change
neither size nor mtime). The largest gap between two marks is the writer's real longest pause, which
can exceed the requested one on a busy machine; tests use it to tell "paused shorter than settle_s"
from "paused longer" honestly.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CHUNK_BYTES = 64 * 1024
_RSYNC_ALPHABET = string.ascii_letters + string.digits


def _chunks(src: Path, chunk_bytes: int) -> Iterator[bytes]:
    with src.open("rb") as handle:
        while block := handle.read(chunk_bytes):
            yield block


def _mark(marks: list[float] | None) -> None:
    if marks is not None:
        marks.append(time.monotonic())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _copy_times(src: Path, dst: Path, marks: list[float] | None) -> None:
    """Give ``dst`` the source's (old) timestamps, as ``rsync -t``, ``scp -p`` and WinSCP do."""
    st = src.stat()
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    _mark(marks)


def _slow_write(fd: int, src: Path, chunk_bytes: int, pause_s: float, marks: list[float] | None) -> str:
    """Write ``src`` into the open ``fd`` chunk by chunk, pausing before each chunk; returns its sha."""
    digest = hashlib.sha256()
    for block in _chunks(src, chunk_bytes):
        time.sleep(pause_s)  # also before the first chunk: clients create the file, then start
        _write_all(fd, block)
        _mark(marks)
        digest.update(block)
    return digest.hexdigest()


def chunked_copy(
    src: Path, dst: Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES, pause_s: float = 0.2,
    *, marks: list[float] | None = None,
) -> str:  # fmt: skip
    """A plain copy (Explorer, Finder, ``cp`` over a slow link): one handle open throughout, fsync last."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    _mark(marks)
    try:
        sha = _slow_write(fd, src, chunk_bytes, pause_s, marks)
        os.fsync(fd)
    finally:
        os.close(fd)
    return sha


def held_open_then_close(
    src: Path, dst: Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES, pause_s: float = 0.2,
    *, hold_s: float, tail_bytes: int = 4096, resume: threading.Event | None = None,
    marks: list[float] | None = None,
) -> str:  # fmt: skip
    """Write all but the last ``tail_bytes``, keep the handle open idle, then append the tail and close.

    The idle hold lasts ``hold_s``, or until ``resume`` is set if one is given (``hold_s`` is then
    the longest wait). A hold shorter than settle_s must never let the file through the gate; a
    longer one is indistinguishable from a finished file by size and mtime, so the service may take
    the head early and must notice the tail arriving (R6).
    """
    data = src.read_bytes()
    if not 0 < tail_bytes < len(data):
        raise ValueError(f"tail_bytes must be within (0, {len(data)}), got {tail_bytes}")
    head, tail = data[:-tail_bytes], data[-tail_bytes:]
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    _mark(marks)
    try:
        for at in range(0, len(head), chunk_bytes):
            time.sleep(pause_s)
            _write_all(fd, head[at : at + chunk_bytes])
            _mark(marks)
        if resume is not None:
            resume.wait(hold_s)
        else:
            time.sleep(hold_s)
        _write_all(fd, tail)
        _mark(marks)
        os.fsync(fd)
    finally:
        os.close(fd)
    return hashlib.sha256(data).hexdigest()


def rsync_temp_name(dst: Path) -> Path:
    """rsync's in-progress name: ``.<name>.XXXXXX`` in the destination folder."""
    suffix = "".join(secrets.choice(_RSYNC_ALPHABET) for _ in range(6))
    return dst.with_name(f".{dst.name}.{suffix}")


def rsync_style(
    src: Path, dst: Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES, pause_s: float = 0.2,
    *, keep_times: bool = True, marks: list[float] | None = None,
) -> str:  # fmt: skip
    """rsync: write ``.<name>.XXXXXX`` beside the target, set the source's mtime (``-t``), rename it."""
    return _write_then_rename(src, dst, rsync_temp_name(dst), chunk_bytes, pause_s, keep_times, marks)


def filepart_style(
    src: Path, dst: Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES, pause_s: float = 0.2,
    *, keep_times: bool = True, marks: list[float] | None = None,
) -> str:  # fmt: skip
    """WinSCP (SFTP, files over 100 KB): write ``<name>.filepart``, then rename it to ``<name>``."""
    tmp = dst.with_name(dst.name + ".filepart")
    return _write_then_rename(src, dst, tmp, chunk_bytes, pause_s, keep_times, marks)


def _write_then_rename(
    src: Path, dst: Path, tmp: Path, chunk_bytes: int, pause_s: float, keep_times: bool,
    marks: list[float] | None,
) -> str:  # fmt: skip
    sha = chunked_copy(src, tmp, chunk_bytes, pause_s, marks=marks)
    if keep_times:
        _copy_times(src, tmp, marks)
    os.rename(tmp, dst)
    _mark(marks)
    return sha


def grow_in_place(
    src: Path, dst: Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES, pause_s: float = 0.2,
    *, preserve_times: bool = False, marks: list[float] | None = None,
) -> str:  # fmt: skip
    """scp (OpenSSH sink): the final name opened without truncation, grown in place, cut to size, closed.

    With ``preserve_times`` (``scp -p``) the mtime is set back to the source's old time after the
    close, so the last change the gate sees moves mtime backwards.
    """
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    _mark(marks)
    try:
        sha = _slow_write(fd, src, chunk_bytes, pause_s, marks)
        os.ftruncate(fd, src.stat().st_size)
        _mark(marks)
    finally:
        os.close(fd)
    if preserve_times:
        _copy_times(src, dst, marks)
    return sha


def per_page_reopen(
    src: Path, dst: Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES, pause_s: float = 0.2,
    *, marks: list[float] | None = None,
) -> str:  # fmt: skip
    """A scanner or recorder over SMB: open, append one page, close; reopen by name for the next page."""
    digest = hashlib.sha256()
    for block in _chunks(src, chunk_bytes):
        time.sleep(pause_s)
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, block)
        finally:
            os.close(fd)
        _mark(marks)
        digest.update(block)
    return digest.hexdigest()


#: Every writer by the name tests use for it.
STYLES: dict[str, Callable[..., str]] = {
    "chunked_copy": chunked_copy,
    "held_open": held_open_then_close,
    "rsync": rsync_style,
    "filepart": filepart_style,
    "scp_in_place": grow_in_place,
    "per_page_reopen": per_page_reopen,
}


@dataclass(frozen=True)
class Transfer:
    """One planned write: a label, where the file ends up, and the call that writes it.

    ``write`` is called with a ``marks`` keyword (see the module docstring).
    """

    style: str
    dst: Path
    write: Callable[..., str]


@dataclass
class Written:
    """What a finished transfer left behind, with wall-clock start and end and its real longest pause."""

    style: str
    dst: Path
    sha256: str
    started_at: float
    finished_at: float
    marks: list[float] = field(default_factory=list)
    error: str | None = None  # an OSError, e.g. the file was moved away from under the writer

    @property
    def longest_gap_s(self) -> float:
        """The longest time the file stayed unchanged while the writer was still at work."""
        return max((b - a for a, b in zip(self.marks, self.marks[1:], strict=False)), default=0.0)


def run_transfers(transfers: Sequence[Transfer]) -> list[Written]:
    """Run every transfer in its own thread, all at once; results in the order given.

    A writer that hits an ``OSError`` (typically: the service moved the file away while it was still
    being written) is reported in ``Written.error`` with an empty ``sha256``, so a test can say which
    file was taken early instead of dying on the first traceback. Other exceptions propagate.
    """

    def one(transfer: Transfer) -> Written:
        marks: list[float] = []
        started = time.time()
        try:
            sha = transfer.write(marks=marks)
        except OSError as exc:
            return Written(transfer.style, transfer.dst, "", started, time.time(), marks, repr(exc))
        return Written(transfer.style, transfer.dst, sha, started, time.time(), marks)

    if not transfers:
        return []
    with ThreadPoolExecutor(len(transfers), thread_name_prefix="writer") as pool:
        futures = [pool.submit(one, t) for t in transfers]
        return [f.result() for f in futures]
