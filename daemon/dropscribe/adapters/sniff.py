"""Looking at an open input's head and tail: is it media at all, and did its transfer finish?

The decisions live in :mod:`dropscribe.core.media`; this module only reads for them, with
``os.pread`` on the descriptor: the file position the caller relies on is never moved, and only the
windows the checks ask for are read (a few hundred KiB whatever the file size).
"""

from __future__ import annotations

import os
from typing import BinaryIO

from dropscribe.core.errors import ShareUnavailableError
from dropscribe.core.media import HEAD_BYTES, head_looks_unwritten, media_kind, tail_looks_cut


def look(handle: BinaryIO) -> tuple[str | None, str | None]:
    """``(kind, unfinished)`` for an open regular file.

    ``kind`` is the media kind its head announces (see :data:`dropscribe.core.media.KINDS`), or
    None when no known media signature is there. ``unfinished`` is a short reason when the file looks
    like a transfer that has not completed (its tail cut, or its head still nothing but reserved zero
    bytes), else None. A file with neither is garbage: waiting will not make it media.

    Raises:
        ShareUnavailableError: Reading the file failed (the share went away, an I/O error).
    """
    fd = handle.fileno()
    try:
        size = os.fstat(fd).st_size
        head = _pread(fd, 0, min(size, HEAD_BYTES))
        kind = media_kind(head)
        if kind is None:
            return None, head_looks_unwritten(head)
        reader = _Reader(fd, head)
        return kind, tail_looks_cut(kind, reader.read_at, size)
    except OSError as exc:
        raise ShareUnavailableError(f"cannot read input: {exc.strerror or exc}") from exc


class _Reader:
    """``read_at`` for the pure checks: the head already read is served again without a second read."""

    def __init__(self, fd: int, head: bytes) -> None:
        self.fd = fd
        self.head = head

    def read_at(self, offset: int, length: int) -> bytes:
        if offset + length <= len(self.head):
            return self.head[offset : offset + length]
        return _pread(self.fd, offset, length)


def _pread(fd: int, offset: int, length: int) -> bytes:
    """Up to ``length`` bytes at ``offset``; network filesystems may hand them over in pieces."""
    parts: list[bytes] = []
    while length > 0:
        part = os.pread(fd, length, offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
        length -= len(part)
    return b"".join(parts)
