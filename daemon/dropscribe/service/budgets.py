"""Budgets carried out: audio reserved before anything is sent, files over budget parked until a reset.

What fits is decided in :mod:`dropscribe.core.budget`; the journal keeps the reservations, so a restart
neither forgets what was spent nor counts a file twice. A file that does not fit raises
:class:`OverBudgetError` out of its take: the loop parks it in its inbox (state ``over_budget``) until the
budget resets or a reload, never in ``failed/`` and without counting an attempt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dropscribe.config.model import Settings
from dropscribe.core.budget import PERIODS, BudgetLimit, Over, admit, charges, period_key, resets_at
from dropscribe.core.dispatch import Key
from dropscribe.core.ports.clock import Clock
from dropscribe.core.ports.journal import Journal
from dropscribe.core.ports.notifier import Notifier
from dropscribe.core.ruleset import EffectiveRules
from dropscribe.logs import get_logger
from dropscribe.service.crashpoints import crash_point

if TYPE_CHECKING:  # the queue's module imports the pipeline, which imports this one
    from dropscribe.adapters.metrics import Meters
    from dropscribe.service.queue_state import QueueState, Running

log = get_logger()
# one process-wide lock: the check and the reservation are one step for every worker and every wiring
_RESERVING = threading.Lock()
PAID_TYPES = ("dashscope",)  # an openai-type backend is self-hosted: its audio costs nothing per second


class OverBudgetError(Exception):
    """The file would exceed a budget: it waits in its inbox until ``over.resets_at`` (or a reload)."""

    def __init__(self, over: Over) -> None:
        super().__init__(f"over the {over.period} budget of {over.scope}")
        self.over = over


def paid_backends(settings: Settings) -> frozenset[str]:
    """The names of the backends whose audio is billed by the second."""
    found = {name for name, spec in settings.all_backends().items() if getattr(spec, "type", "dashscope")
             in PAID_TYPES}  # fmt: skip
    return frozenset(found)


class BudgetGate:
    """Reserves a recognition's audio in every budget of its file, or refuses it."""

    def __init__(
        self, journal: Journal, notifier: Notifier, clock: Clock, *, zone: tzinfo, paid: frozenset[str],
        seen: dict[str, BudgetLimit] | None = None,
        across: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> None:  # fmt: skip
        self.journal = journal
        self.notifier = notifier
        self.clock = clock
        self.zone = zone
        self.paid = paid
        self.seen = seen if seen is not None else {}  # every budget a file was checked against, by scope
        # several processes on one journal: one of them at a time checks and reserves, or two could
        # each see room for a file and together overrun the budget
        self.across = across

    @classmethod
    def for_settings(
        cls, settings: Settings, journal: Journal, notifier: Notifier, clock: Clock,
        seen: dict[str, BudgetLimit] | None = None,
        across: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> BudgetGate:  # fmt: skip
        zone = ZoneInfo(settings.budget_timezone)
        return cls(
            journal, notifier, clock, zone=zone, paid=paid_backends(settings), seen=seen, across=across
        )

    @contextmanager
    def spending(
        self, result_key: str, seconds: float, rules: EffectiveRules, backend: str
    ) -> Iterator[None]:
        """Around buying ``result_key``: reserve (no answer stored yet); settle or release on exit.

        Entered inside the result key's content lock, so the stored-answer check and the reservation see
        the same state. On exit the open reservation becomes the billed seconds of the stored answer, or
        is dropped when there is none (the recognition failed: nothing was billed).
        """
        if backend in self.paid and rules.budgets and self.journal.result(result_key) is None:
            self._reserve(result_key, seconds, rules.budgets)
        try:
            yield
        finally:
            stored = self.journal.result(result_key)
            if stored is not None:
                self.journal.settle(result_key, float(stored.get("usage_seconds") or 0.0))
            else:
                self.journal.release(result_key)

    def _reserve(self, result_key: str, seconds: float, budgets: tuple[BudgetLimit, ...]) -> None:
        at = self.clock.time()
        found = charges(budgets, at, self.zone)
        self.seen.update((budget.scope, budget) for budget in budgets)
        if not found:
            return
        with _RESERVING, self.across():
            # a try after a crash replaces its own open reservation, so it does not count against itself
            self.journal.release(result_key)
            used = {(c.scope, c.key): self.journal.budget_use(c.scope, c.key) for c in found}
            over = admit(seconds, found, used)
            if over is not None:
                self._reached(over)
                raise OverBudgetError(over)
            self.journal.reserve(result_key, [(c.scope, c.key) for c in found], seconds, at)
        log.info("budget_reserved", result_key=result_key[:16], seconds=round(seconds, 3),
                 scopes=sorted({c.scope for c in found}))  # fmt: skip
        crash_point("after_reserve")

    def _reached(self, over: Over) -> None:
        """``budget.reached`` once per budget and period: the journal remembers it across restarts."""
        marker = f"budget_reached:{over.scope}:{period_key(over.period, self.clock.time(), self.zone)}"
        if self.journal.get_meta(marker) is not None:
            return
        # told before it is marked: a crash in between tells it twice rather than never
        self.notifier.notify(
            "budget_reached", code="budget_reached", scope=over.scope, period=over.period,
            limit_s=over.limit_s, used_s=round(over.used_s, 3), resets_at=over.resets_at,
            message=f"the {over.period} budget of {over.scope} ({over.limit_s:g} s of audio) is used up; "
            "files wait in their inboxes until it resets",
        )  # fmt: skip
        self.journal.set_meta(marker, str(self.clock.time()))

    def reconcile(self) -> None:
        """At start: a reservation left open by a crash settles to a stored answer, or is dropped."""
        for result_key in self.journal.open_reservations():
            stored = self.journal.result(result_key)
            if stored is not None:
                self.journal.settle(result_key, float(stored.get("usage_seconds") or 0.0))
            else:
                self.journal.release(result_key)


def spending(
    gate: BudgetGate | None, result_key: str, seconds: float, rules: EffectiveRules, backend: str
) -> AbstractContextManager[None]:
    """``gate.spending(...)``, or nothing when budgets are not wired (one-shot use)."""
    return nullcontext() if gate is None else gate.spending(result_key, seconds, rules, backend)


# the loop's side ---------------------------------------------------------------------------------


def park_if_over_budget(queue: QueueState, key: Key, running: Running, clock: Clock) -> bool:
    """True when the take ended over budget: the file then waits in its inbox until the reset."""
    future = running.future
    error = future.exception() if future.done() and not future.cancelled() else None
    if not isinstance(error, OverBudgetError):
        return False
    over = error.over
    wait_s = max(over.resets_at - clock.time(), 0.0)
    queue.not_before[key] = clock.monotonic() + wait_s
    queue.waiting[key] = ("over_budget", over.resets_at)
    queue.over_budget[key] = {"scope": over.scope, "period": over.period, "limit_s": over.limit_s,
                              "resets_at": over.resets_at}  # fmt: skip
    log.info("job_over_budget", inbox=key[0], relpath=key[1], scope=over.scope, period=over.period,
             resets_at=over.resets_at)  # fmt: skip
    return True


def look_again(queue: QueueState) -> None:
    """After a reload (a budget may have been raised): every file parked over budget is tried again."""
    for key in list(queue.over_budget):
        queue.not_before.pop(key, None)
        queue.waiting.pop(key, None)
    queue.over_budget.clear()


def report(
    journal: Journal, all_budgets: Iterable[BudgetLimit], now: float, zone: tzinfo
) -> list[dict[str, Any]]:
    """Every configured budget's state now: ``scope, period, limit_s, used_s, reserved_s, resets_at``."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for budget in all_budgets:
        for period in PERIODS:
            limit = budget.limit(period)
            if limit is None:
                continue
            key = period_key(period, now, zone)
            used = journal.budget_use(budget.scope, key)
            reserved = journal.budget_reserved(budget.scope, key)
            seen[(budget.scope, period)] = {
                "scope": budget.scope, "period": period, "limit_s": limit,
                "used_s": round(used - reserved, 3), "reserved_s": round(reserved, 3),
                "resets_at": resets_at(period, now, zone),
            }  # fmt: skip
    return list(seen.values())


def remaining(rows: Iterable[dict[str, Any]]) -> list[tuple[str, str, float]]:
    """``(scope, period, seconds left)`` for the metrics."""
    return [(r["scope"], r["period"], max(r["limit_s"] - r["used_s"] - r["reserved_s"], 0.0)) for r in rows]


def configured(settings: Settings, seen: dict[str, BudgetLimit]) -> list[BudgetLimit]:
    """The budgets of the config (defaults, inboxes) and those of rule files met so far."""
    found = {b.scope: b for b in settings.defaults.budget or ()}
    for inbox in settings.inboxes:
        found.update((b.scope, b) for b in inbox.rules.budget or ())
    for scope, budget in list(seen.items()):
        found.setdefault(scope, budget)
    return list(found.values())


def refresh_budgets(
    queue: QueueState, journal: Journal, settings: Settings, seen: dict[str, BudgetLimit],
    meters: Meters | None, now: float,
) -> None:  # fmt: skip
    """The budgets' state for the status report and ``dropscribe_budget_remaining_seconds``."""
    budgets = configured(settings, seen)
    rows = report(journal, budgets, now, ZoneInfo(settings.budget_timezone)) if budgets else []
    queue.budgets = rows
    if meters is not None:
        meters.set_budgets(remaining(rows))
