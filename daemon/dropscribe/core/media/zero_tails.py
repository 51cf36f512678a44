"""Zero bytes at the end of a file: space a copy reserved before it wrote, or a recording's silence?

Encoded audio (MP3, AAC, Opus, FLAC...) never holds 4 KiB of zero bytes in a row, so such a tail is
unwritten space wherever it starts (:func:`compressed_zero_tail`). PCM is different: digital silence
is zero bytes too, and a recording may well end in ten seconds of it. There the rule
(:func:`pcm_zero_tail`) is: the zero run must start exactly at a multiple of 64 KiB from the start of
the file (within 3 bytes, for quiet samples whose last bytes are zero), after real data. Copy engines
write whole blocks of 64 KiB or more, so that is where a stalled pre-allocated copy's zeros begin; a
silence that begins at a sample chosen by the content lands there once in about 16,000 files, and
then costs only a wait. A copy that stalls during silence, or an engine that writes odd-sized blocks,
goes unseen by this rule; the header checks still apply. The PCM rule serves the containers that may
hold PCM (WAV and kin, AIFF, AU, CAF, AVI, ASF, VOC, Matroska with a PCM track, MP4/MOV with a PCM
sample entry or not ending in media data); the others use the plain one.
"""

from __future__ import annotations

from dropscribe.core.media.source import Source

_GRAIN = 64 * 1024  # block size copy engines write in; where a stalled copy's zeros begin
_ALIGN_SLACK = 3  # a quiet last sample before the boundary may end in zero bytes
_ZERO_RUN = 4096  # shorter zero runs are not judged
_PROBE = 4096


def compressed_zero_tail(src: Source) -> str | None:
    """A reason when an encoded stream ends in a long run of zero bytes."""
    run = _trailing_zeros(src.tail)
    if run < _ZERO_RUN:
        return None
    at_least = "at least " if run == len(src.tail) and src.tail_start > 0 else ""
    return f"the file ends in {at_least}{run} zero bytes: space reserved for data that never came"


def pcm_zero_tail(src: Source) -> str | None:
    """A reason when a file that may hold PCM ends in zero bytes from a 64 KiB boundary on."""
    run = _trailing_zeros(src.tail)
    if run < _ZERO_RUN:
        return None
    start = src.size - run if run < len(src.tail) or src.tail_start == 0 else _zero_suffix_start(src)
    boundary = -(-start // _GRAIN) * _GRAIN
    if start == 0 or boundary - start > _ALIGN_SLACK or src.size - boundary < _ZERO_RUN:
        return None
    return (
        f"the file ends in {src.size - boundary} zero bytes from offset {boundary}, a multiple of 64 KiB: "
        "space reserved by a copy that stopped"
    )


def _trailing_zeros(data: bytes) -> int:
    return len(data) - len(data.rstrip(b"\x00"))


def _zero_suffix_start(src: Source) -> int:
    """Where a zero tail longer than the tail window begins, by bisecting over 64 KiB blocks.

    Probes read 4 KiB at block starts; the block just before the first zero one is read whole to find
    the exact first zero byte.
    """
    low, high = 0, -(-src.tail_start // _GRAIN) * _GRAIN
    while high - low > _GRAIN:
        middle = max(low + _GRAIN, (low + high) // 2 // _GRAIN * _GRAIN)
        if src.at(middle, _PROBE).strip(b"\x00"):
            low = middle
        else:
            high = middle
    block = src.at(low, high - low)
    return low + len(block) - _trailing_zeros(block)
