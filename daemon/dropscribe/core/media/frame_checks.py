"""Tail checks of the frame-based streams: the frames of the tail must chain exactly to the end of
the file or to a trailing tag, and some streams state more that their last frame must match."""

from __future__ import annotations

from collections.abc import Callable

from dropscribe.core.media.binary import U32_UNKNOWN, u32be, u32le
from dropscribe.core.media.chains import first_frame, frames_to_end
from dropscribe.core.media.frames import FRAME_FORMATS
from dropscribe.core.media.source import Source
from dropscribe.core.media.tags import strip_tags


def frame_chain(kind: str) -> Callable[[Source], str | None]:
    """The tail check of the frame-based stream ``kind`` (a key of :data:`FRAME_FORMATS`)."""
    fmt = FRAME_FORMATS[kind]
    stated, closing = _STATED.get(kind), _CLOSING.get(kind)

    def check(src: Source) -> str | None:
        first = first_frame(src.head, fmt)
        if stated is not None and first is not None:
            reason = stated(src, first)
            if reason is not None:
                return reason
        reason, last = frames_to_end(src, strip_tags(src, src.size), fmt, first)
        if reason is None and last is not None and closing is not None:
            return closing(src, last)
        return reason

    return check


def _mp3_stated_length(src: Source, first: int) -> str | None:
    """The stream length a Xing/Info or VBRI header in the first frame states must fit in the file."""
    declared = _mpeg_stream_bytes(src.head, first)
    # Whether that count includes tags differs between encoders; the whole file being shorter is a
    # cut under every reading.
    if declared is not None and declared > src.size:
        return f"the MP3 header states {declared} bytes of audio, the whole file holds {src.size}"
    return None


def _mpeg_stream_bytes(head: bytes, first: int) -> int | None:
    b1, b3 = head[first + 1], head[first + 3]
    mpeg1, mono = (b1 >> 3) & 3 == 3, b3 >> 6 == 3
    xing = first + 4 + ((17 if mono else 32) if mpeg1 else (9 if mono else 17))
    if head[xing : xing + 4] in (b"Xing", b"Info") and len(head) >= xing + 16:
        flags = u32be(head, xing + 4)
        at = xing + 8 + (4 if flags & 1 else 0)
        return (u32be(head, at) or None) if flags & 2 and len(head) >= at + 4 else None
    vbri = first + 36
    if head[vbri : vbri + 4] == b"VBRI" and len(head) >= vbri + 14:
        return u32be(head, vbri + 10) or None
    return None


def _ogg_end_of_stream(src: Source, last: int) -> str | None:
    """The last page must carry the end-of-stream flag (a cut between pages)."""
    if not src.at(last + 5, 1)[0] & 0x04:
        return "the last Ogg page does not carry the end-of-stream flag"
    return None


def _wavpack_samples(src: Source, last: int) -> str | None:
    """The last block must reach the sample count the blocks state (a cut between blocks)."""
    block = src.at(last, 32)
    total = u32le(block, 12)
    samples = u32le(block, 20)
    if total == U32_UNKNOWN or not samples:
        return None
    total |= block[10] << 32
    reached = (u32le(block, 16) | block[11] << 32) + samples
    if reached < total:
        return f"the last WavPack block ends at sample {reached}, the file states {total} samples"
    return None


# What a stream states besides its frames: checked before the walk from its first frame, and after
# it from its last whole frame.
_STATED: dict[str, Callable[[Source, int], str | None]] = {"mp3": _mp3_stated_length}
_CLOSING: dict[str, Callable[[Source, int], str | None]] = {
    "ogg": _ogg_end_of_stream,
    "wavpack": _wavpack_samples,
}
