"""Careful file operations on a shared drop folder: safe opens, atomic writes, moves that never clobber.

The inbox is written by people and machines we do not control, so an input is opened the way Postfix's
pickup opens maildrop files: without following links, without blocking on FIFOs, and checked again on
the opened descriptor so a swap between ``lstat`` and ``open`` is caught.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dropscribe.core.errors import InputRejectedError, ShareUnavailableError
from dropscribe.core.naming import pick_free_name, split_name

_HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class Identity:
    """What we know of a file without reading it; a change in any field means new content."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Identity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def same_content(self, other: Identity) -> bool:
        # ctime is left out: our own link()+unlink() during the move changes it
        return (self.dev, self.ino, self.size, self.mtime_ns) == (
            other.dev, other.ino, other.size, other.mtime_ns,
        )  # fmt: skip


def check_regular(st: os.stat_result) -> None:
    """Refuse anything but a plain file with a single name."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        raise InputRejectedError("symlink", "symbolic links are not followed")
    if stat.S_ISFIFO(mode):
        raise InputRejectedError("not_regular_file", "a FIFO (named pipe) is not a recording")
    if stat.S_ISSOCK(mode):
        raise InputRejectedError("not_regular_file", "a socket is not a recording")
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        raise InputRejectedError("not_regular_file", "a device node is not a recording")
    if not stat.S_ISREG(mode):
        raise InputRejectedError("not_regular_file", "not a regular file")
    if st.st_nlink > 1:
        raise InputRejectedError(
            "hard_link", f"the file has {st.st_nlink} hard links; only single-link files are taken"
        )


def open_input(path: Path) -> BinaryIO:
    """Open an inbox file for reading, refusing links, FIFOs, devices and swapped files."""
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ShareUnavailableError(f"cannot stat input: {exc.strerror}") from exc
    check_regular(before)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputRejectedError("symlink", "symbolic links are not followed") from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ShareUnavailableError("input not readable yet (permission or share lock)") from exc
        if exc.errno == errno.ENOENT:
            raise FileNotFoundError(str(path)) from exc
        raise ShareUnavailableError(f"cannot open input: {exc.strerror}") from exc
    try:
        after = os.fstat(fd)
        check_regular(after)
        if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
            raise InputRejectedError("swapped", "the file was replaced while it was being opened")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def hash_file(handle: BinaryIO) -> tuple[str, int]:
    """SHA-256 and byte count of everything readable from ``handle`` (rewound first)."""
    handle.seek(0)
    digest = hashlib.sha256()
    total = 0
    while True:
        block = handle.read(_HASH_BLOCK)
        if not block:
            break
        digest.update(block)
        total += len(block)
    handle.seek(0)
    return digest.hexdigest(), total


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable; some network filesystems refuse, which is fine."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


TEMP_PREFIX = ".dropscribe-"


def temp_name() -> str:
    """Our temp files: hidden (readers and our own scanner skip dotfiles) and short, whatever the target."""
    return f"{TEMP_PREFIX}{secrets.token_hex(6)}.tmp"


def atomic_write(path: Path, data: bytes, mode: int = 0o640, group: int | None = None) -> None:
    """Write ``data`` under ``path`` so readers see the old state or the whole new file, never a part.

    ``mode`` is applied exactly (the umask does not narrow it); ``group`` is set when the service may
    (it owns the file and belongs to the group, or is root), and quietly left otherwise.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / temp_name()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        if group is not None:
            with contextlib.suppress(PermissionError):
                os.fchown(fd, -1, group)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def remove_stale_temps(folder: Path) -> int:
    """Delete our own ``.dropscribe-*.tmp`` leftovers of a crash mid-write; returns how many."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if (
            entry.name.startswith(TEMP_PREFIX)
            and entry.name.endswith(".tmp")
            and entry.is_file(follow_symlinks=False)
        ):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed += 1
    return removed


def split_stem(name: str) -> str:
    return split_name(name)[0]


def choose_free_name(folder: Path, name: str) -> str:
    """A name in ``folder`` that neither the file nor any of its sidecars already uses."""
    return pick_free_name(name, lambda candidate: os.path.lexists(folder / candidate))


def move_no_clobber(src: Path, dst: Path, after_copy: Callable[[], None] | None = None) -> None:
    """Move ``src`` to ``dst``; never replaces an existing ``dst``; durable on return.

    Same filesystem: link() then unlink(), which fails with EEXIST instead of overwriting (Maildir's
    trick; Python's rename cannot ask for RENAME_NOREPLACE). Filesystems without hard links fall back
    to a checked rename. Across filesystems: copy to a hidden temp in the target folder, fsync, link
    into place, then remove the source. ``after_copy`` runs between the copy and the removal (a named
    crash point: recovery must recognize a complete copy by its bytes).
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            _copy_across(src, dst)
            fsync_dir(dst.parent)
            if after_copy is not None:
                after_copy()
        elif exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            if os.path.lexists(dst):
                raise FileExistsError(errno.EEXIST, "destination exists", str(dst)) from exc
            os.rename(src, dst)
            fsync_dir(dst.parent)
            fsync_dir(src.parent)
            return
        else:
            raise
    fsync_dir(dst.parent)
    os.unlink(src)
    fsync_dir(src.parent)


def _copy_across(src: Path, dst: Path) -> None:
    tmp = dst.parent / temp_name()
    try:
        with open(src, "rb") as fin, open(tmp, "xb") as fout:
            shutil.copyfileobj(fin, fout, _HASH_BLOCK)
            fout.flush()
            os.fsync(fout.fileno())
        if os.path.getsize(tmp) != os.path.getsize(src):
            raise OSError(errno.EIO, "copy came out short")
        with contextlib.suppress(OSError):
            shutil.copystat(src, tmp, follow_symlinks=False)  # mode and mtime, as a rename keeps them
        os.link(tmp, dst)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@dataclass(frozen=True)
class Entry:
    """A candidate input found by a scan."""

    path: Path
    relpath: str
    identity: Identity
    nlink: int
    mode: int


def walk(root: Path, *, recursive: bool, skip_dir: Callable[[Path], bool]) -> Iterator[Entry | OSError]:
    """Every non-directory below ``root`` with its lstat; folders we cannot read are yielded as errors.

    Symlinked folders are not entered (a link to ``/`` must not make us walk the machine).
    """
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            yield exc
            continue
        for entry in entries:
            path = Path(entry.path)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if recursive and not skip_dir(path):
                    stack.append(path)
                continue
            yield Entry(path, path.relative_to(root).as_posix(), Identity.of(st), st.st_nlink,
                        st.st_mode)  # fmt: skip


@dataclass(frozen=True)
class Listed:
    """One name in a folder listing; ``identity`` is its lstat, or None when not asked for."""

    name: str
    is_dir: bool
    identity: Identity | None


def list_folder(folder: Path, *, stat_files: bool = True) -> list[Listed] | OSError:
    """The names in ``folder`` (not below it), folders told apart without following links.

    Folders are always stat-ed (their mtime tells a poller when a name came or went); files only when
    ``stat_files``, since an incremental look needs the stat of new names only.
    """
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError as exc:
        return exc
    listed = []
    for entry in entries:
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            st = entry.stat(follow_symlinks=False) if is_dir or stat_files else None
        except OSError:
            continue
        listed.append(Listed(entry.name, is_dir, Identity.of(st) if st is not None else None))
    return listed
