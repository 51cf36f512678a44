"""Turning a recognition result into the sidecar documents users read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dropscribe.core.recognition import Sentence

SCHEMA_VERSION = 1


def join_texts(texts: Sequence[str]) -> str:
    """Chunk transcripts joined in order; CJK text needs no space between pieces, others do."""
    out = ""
    for text in (t.strip() for t in texts):
        if not text:
            continue
        if out and not (_is_cjk(out[-1]) or _is_cjk(text[0])):
            out += " "
        out += text
    return out


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x3000 <= code <= 0x30FF or 0x3400 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF
        or 0xFF00 <= code <= 0xFFEF or 0xAC00 <= code <= 0xD7AF
    )  # fmt: skip


def render_txt(text: str) -> str:
    return text.rstrip("\n") + "\n"


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def render_srt(segments: Sequence[Sentence]) -> str:
    """SubRip, numbered from 1; empty segments are dropped because players show them as gaps anyway."""
    blocks = []
    index = 0
    for seg in segments:
        if not seg.text.strip():
            continue
        index += 1
        blocks.append(
            f"{index}\n{_clock(seg.start_s, ',')} --> {_clock(seg.end_s, ',')}\n{seg.text.strip()}\n"
        )
    return "\n".join(blocks)


def render_vtt(segments: Sequence[Sentence]) -> str:
    cues = [
        f"{_clock(seg.start_s, '.')} --> {_clock(seg.end_s, '.')}\n{seg.text.strip()}\n"
        for seg in segments
        if seg.text.strip()
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def segments_to_json(segments: Sequence[Sentence]) -> list[dict[str, Any]]:
    return [
        {"start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3), "text": s.text}
        for s in segments
    ]
