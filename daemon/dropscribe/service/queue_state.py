"""What the service loop knows about its files and its queue between two turns.

One thread (the loop's) changes it; the metrics thread reads copies. Per-file tables are keyed by
``(inbox path, relpath)``; they say why a known file is not taken yet and until when.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dropscribe.config.model import InboxSettings
from dropscribe.core.dispatch import Key
from dropscribe.core.gate import Fingerprint
from dropscribe.core.ruleset import EffectiveRules
from dropscribe.service.outcomes import Outcome
from dropscribe.service.pipeline import Pipeline

if TYPE_CHECKING:  # the health module imports the settler, which imports this one
    from dropscribe.service.backend_health import BackendHealth


@dataclass
class Running:
    """A file in a worker's hands, with everything it was started with (a reload may change the rest)."""

    future: Future[Outcome]
    inbox: InboxSettings
    pipeline: Pipeline
    generation: int


@dataclass
class QueueState:
    in_flight: dict[Key, Running] = field(default_factory=dict)
    not_before: dict[Key, float] = field(default_factory=dict)  # monotonic: not taken again before
    waiting: dict[Key, tuple[str, float | None]] = field(default_factory=dict)  # why, and until (epoch)
    failures: dict[Key, int] = field(default_factory=dict)
    over_budget: dict[Key, dict[str, Any]] = field(default_factory=dict)  # which budget, until when
    budgets: list[dict[str, Any]] = field(default_factory=list)  # every budget's state, for the report
    incomplete_at: dict[Key, Fingerprint] = field(default_factory=dict)  # what an unfinished file was
    # account problems by backend, as last journaled and told: code, message, since
    paused_backends: dict[str, dict[str, Any]] = field(default_factory=dict)
    # by paused backend: when one of the files it holds is tried next
    backend_probe_at: dict[str, float] = field(default_factory=dict)
    pause_probe_at: float = 0.0  # the base Settler's single-pause probe; the backends' are above
    # the backend each file in flight was started for (by the dispatcher; paused ones get one probe)
    targets: dict[Key, str] = field(default_factory=dict)
    health: BackendHealth | None = None  # what workers learn; None only in tests of the loop's parts
    # the journal's disk is full: nothing is taken until a write commits again
    state_full: str | None = None
    state_probe_at: float = 0.0
    # done/ or failed/ of an inbox is full: message, folder, probe_at (one file per probe interval)
    output_full: dict[str, dict[str, Any]] = field(default_factory=dict)
    inbox_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=lambda: {"done": 0, "failed": 0, "retried": 0})
    said_at: dict[str, float] = field(default_factory=dict)

    @property
    def paused(self) -> dict[str, Any] | None:
        """The first pause with every pause by backend (``None``: none), told or just learned by a worker."""
        from dropscribe.service.backend_health import compat_view

        pauses = dict(self.paused_backends)
        if self.health is not None:
            pauses.update(self.health.pauses())
        return compat_view(pauses)

    @paused.setter
    def paused(self, doc: dict[str, Any] | None) -> None:
        """Pauses read back from the journal at start (an old global pause is DashScope's)."""
        from dropscribe.service.backend_health import decode_pauses

        pauses = decode_pauses(doc)
        self.paused_backends = pauses
        if self.health is not None:
            for name, info in pauses.items():
                self.health.pause(name, info)

    def held_by_pause(self, rules: EffectiveRules) -> bool:
        """A file of these rules waits: its backend is paused and it has no fallback to go to."""
        return self.health is not None and self.health.holding(rules) is not None

    def per_file_tables(self) -> tuple[dict[Key, Any], ...]:
        return (self.not_before, self.waiting, self.failures, self.incomplete_at, self.over_budget)

    def forget_files(self, gone: Callable[[Key], bool]) -> None:
        """Drop what is known about every file ``gone`` says left (its inbox, or the inbox itself)."""
        for table in self.per_file_tables():
            for key in [k for k in table if gone(k)]:
                del table[key]

    def say_once_a_minute(self, topic: str, now: float) -> bool:
        """A condition that lasts is logged once a minute, not once per file or per tick."""
        if now - self.said_at.get(topic, -1e9) < 60.0:
            return False
        self.said_at[topic] = now
        return True
