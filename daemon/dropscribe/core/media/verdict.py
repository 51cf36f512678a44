"""Whether a file of a known kind looks like a transfer that stopped, and what each kind is judged by.

Checks run in the order :data:`_CHECKS` lists them and the first reason found is the verdict. Besides
the zero tail rules of :mod:`dropscribe.core.media.zero_tails`:

- ``mp3`` (MPEG audio layers I-III), ``aac`` (ADTS), ``ac3``, ``eac3``, ``dts``: the frames of the tail
  must chain exactly to the end of the file or to a trailing ID3v1/APEv2/Lyrics3 tag; for MP3 also the
  stream length in a Xing/Info/VBRI header.
- ``ogg``: the pages of the tail chain to the end and the last one carries the end-of-stream flag.
- ``flac``: the last frame passes its CRC-16 and ends at the sample count STREAMINFO states.
- ``mp4`` (MP4, M4A, MOV, 3GP): the top-level boxes chain exactly to the end, and a ``moov`` exists.
- ``wav``, ``xwma``, ``w64``, ``aiff``, ``au``, ``caf``, ``avi``, ``dsf``, ``matroska``, ``asf``: the sizes
  their headers state fit in the file; ``asf`` also wants its last data packet written.
- ``flv``: the file size its metadata states, and the last tag's trailing size points back at a tag
  header of that size.
- ``mpegts``: the file ends on a packet boundary with packet syncs in place.
- ``wavpack``: the blocks chain to the end and the last reaches the stated sample count.
- ``mpeg``, ``amr``, ``ape``, ``musepack``, ``tta``, ``tak``, ``voc``: zero tails only.

A cut that falls exactly between two frames of a stream that states no length of its own (ADTS, AC-3,
DTS, MPEG-TS, MP3 without a Xing header) cannot be told from a shorter recording, and is not reported.
"""

from __future__ import annotations

from collections.abc import Callable

from dropscribe.core.media.chunks import (
    check_aiff,
    check_au,
    check_avi,
    check_caf,
    check_dsf,
    check_w64,
    check_wave,
)
from dropscribe.core.media.flac import check_flac
from dropscribe.core.media.frame_checks import frame_chain
from dropscribe.core.media.mp4 import check_mp4
from dropscribe.core.media.source import HEAD_BYTES, TAIL_BYTES, ReadAt, Source
from dropscribe.core.media.streams import (
    check_asf,
    check_flv,
    check_matroska,
    check_transport_stream,
    matroska_zero_tail,
)
from dropscribe.core.media.zero_tails import compressed_zero_tail, pcm_zero_tail


def tail_looks_cut(kind: str, read_at: ReadAt, size: int) -> str | None:
    """A short reason when the end of a file of ``kind`` looks like a transfer that stopped, else None.

    ``read_at`` reads the file (the head, the last :data:`TAIL_BYTES`, a few headers in between);
    ``size`` is its current size. None also means "cannot tell": the checks only speak up on evidence.
    """
    if size <= 0:
        return None
    head = read_at(0, min(size, HEAD_BYTES))
    tail_start = max(0, size - TAIL_BYTES)
    tail = head[tail_start:] if len(head) == size else read_at(tail_start, size - tail_start)
    if len(tail) < size - tail_start:
        return "the file became shorter while it was read"
    source = Source(read_at, size, head, tail, tail_start)
    for check in _CHECKS.get(kind, _UNKNOWN):
        reason = check(source)
        if reason is not None:
            return reason
    return None


_Check = Callable[[Source], "str | None"]

# Encoded streams: a zero tail condemns them before their structure is read.
_COMPRESSED = compressed_zero_tail
# PCM holders: the structure speaks first; silence may end them, so only aligned zeros count.
_PCM = pcm_zero_tail
_UNKNOWN: tuple[_Check, ...] = (_PCM,)

_CHECKS: dict[str, tuple[_Check, ...]] = {
    "mp3": (_COMPRESSED, frame_chain("mp3")),
    "aac": (_COMPRESSED, frame_chain("aac")),
    "ac3": (_COMPRESSED, frame_chain("ac3")),
    "eac3": (_COMPRESSED, frame_chain("eac3")),
    "dts": (_COMPRESSED, frame_chain("dts")),
    "ogg": (_COMPRESSED, frame_chain("ogg")),
    "wavpack": (_COMPRESSED, frame_chain("wavpack")),
    "flac": (_COMPRESSED, check_flac),
    "mpegts": (_COMPRESSED, check_transport_stream),
    "mp4": (check_mp4,),  # which zero tail rule applies depends on the boxes it finds
    "wav": (check_wave, _PCM),
    "xwma": (check_wave, _PCM),
    "avi": (check_avi, _PCM),
    "aiff": (check_aiff, _PCM),
    "au": (check_au, _PCM),
    "caf": (check_caf, _PCM),
    "w64": (check_w64, _PCM),
    "dsf": (check_dsf, _COMPRESSED),
    "matroska": (check_matroska, matroska_zero_tail),
    "asf": (check_asf, _PCM),
    "flv": (check_flv,),
    "mpeg": (_COMPRESSED,),
    "amr": (_COMPRESSED,),
    "ape": (_COMPRESSED,),
    "musepack": (_COMPRESSED,),
    "tta": (_COMPRESSED,),
    "tak": (_COMPRESSED,),
    "voc": (_PCM,),
}
