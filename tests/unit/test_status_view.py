"""The status page's view model, decided from plain status documents."""

from __future__ import annotations

import calendar
from typing import Any

import pytest

from dropscribe.core.status_view import (
    RECENT_LIMIT,
    audio_duration,
    build_view,
    progress,
    utc_day_start,
    utc_month_start,
)

NOW = float(calendar.timegm((2026, 11, 25, 12, 28, 44, 0, 0, 0)))


def doc(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"counts": {}, "paused": None, "inboxes": {}, "in_flight": [],
                            "recent_failures": [], "recent_done": [], "billed": {}}  # fmt: skip
    return {**base, **fields}


def test_days_and_months_start_at_utc_midnight() -> None:
    assert utc_day_start(NOW) == calendar.timegm((2026, 11, 25, 0, 0, 0, 0, 0, 0))
    assert utc_month_start(NOW) == calendar.timegm((2026, 11, 1, 0, 0, 0, 0, 0, 0))
    # the first second of a month is its own start, the last second of the previous one is not
    first = float(calendar.timegm((2027, 1, 1, 0, 0, 0, 0, 0, 0)))
    assert utc_month_start(first) == first
    assert utc_month_start(first - 1) == calendar.timegm((2026, 12, 1, 0, 0, 0, 0, 0, 0))
    assert utc_day_start(first - 1) == calendar.timegm((2026, 12, 31, 0, 0, 0, 0, 0, 0))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (-3, "0 s"), (42.4, "42 s"), (59.6, "1 min 00 s"), (725, "12 min 05 s"),
     (3 * 3600 + 7 * 60 + 30, "3 h 07 min")],
)  # fmt: skip
def test_billed_audio_reads_as_hours_minutes_seconds(seconds: float, text: str) -> None:
    assert audio_duration(seconds) == text


def test_progress_says_chunks_done_of_total_or_what_kind_of_request() -> None:
    assert progress(3, 7, "split") == "3 of 7 chunks"
    assert progress(9, 7, "split") == "7 of 7 chunks"
    assert progress(None, 1, "single") == "1 request"
    assert progress(0, None, "split") == "preparing"
    assert progress(0, None, "filetrans") == "file transcription task"


def test_a_quiet_healthy_service_reads_running_without_a_banner() -> None:
    view = build_view(doc(inboxes={"/srv/in": {"available": True, "waiting": 2, "settling": 1}}), NOW)

    assert (view.headline, view.level, view.banner) == ("Running", "ok", None)
    assert [(i.name, i.waiting, i.settling, i.held, i.over_budget, i.unreachable) for i in view.inboxes] == [
        ("/srv/in", 2, 1, 0, 0, None)
    ]


def test_a_paused_queue_gets_a_banner_with_its_reason() -> None:
    paused = {"code": "InvalidApiKey", "message": "Invalid API-key provided.", "since": NOW - 60}

    view = build_view(doc(paused=paused), NOW)

    assert view.level == "error"
    assert view.banner is not None
    assert "InvalidApiKey" in view.banner
    assert "Invalid API-key provided." in view.banner


def test_a_paused_backend_is_named_and_its_fallback_mentioned() -> None:
    paused = {"code": "Arrearage", "message": "Access denied.", "backend": "dashscope", "since": NOW}

    banner = build_view(doc(paused=paused), NOW).banner

    assert banner is not None
    assert banner.startswith("Backend dashscope paused (Arrearage): Access denied.")
    assert "fallback_backend" in banner


def test_budgets_show_use_limit_reset_and_the_files_they_hold() -> None:
    rows = [
        {"scope": "defaults", "period": "day", "limit_s": 3600.0, "used_s": 3000.0, "reserved_s": 500.0,
         "resets_at": NOW + 3600},
        {"scope": "inbox:/srv/in", "period": "month", "limit_s": 36000.0, "used_s": 60.0, "reserved_s": 0.0,
         "resets_at": "soon"},
    ]  # fmt: skip
    waiting = [
        {"relpath": "long.wav", "reason": "over_budget", "budget": {"scope": "defaults", "period": "day"}},
        {"relpath": "b.wav", "reason": "retry"},
    ]

    day, month = build_view(doc(budgets=rows, waiting=waiting), NOW).budgets

    assert (day.scope, day.period, day.used, day.limit) == ("defaults", "day", "58 min 20 s", "1 h 00 min")
    assert (day.waiting, day.resets) == (1, "2026-11-25 13:28 UTC")
    assert (month.waiting, month.resets) == (0, "")  # an odd value shows as empty, never fails
    assert build_view(doc(budgets="nonsense", waiting=3), NOW).budgets == ()


def test_a_full_journal_disk_is_a_pause_too() -> None:
    view = build_view(doc(state_full="no space left for the journal in /var/lib/dropscribe"), NOW)

    assert view.headline == "Paused"
    assert view.banner is not None
    assert "/var/lib/dropscribe" in view.banner


def test_an_unreachable_inbox_and_held_files_are_warnings() -> None:
    down = build_view(doc(inboxes={"/a": {"available": False, "problem": "inbox not reachable: gone"},
                                   "/b": {"available": True}}), NOW)  # fmt: skip
    held = build_view(doc(inboxes={"/a": {"available": True, "held": 3}}), NOW)

    assert (down.level, down.headline) == ("warning", "Running, 1 inbox(es) unreachable")
    assert [i.unreachable for i in down.inboxes] == ["inbox not reachable: gone", None]
    assert (held.level, held.inboxes[0].held) == ("warning", 3)


def test_in_flight_recent_and_billed_are_shown_as_people_read_them() -> None:
    view = build_view(doc(
        in_flight=[{"inbox": "/in", "relpath": "a/talk.mp3", "mode": "split", "chunks_done": 2,
                    "chunks_total": 5, "elapsed_s": 75.2}],
        recent_failures=[{"inbox": "/in", "relpath": "x.mp3", "code": "not_audio", "message": "not media",
                          "finished_at": NOW - 30}],
        recent_done=[{"inbox": "/in", "relpath": f"{i}.wav", "finished_at": NOW - 7200} for i in range(20)],
        billed={"today_s": 95, "month_s": 7300}, counts={"done": 20, "failed": 1},
    ), NOW)  # fmt: skip

    assert [(f.relpath, f.progress, f.elapsed) for f in view.in_flight] == [("a/talk.mp3", "2 of 5 chunks",
                                                                              "1 min 15 s")]  # fmt: skip
    assert [(f.relpath, f.code, f.message, f.when) for f in view.recent_failed] == [
        ("x.mp3", "not_audio", "not media", "30 s ago")
    ]
    assert len(view.recent_done) == RECENT_LIMIT
    assert view.recent_done[0].code is None
    assert view.recent_done[0].when == "2 h ago"
    assert (view.billed_today, view.billed_month) == ("1 min 35 s", "2 h 01 min")
    assert view.counts == (("done", 20), ("failed", 1))


def test_odd_or_missing_fields_show_as_empty_never_fail() -> None:
    view = build_view({"inboxes": ["not a map"], "in_flight": [7], "recent_failures": "x", "billed": 3,
                       "counts": None, "paused": "yes"}, NOW)  # fmt: skip

    assert (view.inboxes, view.in_flight, view.recent_failed, view.counts) == ((), (), (), ())
    assert view.billed_today == "0 s"
    assert view.banner is None
