"""Reading small support files (rule files, context files) the way recordings are opened.

:func:`open_beneath` reads a file named by a path relative to a folder (the inbox) without following a
link at any component below that folder, so a name swapped for a link between a check and the open
cannot lead outside it: the walk starts from an ``O_DIRECTORY`` descriptor of the folder and opens each
component relative to the previous one with ``O_NOFOLLOW``. Linux's ``openat2(RESOLVE_BENEATH |
RESOLVE_NO_SYMLINKS)`` does the same in one call, but Python has no binding for it; the per-component
walk is the portable equivalent. :func:`read_capped` is for files the admin names (links allowed).

Both open with ``O_NONBLOCK``, so a FIFO cannot block the caller, and judge what was opened on the
descriptor (``fstat``): only a regular file no larger than the cap is read, and never more than the cap
plus one byte, so a sparse multi-gigabyte file costs nothing.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePath

_FILE_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
# O_PATH (Linux): walking through a folder needs only search permission, as it does for a path
_DIR_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC
_LINK_REASON = "is a symbolic link (links are not followed)"


@dataclass(frozen=True)
class Contents:
    """The bytes of a file and the ``fstat`` of the very descriptor they were read from."""

    data: bytes
    stat: os.stat_result


class RefusedError(Exception):
    """What the path names is not a file to read: a link, not a regular file, too large, or a path that
    leaves its folder. ``path`` is the part that was refused (a folder on the way, or the file) as the
    caller gave it; ``reason`` completes ``<path> ...``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path} {reason}")
        self.path = path
        self.reason = reason


def open_beneath(root: Path, relpath: str | PurePath, *, max_bytes: int) -> Contents:
    """The contents of ``root/relpath``, read without following links below ``root``.

    ``root`` itself is opened as given (links in it are the admin's business). Raise RefusedError for
    ``..``, an absolute ``relpath``, a link or non-folder on the way, or a final component that is a
    link, not a regular file, or larger than ``max_bytes``; OSError when something cannot be opened
    (FileNotFoundError when it is not there).
    """
    shown = PurePath(relpath).as_posix()
    if PurePath(relpath).is_absolute():
        raise RefusedError(shown, "must be a path relative to its folder")
    parts = [part for part in PurePath(relpath).parts if part != "."]
    if ".." in parts:
        raise RefusedError(shown, "must not contain '..'")
    if not parts:
        raise RefusedError(shown, "names a folder, not a file")
    folder = os.open(root, _DIR_FLAGS)
    try:
        for depth, name in enumerate(parts[:-1], start=1):
            inner = _enter(folder, name, "/".join(parts[:depth]))
            os.close(folder)
            folder = inner
        fd = _open_file(folder, parts[-1], shown)
    finally:
        os.close(folder)
    try:
        return _read(fd, shown, max_bytes)
    finally:
        os.close(fd)


def read_capped(path: Path, *, max_bytes: int) -> Contents:
    """The contents of ``path`` (links followed), with the same checks on the descriptor as
    :func:`open_beneath`. Raise RefusedError or OSError likewise."""
    fd = os.open(path, _FILE_FLAGS)
    try:
        return _read(fd, str(path), max_bytes)
    finally:
        os.close(fd)


def _enter(folder: int, name: str, shown: str) -> int:
    """The descriptor of the subfolder ``name`` of ``folder``."""
    try:
        return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=folder)
    except OSError as exc:
        # O_DIRECTORY|O_NOFOLLOW says ENOTDIR for a link (ELOOP on some systems): tell the two apart
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            raise RefusedError(shown, _kind_refusal(folder, name, "is not a folder")) from exc
        raise


def _open_file(folder: int, name: str, shown: str) -> int:
    # looked at first so a device node is never opened at all (opening one can have side effects);
    # the descriptor is checked again below, because the name may be swapped in between
    before = os.stat(name, dir_fd=folder, follow_symlinks=False)
    if stat.S_ISLNK(before.st_mode):
        raise RefusedError(shown, _LINK_REASON)
    _check_regular(before, shown)
    try:
        return os.open(name, _FILE_FLAGS | os.O_NOFOLLOW, dir_fd=folder)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RefusedError(shown, _LINK_REASON) from exc
        raise


def _kind_refusal(folder: int, name: str, otherwise: str) -> str:
    try:
        st = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except OSError:
        return otherwise
    return _LINK_REASON if stat.S_ISLNK(st.st_mode) else otherwise


def _check_regular(st: os.stat_result, shown: str) -> None:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        kind = "a folder"
    elif stat.S_ISFIFO(mode):
        kind = "a FIFO (named pipe)"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    elif stat.S_ISLNK(mode):
        kind = "a symbolic link"
    else:
        kind = "something else"
    raise RefusedError(shown, f"is not a regular file (it is {kind})")


def _read(fd: int, shown: str, max_bytes: int) -> Contents:
    st = os.fstat(fd)
    _check_regular(st, shown)
    if st.st_size > max_bytes:
        raise RefusedError(shown, _too_large(st.st_size, max_bytes))
    # a regular file never blocks; reading in blocking mode spares a retry loop on EAGAIN
    os.set_blocking(fd, True)
    chunks: list[bytes] = []
    left = max_bytes + 1
    while left > 0:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        # it grew after fstat; its true size is unknown and does not matter
        raise RefusedError(shown, f"is too large (more than {max_bytes:,} bytes)")
    return Contents(data, st)


def _too_large(size: int, max_bytes: int) -> str:
    return f"is too large ({size:,} bytes; at most {max_bytes:,})"
