"""Media signatures at the head of a file, and signs at its tail that its transfer stopped.

Two questions the gate cannot answer from sizes and times alone:

- Is this media at all? :func:`media_kind` reads the container or stream signature from the first
  :data:`HEAD_BYTES`. Only a file with a known signature can be an upload still under way; anything
  else (text renamed ``.mp3``, random bytes, a PDF) is garbage and may fail at once.
- Did the transfer finish? :func:`tail_looks_cut` looks at the end of a recognized file for what a
  stopped transfer leaves behind: a last frame, page or box that does not fit in the file, a header
  stating more bytes than there are, a stream that lacks its closing marks, or zero bytes where a copy
  reserved the full size first (Windows/SMB copies set the end of file before writing) and then stalled.

Both are pure: they take bytes, or read through a ``read_at(offset, length)`` callback the caller
provides, and never read more than a few hundred KiB whatever the file size: the head, the last
:data:`TAIL_BYTES`, a few box or chunk headers, and for long zero tails a bisection in 4 KiB probes.

Zero tails. Encoded audio (MP3, AAC, Opus, FLAC...) never holds 4 KiB of zero bytes in a row, so such
a tail is unwritten space wherever it starts. PCM is different: digital silence is zero bytes too, and a
recording may well end in ten seconds of it. There the rule is: the zero run must start exactly at a
multiple of 64 KiB from the start of the file (within 3 bytes, for quiet samples whose last bytes are
zero), after real data. Copy engines write whole blocks of 64 KiB or more, so that is where a stalled
pre-allocated copy's zeros begin; a silence that begins at a sample chosen by the content lands there
once in about 16,000 files, and then costs only a wait. A copy that stalls during silence, or an engine
that writes odd-sized blocks, goes unseen by this rule; the header checks still apply. The PCM rule
serves the containers that may hold PCM (WAV and kin, AIFF, AU, CAF, AVI, ASF, VOC, Matroska with a PCM
track, MP4/MOV with a PCM sample entry or not ending in media data); the others use the plain one.

A cut that falls exactly between two frames of a stream that states no length of its own (ADTS, AC-3,
DTS, MPEG-TS, MP3 without a Xing header) cannot be told from a shorter recording, and is not reported.

What each kind is judged by, besides zero tails:

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
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

#: ``read_at(offset, length)``: up to ``length`` bytes from ``offset``, fewer only at the end of the file.
ReadAt = Callable[[int, int], bytes]

#: How much of the start of a file :func:`media_kind` wants.
HEAD_BYTES = 64 * 1024

#: How much of the end of a file the tail checks read at once. Two of the largest Ogg pages fit,
#: so the window always holds a whole page before a cut one.
TAIL_BYTES = 128 * 1024

#: Every kind :func:`media_kind` returns.
KINDS = frozenset({
    "wav", "xwma", "w64", "aiff", "au", "caf", "avi", "flac", "ogg", "mp3", "aac", "ac3", "eac3", "dts",
    "mp4", "matroska", "asf", "amr", "mpegts", "mpeg", "ape", "wavpack", "musepack", "tta", "tak", "voc",
    "flv", "dsf",
})  # fmt: skip

_GRAIN = 64 * 1024  # block size copy engines write in; where a stalled copy's zeros begin
_ALIGN_SLACK = 3  # a quiet last sample before the boundary may end in zero bytes
_ZERO_RUN = 4096  # shorter zero runs are not judged
_PROBE = 4096
_CHAIN = 3  # frames that must chain before a sync pattern is believed
_LAYER1_CHAIN = 16
_LAYER1 = (b"\xfe", b"\xff", b"\xf6", b"\xf7")  # second header byte of MPEG-1/2 layer I
_MAX_HEADERS = 2048  # boxes or chunks walked before giving up on a structure

_U32_UNKNOWN = 0xFFFFFFFF

_W64_RIFF = bytes.fromhex("72696666 2e91cf11 a5d628db 04c10000".replace(" ", ""))
_ASF_HEADER = bytes.fromhex("3026b275 8e66cf11 a6d900aa 0062ce6c".replace(" ", ""))
_ASF_FILE_PROPERTIES = bytes.fromhex("a1dcab8c 47a9cf11 8ee400c0 0c205365".replace(" ", ""))
_ASF_DATA = bytes.fromhex("3626b275 8e66cf11 a6d900aa 0062ce6c".replace(" ", ""))
_EBML = b"\x1a\x45\xdf\xa3"
_MKV_SEGMENT = b"\x18\x53\x80\x67"
_DTS_SYNCS = (b"\x7f\xfe\x80\x01", b"\xfe\x7f\x01\x80", b"\x1f\xff\xe8\x00", b"\xff\x1f\x00\xe8")
_AMR_MAGICS = (b"#!AMR\n", b"#!AMR-WB\n", b"#!AMR_MC1.0\n", b"#!AMR-WB_MC1.0\n")
_TOP_BOXES = frozenset({
    b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"meta", b"moof", b"mfra",
    b"pdin", b"sidx", b"styp", b"prft", b"emsg",
})  # fmt: skip
_TAG_STARTS = (b"APETAGEX", b"TAG", b"ID3", b"LYRICSBEGIN")
_MOOV_CHILDREN = frozenset({b"mvhd", b"cmov", b"trak", b"udta", b"meta", b"iods", b"prfl"})
_PCM_SAMPLE_ENTRIES = frozenset({
    b"lpcm", b"sowt", b"twos", b"in24", b"in32", b"fl32", b"fl64", b"raw ", b"NONE", b"ipcm", b"fpcm",
})  # fmt: skip


# --- the head ------------------------------------------------------------------------------------


def media_kind(head: bytes) -> str | None:
    """The kind of media the first bytes of a file announce, one of :data:`KINDS`; None for none.

    ``head`` is the start of the file, ideally :data:`HEAD_BYTES` long (or the whole file if shorter).
    Fixed signatures are read where they belong; frame-based streams (MPEG audio, ADTS, AC-3, DTS) are
    searched for anywhere in ``head`` and believed only when three frames chain, so random bytes and
    compressed documents do not pass for audio.
    """
    kind = _signature(head, 0)
    if kind is not None:
        return kind
    after_tag = _skip_id3v2(head, 0)
    if after_tag > 0:
        # ID3v2 almost always heads MP3, now and then FLAC or ADTS; a tag larger than the window is
        # cover art, and still says MP3.
        if after_tag >= len(head):
            return "mp3"
        kind = _signature(head, _skip_zeros(head, after_tag))
        if kind is not None:
            return kind
        found = _first_frames(head, after_tag)
        return found[0] if found is not None else "mp3"
    start = _skip_zeros(head, 0)
    if head[start : start + 4] in _DTS_SYNCS:
        return "dts"
    if _transport_stream(head) is not None:
        return "mpegts"
    found = _first_frames(head, 0)
    return found[0] if found is not None else None


def head_looks_unwritten(head: bytes) -> str | None:
    """A reason when the head is nothing but zero bytes: space reserved for a copy not written yet."""
    if head and not head.strip(b"\x00"):
        return f"the first {len(head)} bytes are all zero: space reserved, not written yet"
    return None


def _signature(data: bytes, pos: int) -> str | None:
    h = data[pos : pos + 16]
    four = h[:4]
    if four in (b"RIFF", b"RIFX"):
        return {b"WAVE": "wav", b"AVI ": "avi", b"XWMA": "xwma"}.get(h[8:12])
    fixed: str | None = {
        b"fLaC": "flac", _EBML: "matroska", b".snd": "au", b"MAC ": "ape", b"wvpk": "wavpack",
        b"MPCK": "musepack", b"TTA1": "tta", b"tBaK": "tak", b"FLV\x01": "flv", b"DSD ": "dsf",
        b"\x00\x00\x01\xba": "mpeg",
    }.get(four)  # fmt: skip
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
    if _is_bmff(data, pos):
        return "mp4"
    return None


def _is_bmff(data: bytes, pos: int) -> bool:
    """An ISO base media file (MP4, M4A, MOV, 3GP): ``ftyp`` first, or a first box that nests right."""
    if len(data) < pos + 8:
        return False
    size, kind = _u32be(data, pos), data[pos + 4 : pos + 8]
    if kind == b"ftyp":
        return 16 <= size <= 4096 and _fourcc_ok(data[pos + 8 : pos + 12])
    if kind not in (b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"):
        return False
    if size == 0:
        return kind == b"mdat"
    if size == 1:
        if len(data) < pos + 16:
            return False
        size = int.from_bytes(data[pos + 8 : pos + 16], "big")
    if size < 8:
        return False
    if kind == b"moov":
        return data[pos + 12 : pos + 16] in _MOOV_CHILDREN
    following = data[pos + size + 4 : pos + size + 8]
    if len(following) == 4:
        return following in _TOP_BOXES
    # Text can spell "mdat" at offset 4 too ("The mdat box..."); media data is not text.
    return kind == b"mdat" and not _looks_like_text(data[pos + 8 : pos + 72])


def _skip_id3v2(data: bytes, pos: int) -> int:
    """Offset after any ID3v2 tags at ``pos`` (``pos`` itself when there is none)."""
    while True:
        length = _id3v2_length(data, pos)
        if length is None:
            return pos
        pos += length


def _id3v2_length(data: bytes, pos: int) -> int | None:
    header = data[pos : pos + 10]
    if len(header) < 10 or header[:3] != b"ID3" or header[3] not in (2, 3, 4) or header[4] == 0xFF:
        return None
    if any(b & 0x80 for b in header[6:10]):
        return None
    return 10 + _syncsafe(header[6:10]) + (10 if header[5] & 0x10 else 0)


def _skip_zeros(data: bytes, pos: int) -> int:
    return len(data) - len(data[pos:].lstrip(b"\x00"))


def _first_frames(data: bytes, start: int) -> tuple[str, int] | None:
    """The earliest chain of frames of a frame-based stream in ``data``: its kind and offset."""
    best: tuple[str, int] | None = None
    for kind, sync, parse in _FRAMED:
        pos = data.find(sync, start)
        while pos >= 0 and (best is None or pos < best[1]):
            if _chains(data, pos, parse):
                best = (_ac3_family(data, pos) if kind == "ac3" else kind, pos)
                break
            pos = data.find(sync, pos + 1)
    return best


def _chains(data: bytes, pos: int, parse: _Parse) -> bool:
    """Whether :data:`_CHAIN` frames follow one another from ``pos``, or two do and ``data`` ends.

    Layer I headers without CRC read ``FF FF``, which binaries and tables are full of; real layer I
    audio (rare today) must show :data:`_LAYER1_CHAIN` frames instead.
    """
    key: int | None = None
    need = _LAYER1_CHAIN if parse is _mpeg_frame and data[pos + 1 : pos + 2] in _LAYER1 else _CHAIN
    for count in range(need):
        if pos + 16 > len(data):
            return count >= 2 and need == _CHAIN
        frame = parse(data, pos)
        if frame is None or (key is not None and frame[1] != key):
            return False
        key = frame[1]
        pos += frame[0]
    return True


def _transport_stream(data: bytes) -> tuple[int, int] | None:
    """``(first sync offset, packet size)`` when ``data`` is MPEG-TS (188), M2TS (192) or 204-byte TS."""
    for packet in (188, 192, 204):
        for first in range(min(packet, len(data))):
            count = (len(data) - first - 1) // packet + 1
            if count < 5:
                break
            # a run of the letter G is text; packets carry binary headers and tables
            synced = all(data[first + i * packet] == 0x47 for i in range(min(count, 8)))
            if synced and not _looks_like_text(data[first : first + 4 * packet]):
                return first, packet
    return None


# --- frame parsers: (length, consistency key) of the frame at pos, or None --------------------------

_Parse = Callable[[bytes, int], "tuple[int, int] | None"]

_MPEG_BITRATES: dict[tuple[bool, int], tuple[int, ...]] = {
    (True, 3): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 1): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 3): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 1): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame(data: bytes, pos: int) -> tuple[int, int] | None:
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


def _adts_frame(data: bytes, pos: int) -> tuple[int, int] | None:
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


def _ac3_frame(data: bytes, pos: int) -> tuple[int, int] | None:
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


def _ac3_family(data: bytes, pos: int) -> str:
    return "ac3" if data[pos + 5] >> 3 <= 10 else "eac3"


def _dts_frame(data: bytes, pos: int) -> tuple[int, int] | None:
    """A DTS core frame in the common 16-bit big-endian form."""
    if pos + 10 > len(data) or data[pos : pos + 4] != _DTS_SYNCS[0]:
        return None
    size = (data[pos + 5] & 3) << 12 | data[pos + 6] << 4 | data[pos + 7] >> 4
    return (size + 1, 0) if size >= 95 else None


def _ogg_page(data: bytes, pos: int) -> tuple[int, int] | None:
    if pos + 27 > len(data) or data[pos : pos + 4] != b"OggS" or data[pos + 4] != 0:
        return None
    segments = data[pos + 26]
    table = data[pos + 27 : pos + 27 + segments]
    if len(table) < segments:  # the segment table itself is cut: report at least what it needs
        return 27 + segments, 0
    return 27 + segments + sum(table), 0


def _wavpack_block(data: bytes, pos: int) -> tuple[int, int] | None:
    if pos + 32 > len(data) or data[pos : pos + 4] != b"wvpk":
        return None
    size, version = _u32le(data, pos + 4), int.from_bytes(data[pos + 8 : pos + 10], "little")
    if size < 24 or not 0x402 <= version <= 0x410:
        return None
    return size + 8, 0


_FRAMED: tuple[tuple[str, bytes, _Parse], ...] = (
    ("mp3", b"\xff", _mpeg_frame),
    ("aac", b"\xff", _adts_frame),
    ("ac3", b"\x0b\x77", _ac3_frame),
    ("dts", _DTS_SYNCS[0], _dts_frame),
)


# --- the tail ------------------------------------------------------------------------------------


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
    source = _Source(read_at, size, head, tail, tail_start)
    return _CHECKS.get(kind, _pcm_zero_tail)(source)


@dataclass(frozen=True)
class _Source:
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


# zero tails ---------------------------------------------------------------------------------------


def _trailing_zeros(data: bytes) -> int:
    return len(data) - len(data.rstrip(b"\x00"))


def _compressed_zero_tail(src: _Source) -> str | None:
    run = _trailing_zeros(src.tail)
    if run < _ZERO_RUN:
        return None
    at_least = "at least " if run == len(src.tail) and src.tail_start > 0 else ""
    return f"the file ends in {at_least}{run} zero bytes: space reserved for data that never came"


def _pcm_zero_tail(src: _Source) -> str | None:
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


def _zero_suffix_start(src: _Source) -> int:
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


# trailing tags ------------------------------------------------------------------------------------


def _strip_tags(src: _Source, end: int) -> int:
    """The end of the stream proper: before ID3v1, APEv2, Lyrics3 and appended ID3v2 tags."""
    for _ in range(8):
        if end >= 128 and src.at(end - 128, 3) == b"TAG":
            end -= 128
            continue
        footer = src.at(end - 32, 32)
        if len(footer) == 32 and footer[:8] == b"APETAGEX":
            length = _u32le(footer, 12) + (32 if _u32le(footer, 20) & 0x80000000 else 0)
            if 32 <= length <= end:
                end -= length
                continue
        marker = src.at(end - 15, 15)
        if marker[6:] == b"LYRICS200" and marker[:6].isdigit():
            end -= int(marker[:6]) + 15
            continue
        if marker[6:] == b"LYRICSEND":
            block = src.at(end - 5100, 5100)
            begin = block.rfind(b"LYRICSBEGIN")
            if begin >= 0:
                end -= len(block) - begin
                continue
        footer = src.at(end - 10, 10)
        if len(footer) == 10 and footer[:3] == b"3DI":
            end -= _syncsafe(footer[6:10]) + 20
            continue
        break
    return max(0, end)


# frame chains to the end --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Walk:
    outcome: str  # "end", "overrun", "short" (header cut), "broken" (no frame where one should be)
    frames: int  # whole frames walked
    last: int  # start of the last whole frame
    stop: int  # where the walk stopped
    need: int = 0  # length of the frame that overran


def _walk(data: bytes, pos: int, end: int, parse: _Parse, header: int) -> _Walk:
    key: int | None = None
    frames, last = 0, pos
    while True:
        if pos == end:
            return _Walk("end", frames, last, pos)
        if end - pos < header:
            return _Walk("short", frames, last, pos)
        frame = parse(data, pos)
        if frame is None or (key is not None and frame[1] != key):
            return _Walk("broken", frames, last, pos)
        length, key = frame
        if pos + length > end:
            return _Walk("overrun", frames, last, pos, length)
        frames, last, pos = frames + 1, pos, pos + length


def _frames_to_end(
    src: _Source, end: int, sync: bytes, parse: _Parse, header: int, first: int | None, what: str,
    chain: int = _CHAIN,
) -> tuple[str | None, int | None]:  # fmt: skip
    """Walk the frames of the tail to ``end``: ``(reason, None)`` when cut, ``(None, last frame)`` when
    they end there, ``(None, None)`` when no chain can be found to tell.

    A walk counts once ``chain`` frames followed one another, or when it started at ``first``, the
    stream's known first frame; otherwise it may have started on a sync pattern inside frame data.
    """
    base, data = src.tail_start, src.tail
    if end <= base:
        return None, None
    stop = end - base
    trusted = first - base if first is not None and first >= base else None
    pos = trusted if trusted is not None else 0
    while True:
        candidate = pos if pos == trusted else data.find(sync, pos, stop)
        if candidate < 0:
            return None, None
        walk = _walk(data, candidate, stop, parse, header)
        if walk.frames < chain and candidate != trusted:
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
        if rest.startswith(_TAG_STARTS):  # a whole tag would have been set aside before the walk
            return "the file ends inside the tag after the last frame", None
        pos = walk.stop + 1  # something else follows a real chain: look for a later one


def _first_frame(head: bytes, parse: _Parse, sync: bytes) -> int | None:
    start = _skip_id3v2(head, 0)
    pos = head.find(sync, start)
    while pos >= 0:
        if _chains(head, pos, parse):
            return pos
        pos = head.find(sync, pos + 1)
    return None


def _framed_check(sync: bytes, parse: _Parse, header: int, what: str) -> Callable[[_Source], str | None]:
    def check(src: _Source) -> str | None:
        zeros = _compressed_zero_tail(src)
        if zeros is not None:
            return zeros
        first = _first_frame(src.head, parse, sync)
        return _frames_to_end(src, _strip_tags(src, src.size), sync, parse, header, first, what)[0]

    return check


def _check_mp3(src: _Source) -> str | None:
    zeros = _compressed_zero_tail(src)
    if zeros is not None:
        return zeros
    first = _first_frame(src.head, _mpeg_frame, b"\xff")
    declared = _mpeg_stream_bytes(src.head, first) if first is not None else None
    # Whether that count includes tags differs between encoders; the whole file being shorter is a
    # cut under every reading.
    if declared is not None and declared > src.size:
        return f"the MP3 header states {declared} bytes of audio, the whole file holds {src.size}"
    end = _strip_tags(src, src.size)
    return _frames_to_end(src, end, b"\xff", _mpeg_frame, 4, first, "MP3 frame")[0]


def _mpeg_stream_bytes(head: bytes, first: int) -> int | None:
    """The stream length a Xing/Info or VBRI header in the first frame states, if any."""
    b1, b3 = head[first + 1], head[first + 3]
    mpeg1, mono = (b1 >> 3) & 3 == 3, b3 >> 6 == 3
    xing = first + 4 + ((17 if mono else 32) if mpeg1 else (9 if mono else 17))
    if head[xing : xing + 4] in (b"Xing", b"Info") and len(head) >= xing + 16:
        flags = _u32be(head, xing + 4)
        at = xing + 8 + (4 if flags & 1 else 0)
        return (_u32be(head, at) or None) if flags & 2 and len(head) >= at + 4 else None
    vbri = first + 36
    if head[vbri : vbri + 4] == b"VBRI" and len(head) >= vbri + 14:
        return _u32be(head, vbri + 10) or None
    return None


def _check_ogg(src: _Source) -> str | None:
    zeros = _compressed_zero_tail(src)
    if zeros is not None:
        return zeros
    first = 0 if src.head.startswith(b"OggS") else None
    end = _strip_tags(src, src.size)
    reason, last = _frames_to_end(src, end, b"OggS", _ogg_page, 27, first, "Ogg page", 1)
    if reason is None and last is not None and not src.at(last + 5, 1)[0] & 0x04:
        return "the last Ogg page does not carry the end-of-stream flag"
    return reason


def _check_wavpack(src: _Source) -> str | None:
    zeros = _compressed_zero_tail(src)
    if zeros is not None:
        return zeros
    first = 0 if src.head.startswith(b"wvpk") else None
    end = _strip_tags(src, src.size)
    reason, last = _frames_to_end(src, end, b"wvpk", _wavpack_block, 32, first, "WavPack block", 1)
    if reason is not None or last is None:
        return reason
    block = src.at(last, 32)
    total = _u32le(block, 12)
    samples = _u32le(block, 20)
    if total == _U32_UNKNOWN or not samples:
        return None
    total |= block[10] << 32
    reached = (_u32le(block, 16) | block[11] << 32) + samples
    if reached < total:
        return f"the last WavPack block ends at sample {reached}, the file states {total} samples"
    return None


# FLAC ---------------------------------------------------------------------------------------------


def _crc_table(poly: int, width: int) -> tuple[int, ...]:
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
        table.append(crc)
    return tuple(table)


_CRC8 = _crc_table(0x07, 8)
_CRC16 = _crc_table(0x8005, 16)


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def _crc16(data: bytes, start: int, stop: int, crc: int) -> int:
    table = _CRC16
    for byte in data[start:stop]:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc


_FLAC_BLOCK_SIZES = (0, 192, 576, 1152, 2304, 4608, -8, -16, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


def _flac_frame(data: bytes, pos: int) -> tuple[int, int, bool] | None:
    """``(block size, coded number, variable blocking)`` of a FLAC frame header whose CRC-8 holds."""
    if pos + 6 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xFE != 0xF8:
        return None
    block_code, rate_code = data[pos + 2] >> 4, data[pos + 2] & 0x0F
    channels, depth = data[pos + 3] >> 4, (data[pos + 3] >> 1) & 7
    if block_code == 0 or rate_code == 15 or channels > 10 or depth == 3 or data[pos + 3] & 1:
        return None
    lead = data[pos + 4]
    if lead < 0x80:
        extra, number = 0, lead
    elif 0xC0 <= lead < 0xFF:
        extra = next(n for n in range(1, 7) if lead < 0xFF - (0xFF >> (n + 2)))
        number = lead & (0x3F >> extra)
    else:
        return None
    at = pos + 5
    for byte in data[at : at + extra]:
        if byte & 0xC0 != 0x80:
            return None
        number = number << 6 | byte & 0x3F
    at += extra
    block = _FLAC_BLOCK_SIZES[block_code]
    if block < 0:
        width = -block // 8
        block = int.from_bytes(data[at : at + width], "big") + 1
        at += width
    at += {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if at >= len(data) or _crc8(data[pos:at]) != data[at]:
        return None
    return block, number, bool(data[pos + 1] & 1)


def _check_flac(src: _Source) -> str | None:
    zeros = _compressed_zero_tail(src)
    if zeros is not None:
        return zeros
    data, base = src.tail, src.tail_start
    stop = _strip_tags(src, src.size) - base
    if stop <= 0:
        return None
    starts = []
    pos = data.find(b"\xff", 0, stop)
    while pos >= 0:
        if data[pos + 1 : pos + 2] in (b"\xf8", b"\xf9") and _flac_frame(data, pos) is not None:
            starts.append(pos)
        pos = data.find(b"\xff", pos + 1, stop)
    # From the end backwards: the last frame is the one whose CRC-16 closes exactly at the end; a
    # frame that closes on a later header instead proves that header real, and its frame cut.
    for index in range(len(starts) - 1, max(-1, len(starts) - 65), -1):
        crc, at = 0, starts[index]
        for later in (*starts[index + 1 :], stop):
            crc, at = _crc16(data, at, later, crc), later
            if crc == 0 and later == stop:
                return _flac_samples(src, data, starts[index])
            if crc == 0:
                return f"the last FLAC frame is incomplete: {stop - later} bytes, its CRC does not close"
    return None


def _flac_samples(src: _Source, data: bytes, last: int) -> str | None:
    """The last frame must end at the sample count STREAMINFO states (a cut between frames)."""
    frame = _flac_frame(data, last)
    at = _skip_id3v2(src.head, 0)
    info = src.head[at : at + 42]
    if frame is None or len(info) < 42 or info[:4] != b"fLaC" or info[4] & 0x7F != 0:
        return None
    block, number, variable = frame
    fixed_block = int.from_bytes(info[10:12], "big")
    total = int.from_bytes(info[21:26], "big") & 0xFFFFFFFFF
    reached = (number if variable else number * fixed_block) + block
    if total and reached < total:
        return f"the last FLAC frame ends at sample {reached}, STREAMINFO states {total} samples"
    return None


# containers with stated sizes ---------------------------------------------------------------------


def _check_mp4(src: _Source) -> str | None:
    offset, last, moov, fragments = 0, b"", None, False
    for _ in range(_MAX_HEADERS):
        if offset >= src.size:
            break
        header = src.at(offset, 16)
        if len(header) < 8:
            return f"the file ends inside an MP4 box header at offset {offset}"
        if not header[:8].strip(b"\x00"):
            return f"zero bytes where an MP4 box should start, at offset {offset}"
        size, kind = _u32be(header, 0), header[4:8]
        if not _fourcc_ok(kind):
            return None  # something else follows the boxes: not a sign of a stopped transfer
        if size == 1:
            if len(header) < 16:
                return f"the file ends inside an MP4 box header at offset {offset}"
            size = int.from_bytes(header[8:16], "big")
        elif size == 0:
            size = src.size - offset
        if size < 8:
            return None
        if offset + size > src.size:
            name, present = kind.decode("latin-1"), src.size - offset
            return f"the MP4 '{name}' box at offset {offset} states {size} bytes, {present} are there"
        if kind == b"moov":
            moov = (offset, size)
        fragments = fragments or kind == b"moof"
        last, offset = kind, offset + size
    else:
        return _pcm_zero_tail(src)
    if moov is None and not fragments:
        return "there is no 'moov' box: the recording was never finalized"
    if last == b"mdat" and not _mp4_holds_pcm(src, moov):
        return _compressed_zero_tail(src)
    return _pcm_zero_tail(src)


def _mp4_holds_pcm(src: _Source, moov: tuple[int, int] | None) -> bool:
    if moov is None:
        return True
    box = src.at(moov[0], min(moov[1], HEAD_BYTES))
    pos = box.find(b"stsd")
    while pos >= 0:
        if box[pos + 16 : pos + 20] in _PCM_SAMPLE_ENTRIES:
            return True
        pos = box.find(b"stsd", pos + 4)
    return False


def _check_wave(src: _Source) -> str | None:
    """RIFF/RIFX/RF64 WAVE (and xWMA): the data chunk and the RIFF size must fit in the file."""
    head = src.head
    order: Literal["big", "little"] = "big" if head[:4] == b"RIFX" else "little"
    rf64 = head[:4] in (b"RF64", b"BW64")
    riff = int.from_bytes(head[4:8], order)
    declared = None if rf64 or riff in (0, _U32_UNKNOWN) else 8 + riff
    data64: int | None = None
    offset = 12
    for _ in range(_MAX_HEADERS):
        header = src.at(offset, 8)
        if len(header) < 8:
            break
        chunk, size = header[:4], int.from_bytes(header[4:8], order)
        if chunk == b"ds64":
            body = src.at(offset + 8, 16)
            if len(body) == 16:
                riff64, data64 = int.from_bytes(body[:8], "little"), int.from_bytes(body[8:], "little")
                declared = 8 + riff64 if riff64 else None
        if chunk == b"data":
            if rf64 and size == _U32_UNKNOWN and data64:
                size = data64
            if size not in (0, _U32_UNKNOWN) and offset + 8 + size > src.size:
                present = max(0, src.size - offset - 8)
                return f"the WAV header states {size} bytes of audio, {present} are there"
            break
        offset += 8 + size + (size & 1)
    if declared is not None and declared > src.size + 1:
        return f"the RIFF header states {declared} bytes, the file holds {src.size}"
    return _pcm_zero_tail(src)


def _check_avi(src: _Source) -> str | None:
    """AVI: each top-level RIFF chunk (AVI, then AVIX for files past 1 GB) must fit in the file."""
    offset = 0
    for _ in range(_MAX_HEADERS):
        header = src.at(offset, 8)
        if len(header) < 8 or header[:4] != b"RIFF":
            break
        size = _u32le(header, 4)
        if size == 0:
            break
        if offset + 8 + size > src.size:
            present = src.size - offset - 8
            return f"the AVI RIFF chunk at offset {offset} states {size} bytes, {present} are there"
        offset += 8 + size + (size & 1)
    return _pcm_zero_tail(src)


def _check_aiff(src: _Source) -> str | None:
    form = _u32be(src.head, 4)
    if form and 8 + form > src.size + 1:
        return f"the AIFF header states {8 + form} bytes, the file holds {src.size}"
    offset = 12
    for _ in range(_MAX_HEADERS):
        header = src.at(offset, 8)
        if len(header) < 8:
            break
        size = _u32be(header, 4)
        if header[:4] == b"SSND":
            if offset + 8 + size > src.size:
                return f"the AIFF sound chunk states {size} bytes, {src.size - offset - 8} are there"
            break
        offset += 8 + size + (size & 1)
    return _pcm_zero_tail(src)


def _check_au(src: _Source) -> str | None:
    start, size = _u32be(src.head, 4), _u32be(src.head, 8)
    if size != _U32_UNKNOWN and start + size > src.size:
        return f"the AU header states {size} bytes of audio, {max(0, src.size - start)} are there"
    return _pcm_zero_tail(src)


def _check_caf(src: _Source) -> str | None:
    offset = 8
    for _ in range(_MAX_HEADERS):
        header = src.at(offset, 12)
        if len(header) < 12:
            break
        size = int.from_bytes(header[4:12], "big", signed=True)
        if size < 0:  # the data chunk of a file still being recorded runs to the end
            break
        if offset + 12 + size > src.size:
            name = header[:4].decode("latin-1")
            return f"the CAF '{name}' chunk states {size} bytes, {src.size - offset - 12} are there"
        offset += 12 + size
    return _pcm_zero_tail(src)


def _check_w64(src: _Source) -> str | None:
    declared = int.from_bytes(src.head[16:24], "little")
    if declared > src.size:
        return f"the Wave64 header states {declared} bytes, the file holds {src.size}"
    return _pcm_zero_tail(src)


def _check_dsf(src: _Source) -> str | None:
    declared = int.from_bytes(src.head[12:20], "little")
    if declared > src.size:
        return f"the DSF header states {declared} bytes, the file holds {src.size}"
    return _compressed_zero_tail(src)


def _check_matroska(src: _Source) -> str | None:
    """The Segment's stated size must fit (live recordings leave it unknown, which is fine)."""
    head = src.head
    header = _ebml_size(head, 4)
    if header is not None:
        at = 4 + header[1] + header[0]
        segment = _ebml_size(head, at + 4) if head[at : at + 4] == _MKV_SEGMENT else None
        if segment is not None and not segment[2]:
            end = at + 4 + segment[1] + segment[0]
            if end > src.size:
                return f"the Matroska segment states {end} bytes, the file holds {src.size}"
    if b"A_PCM" in head or b"A_MS/ACM" in head:
        return _pcm_zero_tail(src)
    return _compressed_zero_tail(src)


def _ebml_size(data: bytes, pos: int) -> tuple[int, int, bool] | None:
    """``(value, length, unknown)`` of the EBML variable-length size at ``pos``."""
    if pos >= len(data) or data[pos] == 0:
        return None
    length = 9 - data[pos].bit_length()
    if pos + length > len(data):
        return None
    value = data[pos] & (0xFF >> length)
    for byte in data[pos + 1 : pos + length]:
        value = value << 8 | byte
    return value, length, value == (1 << (7 * length)) - 1


def _check_asf(src: _Source) -> str | None:
    """ASF (WMA/WMV): the file size the header states, and the last data packet actually written."""
    head = src.head
    props = head.find(_ASF_FILE_PROPERTIES)
    if props >= 0 and len(head) >= props + 104:
        body = props + 24
        declared, flags = int.from_bytes(head[body + 16 : body + 24], "little"), _u32le(head, body + 64)
        packet = _u32le(head, body + 68)
        if not flags & 1 and declared > src.size:
            return f"the ASF header states {declared} bytes, the file holds {src.size}"
        data = head.find(_ASF_DATA)
        count = int.from_bytes(head[data + 40 : data + 48], "little") if data >= 0 else 0
        if not flags & 1 and count and packet == _u32le(head, body + 72) and packet:
            last = data + 50 + (count - 1) * packet
            if last + packet <= src.size and src.at(last, 1) == b"\x00":
                return "the last ASF data packet is zero bytes: space reserved by a copy that stopped"
    return _pcm_zero_tail(src)


def _check_flv(src: _Source) -> str | None:
    """FLV: the file size onMetaData states, and the last tag's trailing size pointing back at it."""
    if src.size <= 13:
        return None
    at = src.head.find(b"\x00\x08filesize\x00")
    if at >= 0 and len(src.head) >= at + 19:
        (declared,) = struct.unpack(">d", src.head[at + 11 : at + 19])
        if math.isfinite(declared) and declared > src.size:
            return f"the FLV metadata states {declared:.0f} bytes, the file holds {src.size}"
    previous = _u32be(src.at(src.size - 4, 4), 0)
    tag = src.at(src.size - 4 - previous, 11)
    if previous < 11 or len(tag) < 11 or tag[0] & 0x1F not in (8, 9, 18):
        return "the last FLV tag is incomplete"
    if int.from_bytes(tag[1:4], "big") != previous - 11:
        return "the last FLV tag is incomplete"
    return None


def _check_transport_stream(src: _Source) -> str | None:
    zeros = _compressed_zero_tail(src)
    if zeros is not None:
        return zeros
    layout = _transport_stream(src.head)
    if layout is None:
        return None
    first, packet = layout
    span = 204 if packet == 204 else 188  # from a sync byte to the end of its packet
    if (src.size - first - span) % packet:
        return "the file ends inside a transport stream packet"
    for back in range(4):
        at = src.size - span - back * packet
        if at >= first and src.at(at, 1) != b"\x47":
            return "the transport stream packets at the end lost their sync"
    return None


_CHECKS: dict[str, Callable[[_Source], str | None]] = {
    "mp3": _check_mp3,
    "aac": _framed_check(b"\xff", _adts_frame, 7, "AAC frame"),
    "ac3": _framed_check(b"\x0b\x77", _ac3_frame, 6, "AC-3 frame"),
    "eac3": _framed_check(b"\x0b\x77", _ac3_frame, 6, "E-AC-3 frame"),
    "dts": _framed_check(_DTS_SYNCS[0], _dts_frame, 10, "DTS frame"),
    "ogg": _check_ogg,
    "flac": _check_flac,
    "wavpack": _check_wavpack,
    "mp4": _check_mp4,
    "wav": _check_wave,
    "xwma": _check_wave,
    "avi": _check_avi,
    "aiff": _check_aiff,
    "au": _check_au,
    "caf": _check_caf,
    "w64": _check_w64,
    "dsf": _check_dsf,
    "matroska": _check_matroska,
    "asf": _check_asf,
    "flv": _check_flv,
    "mpegts": _check_transport_stream,
    "mpeg": _compressed_zero_tail,
    "amr": _compressed_zero_tail,
    "ape": _compressed_zero_tail,
    "musepack": _compressed_zero_tail,
    "tta": _compressed_zero_tail,
    "tak": _compressed_zero_tail,
    "voc": _pcm_zero_tail,
}


# --- small helpers -------------------------------------------------------------------------------


def _u32be(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "big")


def _u32le(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "little")


def _syncsafe(data: bytes) -> int:
    return data[0] << 21 | data[1] << 14 | data[2] << 7 | data[3]


def _looks_like_text(data: bytes) -> bool:
    """No control bytes but tab, line breaks and form feed: like text files, unlike encoded media."""
    return not data.translate(None, _TEXT_BYTES)


_TEXT_BYTES = bytes([9, 10, 12, 13, *range(0x20, 0x7F), *range(0x80, 0x100)])


def _fourcc_ok(kind: bytes) -> bool:
    return len(kind) == 4 and all(0x20 <= b <= 0x7E or b == 0xA9 for b in kind)
