"""The truncation guard on plain values: how short an answer may fall before it is refused."""

from __future__ import annotations

import pytest

from dropscribe.core.errors import InputRejectedError, TruncatedAnswerError
from dropscribe.core.history import CallRecord
from dropscribe.core.result_checks import (
    TRUNCATED_ANSWERS_MAX,
    TRUNCATED_OUTCOME,
    Truncation,
    give_up_on_truncation,
    refusal,
    truncated_answers,
    truncation,
)


def test_an_answer_half_as_long_as_the_audio_is_refused() -> None:
    found = truncation(60.0, 30.0)
    assert found == Truncation(sent_s=60.0, reported_s=30.0)
    assert "30 s processed of 60.0 s sent" in found.message
    assert "30.0 s short" in found.message


def test_a_full_or_longer_report_passes() -> None:
    assert truncation(60.0, 60.0) is None
    assert truncation(59.4, 60.0) is None  # usage is billed in whole seconds, rounded up


def test_no_report_means_no_check() -> None:
    assert truncation(600.0, None) is None


@pytest.mark.parametrize(
    ("sent_s", "reported_s"),
    [
        (100.0, 90.0),  # exactly 10 % short (and well over 2 s): not more than 10 %
        (30.0, 27.0),  # exactly 10 % and 3 s
        (10.0, 8.0),  # exactly 2 s short (20 %): not more than 2 s
        (20.0, 18.0),  # exactly 2 s and exactly 10 %
    ],
)
def test_exactly_on_a_limit_is_accepted(sent_s: float, reported_s: float) -> None:
    assert truncation(sent_s, reported_s) is None


def test_just_over_both_limits_is_refused() -> None:
    assert truncation(100.0, 89.9) is not None
    assert truncation(10.0, 7.9) is not None
    assert truncation(20.0, 17.99) is not None


def test_short_audio_is_never_refused_for_rounding() -> None:
    # under 2 s of shortfall a clip passes however large the fraction is
    assert truncation(1.5, 0.0) is None
    assert truncation(2.0, 0.0) is None
    assert truncation(3.0, 1.0) is None
    assert truncation(3.0, 0.9) is not None


def test_on_a_long_recording_a_few_seconds_are_not_enough() -> None:
    # 10 s short of an hour is under 10 %: trailing silence, not a cut answer
    assert truncation(3600.0, 3590.0) is None
    assert truncation(3600.0, 3000.0) is not None


def test_float_noise_does_not_cross_a_limit() -> None:
    assert truncation(0.1 * 3 * 100, 27.0) is None  # 30.000000000000004 - 27 is 3 s, 10 %


def test_giving_up_after_the_bounded_number_of_short_answers() -> None:
    assert TRUNCATED_ANSWERS_MAX == 3
    assert [give_up_on_truncation(n) for n in range(1, 5)] == [False, False, True, True]


def _call(chunk: int, outcome: str | None) -> CallRecord:
    return CallRecord(id=1, result_key="k", chunk=chunk, kind="sync", started_at=1.0, ended_at=2.0,
                      outcome=outcome, request_id=None)  # fmt: skip


def test_short_answers_are_counted_per_chunk_from_the_calls() -> None:
    calls = [
        _call(0, TRUNCATED_OUTCOME),
        _call(0, "AsrUnavailableError"),
        _call(1, TRUNCATED_OUTCOME),
        _call(0, TRUNCATED_OUTCOME),
        _call(0, "ok"),
        _call(0, None),
    ]
    assert truncated_answers(calls, 0) == 2
    assert truncated_answers(calls, 1) == 1
    assert truncated_answers(calls, 2) == 0


def test_a_short_answer_is_retried_until_the_limit_then_fails_the_file() -> None:
    short = Truncation(sent_s=60.0, reported_s=30.0)
    first = refusal(short, 1, "req-1")
    assert isinstance(first, TruncatedAnswerError)
    assert first.code == "asr_truncated"
    assert first.request_id == "req-1"
    assert "30 s processed of 60.0 s sent" in first.message
    last = refusal(short, TRUNCATED_ANSWERS_MAX, "req-3")
    assert isinstance(last, InputRejectedError)
    assert last.code == "asr_truncated"
    assert "30 s processed of 60.0 s sent" in last.message
    assert "3 answers in a row" in last.message
