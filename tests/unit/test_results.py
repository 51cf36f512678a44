"""Stored results: a recording's pieces joined into the one result the journal keeps and sidecars show."""

from __future__ import annotations

from dropscribe.core.recognition import AsrResult, Sentence
from dropscribe.core.results import (
    answer_from_stored,
    answer_to_stored,
    chunk_segments,
    task_segments,
    whole_result,
)


def test_a_chunk_answer_survives_the_journal() -> None:
    answer = AsrResult("hello", language="en", emotion="happy", request_id="r-1", usage_seconds=4.0)
    assert answer_from_stored(answer_to_stored(answer)) == answer


def test_an_answer_stored_by_an_older_release_still_reads() -> None:
    """Only the text is required; usage defaults to none."""
    assert answer_from_stored({"text": "hi"}) == AsrResult("hi")


def test_chunks_join_in_order_with_their_offsets_as_timestamps() -> None:
    pieces = [
        (AsrResult("first part.", request_id="r-1", usage_seconds=60.0), 0.0, 59.5),
        (AsrResult("", language=None, usage_seconds=1.0), 59.5, 60.5),  # silence: no text, no language
        (
            AsrResult("second.", language="en", emotion="neutral", request_id="r-3", usage_seconds=30.0),
            60.5,
            90.0,
        ),
    ]
    result = whole_result(pieces, chunk_segments(pieces), model="qwen3-asr-flash", mode="split")
    assert result == {
        "text": "first part. second.",
        "language": "en",  # the first piece that detected one
        "emotion": "neutral",
        "segments": [
            {"start_s": 0.0, "end_s": 59.5, "text": "first part."},
            {"start_s": 59.5, "end_s": 60.5, "text": ""},
            {"start_s": 60.5, "end_s": 90.0, "text": "second."},
        ],
        "request_ids": ["r-1", "r-3"],
        "usage_seconds": 91.0,
        "model": "qwen3-asr-flash",
        "mode": "split",
        "chunks": 3,
    }


def test_no_piece_with_a_language_takes_the_first_pieces_emotion() -> None:
    pieces = [(AsrResult("a", emotion="sad"), 0.0, 1.0), (AsrResult("b", emotion="happy"), 1.0, 2.0)]
    result = whole_result(pieces, chunk_segments(pieces), model="m", mode="split")
    assert (result["language"], result["emotion"]) == (None, "sad")


def test_a_task_is_timed_by_its_sentences_or_else_spans_the_recording() -> None:
    timed = AsrResult("a b", sentences=(Sentence(0.0, 1.234567, "a"), Sentence(1.5, 2.0, "b")))
    assert task_segments(timed, 9.0) == [Sentence(0.0, 1.234567, "a"), Sentence(1.5, 2.0, "b")]
    assert task_segments(AsrResult("all of it"), 9.0) == [Sentence(0.0, 9.0, "all of it")]
    result = whole_result([(timed, 0.0, 9.0)], task_segments(timed, 9.0), model="f", mode="filetrans")
    assert result["segments"][0] == {"start_s": 0.0, "end_s": 1.235, "text": "a"}
    assert result["chunks"] == 1
