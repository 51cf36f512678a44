"""Counting failed attempts: how long a file waits before its next try, and when a caller gives up.

The service never gives up on transient trouble (a file waits in its inbox until the API is back);
``dropscribe transcribe`` does, after a run of failures or once the waits add up, because someone is
waiting at the terminal. Both count the same way and back off with :func:`dropscribe.core.retry.backoff_s`.
"""

from __future__ import annotations

from dataclasses import dataclass

from dropscribe.core.retry import backoff_s


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float
    cap_s: float
    max_failures: int | None = None  # give up at this many failures in a row; None: never
    max_wait_s: float | None = None  # give up once the waits between attempts would exceed this


@dataclass(frozen=True)
class NextAttempt:
    failures: int  # failed attempts in a row, the one just reported included
    delay_s: float  # wait this long before the next one
    give_up: bool


def failures_so_far(journaled: int, counted: int) -> int:
    """Failures before this one: the journal's count, or the caller's own for errors before a job row
    existed (a share lock on open, a read error while hashing), whichever is larger."""
    return max(journaled, counted)


def after_failure(
    policy: RetryPolicy,
    failures_before: int,
    *,
    jitter: float,
    retry_after_s: float | None = None,
    waited_s: float = 0.0,
) -> NextAttempt:
    """What one more failure means, given ``failures_before`` in a row and ``waited_s`` waited so far.

    ``jitter`` is a uniform random number in [0, 1] drawn by the caller; ``retry_after_s`` is the
    server's ``Retry-After``, a floor for the wait.
    """
    failures = failures_before + 1
    delay = backoff_s(failures, base_s=policy.base_s, cap_s=policy.cap_s, jitter=jitter,
                      retry_after_s=retry_after_s)  # fmt: skip
    give_up = (policy.max_failures is not None and failures >= policy.max_failures) or (
        policy.max_wait_s is not None and waited_s + delay > policy.max_wait_s
    )
    return NextAttempt(failures, delay, give_up)
