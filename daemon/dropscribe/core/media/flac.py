"""FLAC's tail check: the last frame passes its CRC-16 and ends at the sample count STREAMINFO states.

FLAC frames state no length, so the last frame is found from the end backwards: the frame whose
CRC-16 closes exactly at the end of the stream.
"""

from __future__ import annotations

from dropscribe.core.media.source import Source
from dropscribe.core.media.tags import skip_id3v2, strip_tags


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


def check_flac(src: Source) -> str | None:
    """A reason when the last FLAC frame of the tail is cut, or ends short of the stated samples."""
    data, base = src.tail, src.tail_start
    stop = strip_tags(src, src.size) - base
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


def _flac_samples(src: Source, data: bytes, last: int) -> str | None:
    """The last frame must end at the sample count STREAMINFO states (a cut between frames)."""
    frame = _flac_frame(data, last)
    at = skip_id3v2(src.head, 0)
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
