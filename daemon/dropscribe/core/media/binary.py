"""Reading fixed-width integers out of headers, and telling text from encoded media."""

from __future__ import annotations

#: A 32-bit size field with every bit set: "not known yet" for writers that fill it in at the end.
U32_UNKNOWN = 0xFFFFFFFF


def u32be(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "big")


def u32le(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "little")


def syncsafe(data: bytes) -> int:
    """An ID3v2 size: four bytes of seven bits each, so the tag never contains an MPEG sync."""
    return data[0] << 21 | data[1] << 14 | data[2] << 7 | data[3]


def looks_like_text(data: bytes) -> bool:
    """No control bytes but tab, line breaks and form feed: like text files, unlike encoded media."""
    return not data.translate(None, _TEXT_BYTES)


_TEXT_BYTES = bytes([9, 10, 12, 13, *range(0x20, 0x7F), *range(0x80, 0x100)])


def fourcc_ok(kind: bytes) -> bool:
    """Whether ``kind`` can be a box or chunk name: printable ASCII, or the © of QuickTime's tags."""
    return len(kind) == 4 and all(0x20 <= b <= 0x7E or b == 0xA9 for b in kind)
