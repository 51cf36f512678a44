"""Readiness: a file that looks broken but may still be arriving waits; anything else is refused now."""

from __future__ import annotations

import pytest

from dropscribe.core.readiness import INCOMPLETE_CODES, busy_wait_s, unfinished_wait_s


@pytest.mark.parametrize("code", sorted(INCOMPLETE_CODES))
def test_media_that_changed_recently_waits_the_rest_of_incomplete_wait(code: str) -> None:
    """Quiet for 10 s of a 300 s allowance: looked at again in 290 s."""
    assert unfinished_wait_s(code, looks_like_media=True, quiet_s=10.0, incomplete_wait_s=300.0) == 290.0


def test_what_a_stalled_transfer_looks_like() -> None:
    """Only rejections a half-written file produces are worth waiting for."""
    assert frozenset({"empty_file", "empty_audio", "not_audio", "truncated_audio", "corrupt_audio"}) == (
        INCOMPLETE_CODES
    )


@pytest.mark.parametrize("quiet_s", [300.0, 301.0, 86_400.0])
def test_once_incomplete_wait_has_passed_it_is_refused(quiet_s: float) -> None:
    assert unfinished_wait_s("truncated_audio", looks_like_media=True, quiet_s=quiet_s,
                             incomplete_wait_s=300.0) is None  # fmt: skip


@pytest.mark.parametrize("code", ["too_large", "too_long", "no_audio_stream", "unsupported_file"])
def test_rejections_that_time_cannot_change_are_final_at_once(code: str) -> None:
    assert unfinished_wait_s(code, looks_like_media=True, quiet_s=0.0, incomplete_wait_s=300.0) is None


def test_bytes_without_a_media_signature_are_refused_at_once() -> None:
    """Text renamed as audio never turns into a recording, however long it waits."""
    wait_s = unfinished_wait_s("not_audio", looks_like_media=False, quiet_s=0.0, incomplete_wait_s=300.0)
    assert wait_s is None


def test_no_allowance_means_no_wait() -> None:
    assert unfinished_wait_s("empty_file", looks_like_media=True, quiet_s=0.0, incomplete_wait_s=0.0) is None


def test_a_file_held_open_for_writing_waits_the_settle_time_but_at_least_a_second() -> None:
    assert busy_wait_s(5.0) == 5.0
    assert busy_wait_s(0.0) == 1.0
    assert busy_wait_s(0.2) == 1.0
