"""Metadata tags that sit before or after an audio stream: ID3v2 in front; ID3v1, APEv2, Lyrics3 and
appended ID3v2 behind. The frame checks look past them to the stream proper."""

from __future__ import annotations

from dropscribe.core.media.binary import syncsafe, u32le
from dropscribe.core.media.source import Source

#: How the tags that may follow the last frame begin; a cut inside one leaves this behind.
TAG_STARTS = (b"APETAGEX", b"TAG", b"ID3", b"LYRICSBEGIN")


def skip_id3v2(data: bytes, pos: int) -> int:
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
    return 10 + syncsafe(header[6:10]) + (10 if header[5] & 0x10 else 0)


def strip_tags(src: Source, end: int) -> int:
    """The end of the stream proper: before ID3v1, APEv2, Lyrics3 and appended ID3v2 tags."""
    for _ in range(8):
        if end >= 128 and src.at(end - 128, 3) == b"TAG":
            end -= 128
            continue
        footer = src.at(end - 32, 32)
        if len(footer) == 32 and footer[:8] == b"APETAGEX":
            length = u32le(footer, 12) + (32 if u32le(footer, 20) & 0x80000000 else 0)
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
            end -= syncsafe(footer[6:10]) + 20
            continue
        break
    return max(0, end)
