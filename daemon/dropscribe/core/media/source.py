"""The file as the tail checks see it: its head and tail windows, and reads in between on demand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: ``read_at(offset, length)``: up to ``length`` bytes from ``offset``, fewer only at the end of the file.
ReadAt = Callable[[int, int], bytes]

#: How much of the start of a file :func:`~dropscribe.core.media.media_kind` wants.
HEAD_BYTES = 64 * 1024

#: How much of the end of a file the tail checks read at once. Two of the largest Ogg pages fit,
#: so the window always holds a whole page before a cut one.
TAIL_BYTES = 128 * 1024

#: Boxes or chunks walked before giving up on a structure, so a hostile file cannot make us read it all.
MAX_HEADERS = 2048


@dataclass(frozen=True)
class Source:
    """A file of ``size`` bytes: ``head`` from offset 0, ``tail`` from ``tail_start`` to the end."""

    read_at: ReadAt
    size: int
    head: bytes
    tail: bytes
    tail_start: int

    def at(self, offset: int, length: int) -> bytes:
        """The bytes of ``[offset, offset + length)`` inside the file, from the windows if they hold them."""
        end = min(self.size, offset + length)
        offset = max(0, offset)
        if end <= offset:
            return b""
        if end <= len(self.head):
            return self.head[offset:end]
        if offset >= self.tail_start:
            return self.tail[offset - self.tail_start : end - self.tail_start]
        return self.read_at(offset, end - offset)
