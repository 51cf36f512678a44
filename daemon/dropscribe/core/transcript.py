"""A transcript as text, SubRip and WebVTT, and joined from the pieces it was recognized in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dropscribe.core.recognition import Sentence


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


def _cue_lines(text: str) -> list[str]:
    """The lines of one cue's text, with the blank ones left out: a blank line ends a cue."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def _cues(segments: Sequence[Sentence]) -> list[tuple[Sentence, list[str]]]:
    # both formats expect cues by start time (WebVTT requires it); the sort is stable, so
    # segments that start together keep their order
    cues = [(seg, _cue_lines(seg.text)) for seg in sorted(segments, key=lambda seg: seg.start_s)]
    return [(seg, lines) for seg, lines in cues if lines]


def _timing(seg: Sentence, separator: str) -> str:
    return f"{_clock(seg.start_s, separator)} --> {_clock(max(seg.start_s, seg.end_s), separator)}"


def render_srt(segments: Sequence[Sentence]) -> str:
    """SubRip, numbered from 1; empty segments are dropped because players show them as gaps anyway.

    SubRip has no escapes, so an arrow that would make a text line read as a timing line becomes →.
    """
    blocks = []
    for index, (seg, lines) in enumerate(_cues(segments), start=1):
        text = "\n".join(line.replace("-->", "→") for line in lines)
        blocks.append(f"{index}\n{_timing(seg, ',')}\n{text}\n")
    return "\n".join(blocks)


def render_vtt(segments: Sequence[Sentence]) -> str:
    """WebVTT; the text is escaped, so tags, ``&`` and ``-->`` show as written instead of acting."""
    cues = []
    for seg, lines in _cues(segments):
        text = "\n".join(_vtt_escape(line) for line in lines)
        cues.append(f"{_timing(seg, '.')}\n{text}\n")
    return "WEBVTT\n\n" + "\n".join(cues)


def _vtt_escape(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def segments_to_json(segments: Sequence[Sentence]) -> list[dict[str, Any]]:
    return [{"start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3), "text": s.text} for s in segments]
