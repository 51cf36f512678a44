"""The completeness gate on plain values: since when a file is quiet, and when it counts as settled."""

from __future__ import annotations

from dropscribe.core.gate import Fingerprint, is_settled, observe, settles_at

ONE: Fingerprint = (1, 10, 100, 1_000)
GROWN: Fingerprint = (1, 10, 200, 2_000)


def test_a_file_settles_once_unchanged_for_the_settle_time() -> None:
    seen = observe(None, ONE, 10.0)
    assert not is_settled(observe(seen, ONE, 14.9), 14.9, 5.0)
    assert is_settled(observe(seen, ONE, 15.0), 15.0, 5.0)
    assert settles_at(seen, 5.0) == 15.0


def test_time_quiet_before_the_first_look_counts() -> None:
    seen = observe(None, ONE, 10.0, quiet_before_s=3.0)
    assert settles_at(seen, 5.0) == 12.0
    assert is_settled(seen, 12.0, 5.0)
    assert is_settled(observe(None, ONE, 10.0, quiet_before_s=3600.0), 10.0, 5.0)


def test_a_change_while_watched_starts_the_wait_again_whatever_the_file_time_says() -> None:
    seen = observe(None, ONE, 10.0, quiet_before_s=3600.0)
    changed = observe(seen, GROWN, 11.0, quiet_before_s=3600.0)
    assert changed.since == 11.0
    assert changed.quiet_before_s == 0.0
    assert settles_at(changed, 5.0) == 16.0


def test_a_file_time_in_the_future_counts_as_no_quiet_time() -> None:
    assert settles_at(observe(None, ONE, 10.0, quiet_before_s=-60.0), 5.0) == 15.0
