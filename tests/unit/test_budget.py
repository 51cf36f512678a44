"""Budgets on plain values: scopes, periods in a zone, resets across month ends and DST, admission."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dropscribe.core.budget import (
    BudgetLimit,
    Charge,
    Over,
    admit,
    charges,
    inbox_scope,
    period_key,
    resets_at,
    rules_scope,
)

BERLIN = ZoneInfo("Europe/Berlin")


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_scopes_are_stable_names_of_where_a_budget_is_written() -> None:
    assert inbox_scope("/srv/in") == "inbox:/srv/in"
    assert rules_scope("/srv/in", "a/b") == "rules:/srv/in/a/b"
    assert rules_scope("/srv/in/", ".") == rules_scope("/srv/in", "") == "rules:/srv/in/."


def test_days_and_months_are_named_by_the_zones_calendar() -> None:
    late = epoch("2026-01-31T23:30:00+00:00")  # already 1 February in Berlin
    assert period_key("day", late, UTC) == "day:2026-01-31"
    assert period_key("month", late, UTC) == "month:2026-01"
    assert period_key("day", late, BERLIN) == "day:2026-02-01"
    assert period_key("month", late, BERLIN) == "month:2026-02"


def test_a_period_resets_at_the_next_local_midnight_or_first_of_the_month() -> None:
    at = epoch("2026-12-31T22:30:00+00:00")  # 23:30 on New Year's Eve in Berlin
    assert resets_at("day", at, BERLIN) == epoch("2027-01-01T00:00:00+01:00")
    assert resets_at("month", at, BERLIN) == epoch("2027-01-01T00:00:00+01:00")
    assert resets_at("day", at, UTC) == epoch("2027-01-01T00:00:00+00:00")
    assert resets_at("month", epoch("2026-02-10T12:00:00+00:00"), UTC) == epoch("2026-03-01T00:00:00+00:00")


def test_a_dst_day_is_23_hours_long_and_still_resets_at_midnight() -> None:
    spring = epoch("2026-03-29T01:00:00+01:00")  # Berlin moves to summer time at 02:00 that day
    assert period_key("day", spring, BERLIN) == "day:2026-03-29"
    end = resets_at("day", spring, BERLIN)
    assert end == epoch("2026-03-30T00:00:00+02:00")
    assert end - epoch("2026-03-29T00:00:00+01:00") == 23 * 3600
    autumn = epoch("2026-10-25T12:00:00+01:00")
    assert resets_at("day", autumn, BERLIN) - epoch("2026-10-25T00:00:00+02:00") == 25 * 3600


def test_charges_are_one_per_scope_and_capped_period() -> None:
    at = epoch("2026-05-05T10:00:00+00:00")
    found = charges(
        [
            BudgetLimit(daily_s=60, scope="defaults"),
            BudgetLimit(daily_s=10, monthly_s=100, scope="inbox:/in"),
        ],
        at,
        UTC,
    )
    assert [(c.scope, c.period, c.key, c.limit_s) for c in found] == [
        ("defaults", "day", "day:2026-05-05", 60),
        ("inbox:/in", "day", "day:2026-05-05", 10),
        ("inbox:/in", "month", "month:2026-05", 100),
    ]
    assert charges([BudgetLimit(scope="x")], at, UTC) == ()


def test_a_file_is_admitted_only_if_it_fits_every_budget_on_its_way_up() -> None:
    day_end, month_end = 1000.0, 5000.0
    found = [
        Charge("defaults", "day", "day:d", 10.0, day_end),
        Charge("inbox:/in", "month", "month:m", 100.0, month_end),
    ]
    assert admit(4.0, found, {("defaults", "day:d"): 6.0}) is None  # exactly full is still within
    assert admit(4.1, found, {("defaults", "day:d"): 6.0}) == Over("defaults", "day", 10.0, 6.0, day_end)
    # both refuse: room comes back only when the later one resets
    used = {("defaults", "day:d"): 9.0, ("inbox:/in", "month:m"): 99.0}
    assert admit(2.0, found, used) == Over("inbox:/in", "month", 100.0, 99.0, month_end)
    assert admit(1000.0, [], {}) is None
