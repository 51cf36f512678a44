"""Containers made of sized chunks (RIFF WAVE and kin, AVI, AIFF, CAF, Wave64, DSF, AU): the sizes
their headers state must fit in the file. A transfer that stopped leaves a file shorter than them.

Each check returns a reason, or None to leave the verdict to the zero tail rule of the kind.
"""

from __future__ import annotations

from typing import Literal

from dropscribe.core.media.binary import U32_UNKNOWN, u32be, u32le
from dropscribe.core.media.source import MAX_HEADERS, Source


def check_wave(src: Source) -> str | None:
    """RIFF/RIFX/RF64 WAVE (and xWMA): the data chunk and the RIFF size must fit in the file."""
    head = src.head
    order: Literal["big", "little"] = "big" if head[:4] == b"RIFX" else "little"
    rf64 = head[:4] in (b"RF64", b"BW64")
    riff = int.from_bytes(head[4:8], order)
    declared = None if rf64 or riff in (0, U32_UNKNOWN) else 8 + riff
    data64: int | None = None
    offset = 12
    for _ in range(MAX_HEADERS):
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
            if rf64 and size == U32_UNKNOWN and data64:
                size = data64
            if size not in (0, U32_UNKNOWN) and offset + 8 + size > src.size:
                present = max(0, src.size - offset - 8)
                return f"the WAV header states {size} bytes of audio, {present} are there"
            break
        offset += 8 + size + (size & 1)
    if declared is not None and declared > src.size + 1:
        return f"the RIFF header states {declared} bytes, the file holds {src.size}"
    return None


def check_avi(src: Source) -> str | None:
    """AVI: each top-level RIFF chunk (AVI, then AVIX for files past 1 GB) must fit in the file."""
    offset = 0
    for _ in range(MAX_HEADERS):
        header = src.at(offset, 8)
        if len(header) < 8 or header[:4] != b"RIFF":
            break
        size = u32le(header, 4)
        if size == 0:
            break
        if offset + 8 + size > src.size:
            present = src.size - offset - 8
            return f"the AVI RIFF chunk at offset {offset} states {size} bytes, {present} are there"
        offset += 8 + size + (size & 1)
    return None


def check_aiff(src: Source) -> str | None:
    """AIFF/AIFC: the FORM size and the sound data chunk must fit in the file."""
    form = u32be(src.head, 4)
    if form and 8 + form > src.size + 1:
        return f"the AIFF header states {8 + form} bytes, the file holds {src.size}"
    offset = 12
    for _ in range(MAX_HEADERS):
        header = src.at(offset, 8)
        if len(header) < 8:
            break
        size = u32be(header, 4)
        if header[:4] == b"SSND":
            if offset + 8 + size > src.size:
                return f"the AIFF sound chunk states {size} bytes, {src.size - offset - 8} are there"
            break
        offset += 8 + size + (size & 1)
    return None


def check_au(src: Source) -> str | None:
    start, size = u32be(src.head, 4), u32be(src.head, 8)
    if size != U32_UNKNOWN and start + size > src.size:
        return f"the AU header states {size} bytes of audio, {max(0, src.size - start)} are there"
    return None


def check_caf(src: Source) -> str | None:
    offset = 8
    for _ in range(MAX_HEADERS):
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
    return None


def check_w64(src: Source) -> str | None:
    declared = int.from_bytes(src.head[16:24], "little")
    if declared > src.size:
        return f"the Wave64 header states {declared} bytes, the file holds {src.size}"
    return None


def check_dsf(src: Source) -> str | None:
    declared = int.from_bytes(src.head[12:20], "little")
    if declared > src.size:
        return f"the DSF header states {declared} bytes, the file holds {src.size}"
    return None
