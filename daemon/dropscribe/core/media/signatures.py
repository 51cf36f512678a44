"""What media a file's head announces: container and stream signatures, and frame chains.

Only a file with a known signature can be an upload still under way; anything else (text renamed
``.mp3``, random bytes, a PDF) is garbage and may fail at once.
"""

from __future__ import annotations

from dropscribe.core.media.binary import looks_like_text
from dropscribe.core.media.chains import first_frames
from dropscribe.core.media.frames import DTS_SYNCS
from dropscribe.core.media.mp4 import is_bmff
from dropscribe.core.media.tags import skip_id3v2

#: Every kind :func:`media_kind` returns.
KINDS = frozenset({
    "wav", "xwma", "w64", "aiff", "au", "caf", "avi", "flac", "ogg", "mp3", "aac", "ac3", "eac3", "dts",
    "mp4", "matroska", "asf", "amr", "mpegts", "mpeg", "ape", "wavpack", "musepack", "tta", "tak", "voc",
    "flv", "dsf",
})  # fmt: skip

_W64_RIFF = bytes.fromhex("72696666 2e91cf11 a5d628db 04c10000".replace(" ", ""))
_ASF_HEADER = bytes.fromhex("3026b275 8e66cf11 a6d900aa 0062ce6c".replace(" ", ""))
_EBML = b"\x1a\x45\xdf\xa3"
_AMR_MAGICS = (b"#!AMR\n", b"#!AMR-WB\n", b"#!AMR_MC1.0\n", b"#!AMR-WB_MC1.0\n")

# Four bytes that name the kind on their own wherever a file of that kind begins.
_MAGICS = {
    b"fLaC": "flac", _EBML: "matroska", b".snd": "au", b"MAC ": "ape", b"wvpk": "wavpack",
    b"MPCK": "musepack", b"TTA1": "tta", b"tBaK": "tak", b"FLV\x01": "flv", b"DSD ": "dsf",
    b"\x00\x00\x01\xba": "mpeg",
}  # fmt: skip


def media_kind(head: bytes) -> str | None:
    """The kind of media the first bytes of a file announce, one of :data:`KINDS`; None for none.

    ``head`` is the start of the file, ideally :data:`~dropscribe.core.media.HEAD_BYTES` long (or
    the whole file if shorter). Fixed signatures are read where they belong; frame-based streams
    (MPEG audio, ADTS, AC-3, DTS) are searched for anywhere in ``head`` and believed only when three
    frames chain, so random bytes and compressed documents do not pass for audio.
    """
    kind = _signature(head, 0)
    if kind is not None:
        return kind
    after_tag = skip_id3v2(head, 0)
    if after_tag > 0:
        # ID3v2 almost always heads MP3, now and then FLAC or ADTS; a tag larger than the window is
        # cover art, and still says MP3.
        if after_tag >= len(head):
            return "mp3"
        kind = _signature(head, _skip_zeros(head, after_tag))
        if kind is not None:
            return kind
        found = first_frames(head, after_tag)
        return found[0] if found is not None else "mp3"
    start = _skip_zeros(head, 0)
    if head[start : start + 4] in DTS_SYNCS:
        return "dts"
    if transport_stream(head) is not None:
        return "mpegts"
    found = first_frames(head, 0)
    return found[0] if found is not None else None


def head_looks_unwritten(head: bytes) -> str | None:
    """A reason when the head is nothing but zero bytes: space reserved for a copy not written yet."""
    if head and not head.strip(b"\x00"):
        return f"the first {len(head)} bytes are all zero: space reserved, not written yet"
    return None


def transport_stream(data: bytes) -> tuple[int, int] | None:
    """``(first sync offset, packet size)`` when ``data`` is MPEG-TS (188), M2TS (192) or 204-byte TS."""
    for packet in (188, 192, 204):
        for first in range(min(packet, len(data))):
            count = (len(data) - first - 1) // packet + 1
            if count < 5:
                break
            # a run of the letter G is text; packets carry binary headers and tables
            synced = all(data[first + i * packet] == 0x47 for i in range(min(count, 8)))
            if synced and not looks_like_text(data[first : first + 4 * packet]):
                return first, packet
    return None


def _signature(data: bytes, pos: int) -> str | None:
    h = data[pos : pos + 16]
    four = h[:4]
    if four in (b"RIFF", b"RIFX"):
        return {b"WAVE": "wav", b"AVI ": "avi", b"XWMA": "xwma"}.get(h[8:12])
    fixed = _MAGICS.get(four)
    if fixed is not None:
        return fixed
    if four in (b"RF64", b"BW64") and h[8:12] == b"WAVE":
        return "wav"
    if four == b"FORM" and h[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if four == b"OggS" and h[4:5] == b"\x00":
        return "ogg"
    if four == b"caff" and h[4:6] == b"\x00\x01":
        return "caf"
    if h[:3] == b"MP+" and len(h) > 3 and h[3] & 0x0F in (7, 8):
        return "musepack"
    if h == _W64_RIFF:
        return "w64"
    if h == _ASF_HEADER:
        return "asf"
    if h[:8] == b"DTSHDHDR":
        return "dts"
    if data.startswith(_AMR_MAGICS, pos):
        return "amr"
    if data.startswith(b"Creative Voice File\x1a", pos):
        return "voc"
    if is_bmff(data, pos):
        return "mp4"
    return None


def _skip_zeros(data: bytes, pos: int) -> int:
    return len(data) - len(data[pos:].lstrip(b"\x00"))
