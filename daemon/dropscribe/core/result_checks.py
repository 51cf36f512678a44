"""Checks on an answer before it is accepted: a backend that heard less than it was sent is refused.

A recognizer that stops early (a dropped stream, a cut upload, a decoder that gave up) still answers
"ok" with the text of what it heard. Its report of the seconds it processed is the only sign, so an
answer that falls well short of the audio sent is treated like a transient failure instead of being
stored as the file's transcript. Pure: plain numbers in, a decision out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dropscribe.core.errors import InputRejectedError, TruncatedAnswerError
from dropscribe.core.history import CallRecord

# Both must be exceeded: a short clip can be a second short by rounding alone, and on a long
# recording a few seconds of trailing silence are not worth a second payment.
TRUNCATION_MIN_SHORT_FRACTION = 0.10
TRUNCATION_MIN_SHORT_S = 2.0

# The service retries transient trouble forever, but a backend that keeps answering short for the same
# audio will not change its mind; after this many truncated answers for one request the file fails.
TRUNCATED_ANSWERS_MAX = 3

# how the journal records a call whose answer was refused as short (calls keep the error's class name)
TRUNCATED_OUTCOME = TruncatedAnswerError.__name__


@dataclass(frozen=True)
class Truncation:
    """An answer that covers less audio than was sent."""

    sent_s: float
    reported_s: float

    @property
    def message(self) -> str:
        return (
            f"the backend reported {self.reported_s:g} s processed of {self.sent_s:.1f} s sent"
            f" ({self.sent_s - self.reported_s:.1f} s short)"
        )


def truncation(sent_s: float, reported_s: float | None) -> Truncation | None:
    """The shortfall when ``reported_s`` falls short of ``sent_s`` by more than 10 % and more than 2 s.

    ``reported_s`` None means the backend reports no processed seconds: nothing to check against.
    """
    if reported_s is None:
        return None
    # milliseconds, so float noise cannot push an exact 10 % or 2 s over the line
    short = round(sent_s - reported_s, 3)
    if short > TRUNCATION_MIN_SHORT_S and short * 10 > round(sent_s, 3):
        return Truncation(sent_s=sent_s, reported_s=reported_s)
    return None


def give_up_on_truncation(truncated_answers: int) -> bool:
    """Whether ``truncated_answers`` short answers for one request (the latest included) are enough."""
    return truncated_answers >= TRUNCATED_ANSWERS_MAX


def truncated_answers(calls: Iterable[CallRecord], chunk: int) -> int:
    """How many answers for ``chunk`` were refused as short, from the journal's calls."""
    return sum(1 for call in calls if call.chunk == chunk and call.outcome == TRUNCATED_OUTCOME)


def refusal(
    short: Truncation, truncated_so_far: int, request_id: str | None
) -> TruncatedAnswerError | InputRejectedError:
    """What a short answer raises: a retry, or once too many came back short, the file's failure."""
    if give_up_on_truncation(truncated_so_far):
        return InputRejectedError(
            TruncatedAnswerError.code, f"{short.message}; {truncated_so_far} answers in a row came back short"
        )
    return TruncatedAnswerError(short.message, request_id=request_id)
