"""Streaming containers (Matroska, ASF, FLV, MPEG transport streams): the sizes and packet layout
their headers state must fit the file, and their last packet or tag must be whole.

Each check returns a reason, or None to leave the verdict to the zero tail rule of the kind.
"""

from __future__ import annotations

import math
import struct

from dropscribe.core.media.binary import u32be, u32le
from dropscribe.core.media.signatures import transport_stream
from dropscribe.core.media.source import Source
from dropscribe.core.media.zero_tails import compressed_zero_tail, pcm_zero_tail

_MKV_SEGMENT = b"\x18\x53\x80\x67"
_ASF_FILE_PROPERTIES = bytes.fromhex("a1dcab8c 47a9cf11 8ee400c0 0c205365".replace(" ", ""))
_ASF_DATA = bytes.fromhex("3626b275 8e66cf11 a6d900aa 0062ce6c".replace(" ", ""))


def check_matroska(src: Source) -> str | None:
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
    return None


def matroska_zero_tail(src: Source) -> str | None:
    """The PCM zero tail rule when a track is PCM, the plain one otherwise."""
    if b"A_PCM" in src.head or b"A_MS/ACM" in src.head:
        return pcm_zero_tail(src)
    return compressed_zero_tail(src)


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


def check_asf(src: Source) -> str | None:
    """ASF (WMA/WMV): the file size the header states, and the last data packet actually written."""
    head = src.head
    props = head.find(_ASF_FILE_PROPERTIES)
    if props >= 0 and len(head) >= props + 104:
        body = props + 24
        declared, flags = int.from_bytes(head[body + 16 : body + 24], "little"), u32le(head, body + 64)
        packet = u32le(head, body + 68)
        if not flags & 1 and declared > src.size:
            return f"the ASF header states {declared} bytes, the file holds {src.size}"
        data = head.find(_ASF_DATA)
        count = int.from_bytes(head[data + 40 : data + 48], "little") if data >= 0 else 0
        if not flags & 1 and count and packet == u32le(head, body + 72) and packet:
            last = data + 50 + (count - 1) * packet
            if last + packet <= src.size and src.at(last, 1) == b"\x00":
                return "the last ASF data packet is zero bytes: space reserved by a copy that stopped"
    return None


def check_flv(src: Source) -> str | None:
    """FLV: the file size onMetaData states, and the last tag's trailing size pointing back at it."""
    if src.size <= 13:
        return None
    at = src.head.find(b"\x00\x08filesize\x00")
    if at >= 0 and len(src.head) >= at + 19:
        (declared,) = struct.unpack(">d", src.head[at + 11 : at + 19])
        if math.isfinite(declared) and declared > src.size:
            return f"the FLV metadata states {declared:.0f} bytes, the file holds {src.size}"
    previous = u32be(src.at(src.size - 4, 4), 0)
    tag = src.at(src.size - 4 - previous, 11)
    if previous < 11 or len(tag) < 11 or tag[0] & 0x1F not in (8, 9, 18):
        return "the last FLV tag is incomplete"
    if int.from_bytes(tag[1:4], "big") != previous - 11:
        return "the last FLV tag is incomplete"
    return None


def check_transport_stream(src: Source) -> str | None:
    """MPEG-TS: the file ends on a packet boundary with the packet syncs in place."""
    layout = transport_stream(src.head)
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
