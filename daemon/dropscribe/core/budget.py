"""Budgets on paid audio: which budgets a file counts against, their periods, and whether it fits now.

Pure: the caller gives the time (epoch seconds), the zone days and months are counted in, and what the
journal says is already spent or reserved in each period.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import PurePosixPath
from typing import Literal

Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")
DEFAULTS_SCOPE = "defaults"


@dataclass(frozen=True)
class BudgetLimit:
    """One ``budget`` rule: seconds of audio per day and per month (None: no cap), and whose it is."""

    daily_s: float | None = None
    monthly_s: float | None = None
    scope: str = ""  # set by where the rule is written: see the ``*_scope`` functions

    def limit(self, period: Period) -> float | None:
        return self.daily_s if period == "day" else self.monthly_s

    def scoped(self, scope: str) -> BudgetLimit:
        return replace(self, scope=scope)


def inbox_scope(inbox: str) -> str:
    return f"inbox:{inbox}"


def rules_scope(inbox: str, folder: str) -> str:
    """The scope of a rule file in ``folder`` (relative to the inbox; ``.`` or ``""`` is its root)."""
    relative = PurePosixPath(folder or ".").as_posix()
    return f"rules:{inbox.rstrip('/')}/{relative}"


def period_key(period: Period, at: float, zone: tzinfo) -> str:
    """The name of the day or month ``at`` falls in, as the zone's calendar has it."""
    local = datetime.fromtimestamp(at, zone)
    return f"day:{local:%Y-%m-%d}" if period == "day" else f"month:{local:%Y-%m}"


def resets_at(period: Period, at: float, zone: tzinfo) -> float:
    """When the period holding ``at`` ends: the next local midnight, or the first of the next month."""
    local = datetime.fromtimestamp(at, zone)
    if period == "day":
        next_day = local.date() + timedelta(days=1)
        start = datetime(next_day.year, next_day.month, next_day.day, tzinfo=zone)
    else:
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        start = datetime(year, month, 1, tzinfo=zone)
    # wall time to epoch: the zone's offset at that wall time (a DST day is 23 or 25 hours long)
    return start.astimezone(UTC).timestamp()


@dataclass(frozen=True)
class Charge:
    """What a file would count against: one budget's limit in one period."""

    scope: str
    period: Period
    key: str  # the period's name, from period_key
    limit_s: float
    resets_at: float


def charges(budgets: Sequence[BudgetLimit], at: float, zone: tzinfo) -> tuple[Charge, ...]:
    """Every (scope, period) the budgets cap at ``at``; a scope named twice keeps its nearest limit."""
    found: dict[tuple[str, Period], Charge] = {}
    for budget in budgets:
        for period in PERIODS:
            limit = budget.limit(period)
            if limit is not None:
                found[(budget.scope, period)] = Charge(
                    budget.scope, period, period_key(period, at, zone), limit, resets_at(period, at, zone)
                )
    return tuple(found.values())


@dataclass(frozen=True)
class Over:
    """The first budget a file does not fit in, and when it has room again."""

    scope: str
    period: Period
    limit_s: float
    used_s: float
    resets_at: float


def admit(file_seconds: float, found: Sequence[Charge], used: Mapping[tuple[str, str], float]) -> Over | None:
    """None when ``file_seconds`` fits in every charge; else the one it overflows that resets last.

    ``used`` maps ``(scope, period key)`` to the seconds billed or reserved there so far. Waiting for the
    latest reset is waiting for the moment every refusing budget has room again.
    """
    refusing = [
        Over(c.scope, c.period, c.limit_s, used.get((c.scope, c.key), 0.0), c.resets_at)
        for c in found
        if used.get((c.scope, c.key), 0.0) + file_seconds > c.limit_s + 1e-9
    ]
    if not refusing:
        return None
    return max(refusing, key=lambda over: over.resets_at)
