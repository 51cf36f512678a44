"""The stored form of recognition answers: one request's answer, and a whole recording's result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dropscribe.core import transcript
from dropscribe.core.recognition import AsrResult, Sentence

# one recognized piece of a recording: the answer, and where the piece starts and ends in the source
Piece = tuple[AsrResult, float, float]


def answer_to_stored(result: AsrResult) -> dict[str, Any]:
    """A chunk's answer as the journal keeps it the moment it arrives."""
    return {
        "text": result.text,
        "language": result.language,
        "emotion": result.emotion,
        "request_id": result.request_id,
        "usage_seconds": result.usage_seconds,
    }


def answer_from_stored(stored: Mapping[str, Any]) -> AsrResult:
    return AsrResult(
        text=stored["text"], language=stored.get("language"), emotion=stored.get("emotion"),
        request_id=stored.get("request_id"), usage_seconds=stored.get("usage_seconds", 0.0),
    )  # fmt: skip


def whole_result(
    pieces: Sequence[Piece], segments: Sequence[Sentence], *, model: str, mode: str
) -> dict[str, Any]:
    """A recording's result from its pieces in order; language and emotion from the first that has one."""
    first = next((r for r, _, _ in pieces if r.language), pieces[0][0])
    return {
        "text": transcript.join_texts([r.text for r, _, _ in pieces]),
        "language": first.language,
        "emotion": first.emotion,
        "segments": transcript.segments_to_json(segments),
        "request_ids": [r.request_id for r, _, _ in pieces if r.request_id],
        "usage_seconds": sum(r.usage_seconds for r, _, _ in pieces),
        "model": model,
        "mode": mode,
        "chunks": len(pieces),
    }


def task_segments(result: AsrResult, duration_s: float) -> list[Sentence]:
    """A task's sentences; one without any is one segment over the whole recording."""
    return list(result.sentences) or [Sentence(0.0, duration_s, result.text)]


def chunk_segments(pieces: Sequence[Piece]) -> list[Sentence]:
    """Chunks are timed by their offsets in the source: one segment each."""
    return [Sentence(start, end, r.text) for r, start, end in pieces]
