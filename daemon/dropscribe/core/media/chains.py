"""Chains of frames: finding where a frame-based stream begins, and walking its frames to an end.

A sync pattern alone proves little (``FF`` starts an MPEG header and is common in any binary), so a
stream is believed only where frames follow one another, each ending where the next header begins,
with headers that agree (see :mod:`dropscribe.core.media.frames`).
"""

from __future__ import annotations

from dataclasses import dataclass

from dropscribe.core.media.frames import CHAIN, DOUBTFUL_CHAIN, SEARCHED_IN_HEAD, FrameFormat, ac3_family
from dropscribe.core.media.source import Source
from dropscribe.core.media.tags import TAG_STARTS, skip_id3v2


def first_frames(data: bytes, start: int) -> tuple[str, int] | None:
    """The earliest chain of frames of a frame-based stream in ``data``: its kind and offset."""
    best: tuple[str, int] | None = None
    for kind, fmt in SEARCHED_IN_HEAD:
        pos = data.find(fmt.sync, start)
        while pos >= 0 and (best is None or pos < best[1]):
            if chains(data, pos, fmt):
                best = (ac3_family(data, pos) if kind == "ac3" else kind, pos)
                break
            pos = data.find(fmt.sync, pos + 1)
    return best


def first_frame(head: bytes, fmt: FrameFormat) -> int | None:
    """Where the stream of ``fmt`` begins in ``head``, past any ID3v2 tag; None when no chain is there."""
    if fmt.starts_file:
        return 0 if head.startswith(fmt.sync) else None
    pos = head.find(fmt.sync, skip_id3v2(head, 0))
    while pos >= 0:
        if chains(head, pos, fmt):
            return pos
        pos = head.find(fmt.sync, pos + 1)
    return None


def chains(data: bytes, pos: int, fmt: FrameFormat) -> bool:
    """Whether :data:`CHAIN` frames follow one another from ``pos``, or two do and ``data`` ends."""
    key: int | None = None
    need = DOUBTFUL_CHAIN if data[pos + 1 : pos + 2] in fmt.doubtful else CHAIN
    for count in range(need):
        if pos + 16 > len(data):
            return count >= 2 and need == CHAIN
        frame = fmt.parse(data, pos)
        if frame is None or (key is not None and frame[1] != key):
            return False
        key = frame[1]
        pos += frame[0]
    return True


@dataclass(frozen=True)
class _Walk:
    outcome: str  # "end", "overrun", "short" (header cut), "broken" (no frame where one should be)
    frames: int  # whole frames walked
    last: int  # start of the last whole frame
    stop: int  # where the walk stopped
    need: int = 0  # length of the frame that overran


def _walk(data: bytes, pos: int, end: int, fmt: FrameFormat) -> _Walk:
    key: int | None = None
    frames, last = 0, pos
    while True:
        if pos == end:
            return _Walk("end", frames, last, pos)
        if end - pos < fmt.header:
            return _Walk("short", frames, last, pos)
        frame = fmt.parse(data, pos)
        if frame is None or (key is not None and frame[1] != key):
            return _Walk("broken", frames, last, pos)
        length, key = frame
        if pos + length > end:
            return _Walk("overrun", frames, last, pos, length)
        frames, last, pos = frames + 1, pos, pos + length


def frames_to_end(
    src: Source, end: int, fmt: FrameFormat, first: int | None
) -> tuple[str | None, int | None]:
    """Walk the frames of the tail to ``end``: ``(reason, None)`` when cut, ``(None, last frame)`` when
    they end there, ``(None, None)`` when no chain can be found to tell.

    A walk counts once ``fmt.chain`` frames followed one another, or when it started at ``first``,
    the stream's known first frame; otherwise it may have started on a sync pattern inside frame data.
    """
    base, data, what = src.tail_start, src.tail, fmt.what
    if end <= base:
        return None, None
    stop = end - base
    trusted = first - base if first is not None and first >= base else None
    pos = trusted if trusted is not None else 0
    while True:
        candidate = pos if pos == trusted else data.find(fmt.sync, pos, stop)
        if candidate < 0:
            return None, None
        walk = _walk(data, candidate, stop, fmt)
        if walk.frames < fmt.chain and candidate != trusted:
            pos = candidate + 1
            continue
        if walk.outcome == "end":
            return (None, base + walk.last) if walk.frames else (None, None)
        if walk.outcome == "overrun":
            present = stop - walk.stop
            return f"the last {what} is incomplete: it needs {walk.need} bytes, {present} are there", None
        if walk.outcome == "short":
            return f"the file ends inside a {what} header", None
        rest = data[walk.stop : stop]
        if not rest.strip(b"\x00"):
            return f"{len(rest)} zero bytes follow the last complete {what}", None
        if rest.startswith(TAG_STARTS):  # a whole tag would have been set aside before the walk
            return "the file ends inside the tag after the last frame", None
        pos = walk.stop + 1  # something else follows a real chain: look for a later one
