"""Attempt accounting on plain values: failures in a row, the next wait, and when to give up."""

from __future__ import annotations

import pytest

from dropscribe.core.attempts import RetryPolicy, after_failure, failures_so_far

SERVICE = RetryPolicy(base_s=2.0, cap_s=60.0)  # never gives up
NO_JITTER = 0.5  # the middle of the ±25 % spread


def test_the_wait_doubles_per_failure_up_to_the_cap() -> None:
    failures, waits = 0, []
    for _ in range(8):
        step = after_failure(SERVICE, failures, jitter=NO_JITTER)
        failures = step.failures
        waits.append(step.delay_s)
        assert not step.give_up
    assert waits == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert failures == 8


def test_jitter_spreads_the_wait_by_a_quarter_either_way() -> None:
    assert after_failure(SERVICE, 2, jitter=0.0).delay_s == pytest.approx(6.0)
    assert after_failure(SERVICE, 2, jitter=1.0).delay_s == pytest.approx(10.0)


def test_retry_after_is_a_floor_beyond_the_cap() -> None:
    step = after_failure(SERVICE, 0, jitter=NO_JITTER, retry_after_s=90.0)

    assert step.delay_s == 90.0
    assert step.failures == 1


def test_failures_before_a_job_row_existed_count_too() -> None:
    assert failures_so_far(journaled=0, counted=3) == 3
    assert failures_so_far(journaled=5, counted=3) == 5
    assert after_failure(SERVICE, failures_so_far(0, 3), jitter=NO_JITTER).delay_s == 16.0


def test_a_caller_gives_up_after_so_many_failures_in_a_row() -> None:
    policy = RetryPolicy(base_s=0.1, cap_s=1.0, max_failures=3)

    assert not after_failure(policy, 1, jitter=NO_JITTER).give_up
    assert after_failure(policy, 2, jitter=NO_JITTER).give_up


def test_a_caller_gives_up_when_the_next_wait_would_pass_its_budget() -> None:
    policy = RetryPolicy(base_s=10.0, cap_s=100.0, max_wait_s=60.0)

    assert not after_failure(policy, 1, jitter=NO_JITTER, waited_s=10.0).give_up  # 10 + 20 <= 60
    assert after_failure(policy, 2, jitter=NO_JITTER, waited_s=30.0).give_up  # 30 + 40 > 60
