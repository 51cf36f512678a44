"""The frame-based streams and how to read one frame header of each.

Every parser takes ``(data, pos)`` and returns ``(length, consistency key)`` of the frame whose header
starts at ``pos``, or None when no valid header is there. The key holds the header fields that stay
the same from frame to frame in a real stream, so a chain of frames whose keys differ is a run of
look-alike bytes, not a stream. :data:`FRAME_FORMATS` describes each stream for the chain walks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dropscribe.core.media.binary import u32le

Parse = Callable[[bytes, int], "tuple[int, int] | None"]

#: Frames that must chain before a sync pattern is believed.
CHAIN = 3

#: Frames that must chain from a start whose header bytes are common outside audio too.
DOUBTFUL_CHAIN = 16

#: The four forms DTS comes in (16- or 14-bit words, either byte order); only the first, the common
#: one, has its frames walked.
DTS_SYNCS = (b"\x7f\xfe\x80\x01", b"\xfe\x7f\x01\x80", b"\x1f\xff\xe8\x00", b"\xff\x1f\x00\xe8")


@dataclass(frozen=True)
class FrameFormat:
    """A stream of frames, pages or blocks that follow one another with no container around them."""

    what: str  # one frame, as reasons name it
    sync: bytes  # how every frame begins
    parse: Parse
    header: int  # bytes a frame header needs before it can be parsed
    chain: int = CHAIN  # frames that must chain in the tail before a sync found there is believed
    starts_file: bool = False  # the stream's first frame is the file's first byte (no tags in front)
    # second header bytes that binaries and tables are full of: such a start must show a longer chain
    doubtful: tuple[bytes, ...] = ()


# --- MPEG audio, layers I-III ------------------------------------------------------------------------

_MPEG_BITRATES: dict[tuple[bool, int], tuple[int, ...]] = {
    (True, 3): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 1): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 3): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 1): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}

# Layer I headers without CRC read ``FF FF``, which binaries and tables are full of; real layer I
# audio (rare today) must show DOUBTFUL_CHAIN frames instead.
_LAYER1 = (b"\xfe", b"\xff", b"\xf6", b"\xf7")  # second header byte of MPEG-1/2 layer I


def mpeg_frame(data: bytes, pos: int) -> tuple[int, int] | None:
    """An MPEG audio frame header (layers I-III, MPEG 1, 2 and 2.5); free-format frames are not read."""
    if pos + 4 > len(data) or data[pos] != 0xFF:
        return None
    b1, b2, b3 = data[pos + 1], data[pos + 2], data[pos + 3]
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    index, rate_index = b2 >> 4, (b2 >> 2) & 3
    if b1 & 0xE0 != 0xE0 or version == 1 or layer == 0 or index in (0, 15) or rate_index == 3 or b3 & 3 == 2:
        return None
    if version == 0 and layer != 1:  # MPEG 2.5 only ever defined layer III
        return None
    bitrate = _MPEG_BITRATES[(version == 3, layer)][index] * 1000
    rate = _MPEG_RATES[version][rate_index]
    padding = (b2 >> 1) & 1
    if layer == 3:
        length = (12 * bitrate // rate + padding) * 4
    elif layer == 1 and version != 3:
        length = 72 * bitrate // rate + padding
    else:
        length = 144 * bitrate // rate + padding
    # Version, layer, CRC flag, rate, channel mode and emphasis stay the same from frame to frame in
    # real streams; the bit rate, padding, mode extension and the copyright and original flags (LAME's
    # Info frame differs there from the audio frames) may change.
    return length, (b1 & 0x1F) << 10 | rate_index << 8 | b3 & 0xC3


# --- AAC in ADTS, AC-3 and E-AC-3, DTS -----------------------------------------------------------------


def adts_frame(data: bytes, pos: int) -> tuple[int, int] | None:
    """An AAC ADTS frame header: sync, layer 0, a valid sampling index, a length past the header."""
    if pos + 7 > len(data) or data[pos] != 0xFF:
        return None
    b1, b2 = data[pos + 1], data[pos + 2]
    if b1 & 0xF6 != 0xF0 or (b2 >> 2) & 0x0F > 12:
        return None
    length = (data[pos + 3] & 3) << 11 | data[pos + 4] << 3 | data[pos + 5] >> 5
    if length <= (7 if b1 & 1 else 9):
        return None
    return length, (b1 & 0x08) << 8 | (b2 & 0xFC)


_AC3_KBPS = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 576, 640)


def ac3_frame(data: bytes, pos: int) -> tuple[int, int] | None:
    """An AC-3 or E-AC-3 sync frame."""
    if pos + 6 > len(data) or data[pos] != 0x0B or data[pos + 1] != 0x77:
        return None
    bsid = data[pos + 5] >> 3
    fscod = data[pos + 4] >> 6
    if bsid <= 10:
        code = data[pos + 4] & 0x3F
        if fscod == 3 or code >= 38:
            return None
        kbps = _AC3_KBPS[code >> 1]
        words = (kbps * 2, kbps * 96000 // 44100 + (code & 1), kbps * 3)[fscod]
        return words * 2, fscod
    if bsid <= 16:
        return ((data[pos + 2] & 7) << 8 | data[pos + 3]) * 2 + 2, 4 | fscod
    return None


def ac3_family(data: bytes, pos: int) -> str:
    """Whether the AC-3 sync frame at ``pos`` is plain AC-3 or E-AC-3, by its bitstream id."""
    return "ac3" if data[pos + 5] >> 3 <= 10 else "eac3"


def dts_frame(data: bytes, pos: int) -> tuple[int, int] | None:
    """A DTS core frame in the common 16-bit big-endian form."""
    if pos + 10 > len(data) or data[pos : pos + 4] != DTS_SYNCS[0]:
        return None
    size = (data[pos + 5] & 3) << 12 | data[pos + 6] << 4 | data[pos + 7] >> 4
    return (size + 1, 0) if size >= 95 else None


# --- Ogg pages and WavPack blocks: streams that start their file ----------------------------------


def ogg_page(data: bytes, pos: int) -> tuple[int, int] | None:
    if pos + 27 > len(data) or data[pos : pos + 4] != b"OggS" or data[pos + 4] != 0:
        return None
    segments = data[pos + 26]
    table = data[pos + 27 : pos + 27 + segments]
    if len(table) < segments:  # the segment table itself is cut: report at least what it needs
        return 27 + segments, 0
    return 27 + segments + sum(table), 0


def wavpack_block(data: bytes, pos: int) -> tuple[int, int] | None:
    if pos + 32 > len(data) or data[pos : pos + 4] != b"wvpk":
        return None
    size, version = u32le(data, pos + 4), int.from_bytes(data[pos + 8 : pos + 10], "little")
    if size < 24 or not 0x402 <= version <= 0x410:
        return None
    return size + 8, 0


# Ogg pages and WavPack blocks carry a capture pattern four bytes long; one whole page or block is
# as good a proof as three short MPEG frames.
FRAME_FORMATS: dict[str, FrameFormat] = {
    "mp3": FrameFormat("MP3 frame", b"\xff", mpeg_frame, 4, doubtful=_LAYER1),
    "aac": FrameFormat("AAC frame", b"\xff", adts_frame, 7),
    "ac3": FrameFormat("AC-3 frame", b"\x0b\x77", ac3_frame, 6),
    "eac3": FrameFormat("E-AC-3 frame", b"\x0b\x77", ac3_frame, 6),
    "dts": FrameFormat("DTS frame", DTS_SYNCS[0], dts_frame, 10),
    "ogg": FrameFormat("Ogg page", b"OggS", ogg_page, 27, chain=1, starts_file=True),
    "wavpack": FrameFormat("WavPack block", b"wvpk", wavpack_block, 32, chain=1, starts_file=True),
}

#: The streams :func:`~dropscribe.core.media.media_kind` searches a head for, in order of preference
#: (E-AC-3 is told from AC-3 by the frame found).
SEARCHED_IN_HEAD = tuple((kind, FRAME_FORMATS[kind]) for kind in ("mp3", "aac", "ac3", "dts"))
