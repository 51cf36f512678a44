"""A sync request whose audio is base64-encoded from its file while the request is sent.

A chunk of a long recording is a few megabytes. Built in memory, every worker would hold it twice more
for the whole call (its base64 text, then the JSON body around it); with four workers that is most of
what a long recording adds to the service's memory. Streamed, a worker holds one block. The length is
known before the first byte (the base64 of ``n`` bytes is ``4 * ceil(n / 3)`` characters), so the
request goes out with a ``Content-Length`` like a built one, not in HTTP chunks.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator

from dropscribe.core.errors import AsrUnavailableError
from dropscribe.core.recognition import InlineAudio

# a multiple of 3, so that only the last block's base64 ends in padding
_BLOCK_BYTES = 3 * 16 * 1024


class InlineBody:
    """``before``, the audio file's bytes as base64, ``after``: iterable once per send, each time afresh."""

    def __init__(self, before: bytes, audio: InlineAudio, after: bytes) -> None:
        self._before = before
        self._audio = audio
        self._after = after

    @property
    def length(self) -> int:
        return len(self._before) + 4 * ((self._audio.size + 2) // 3) + len(self._after)

    def __iter__(self) -> Iterator[bytes]:
        with open(self._audio.path, "rb") as data:
            # checked before the first byte: a body shorter or longer than announced breaks the connection
            self._check(os.fstat(data.fileno()).st_size)
            yield self._before
            read = 0
            while block := data.read(_BLOCK_BYTES):
                read += len(block)
                yield base64.b64encode(block)
            self._check(read)
        yield self._after

    def _check(self, size: int) -> None:
        if size != self._audio.size:
            raise AsrUnavailableError(
                f"the staged audio changed before it was sent ({size} bytes, {self._audio.size} expected)"
            )
