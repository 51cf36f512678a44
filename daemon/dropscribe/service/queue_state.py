"""What the service loop knows about its files and its queue between two turns.

One thread (the loop's) changes it; the metrics thread reads copies. Per-file tables are keyed by
``(inbox path, relpath)``; they say why a known file is not taken yet and until when.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from dropscribe.config.model import InboxSettings
from dropscribe.core.dispatch import Key
from dropscribe.core.gate import Fingerprint
from dropscribe.service.outcomes import Outcome
from dropscribe.service.pipeline import Pipeline


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
    incomplete_at: dict[Key, Fingerprint] = field(default_factory=dict)  # what an unfinished file was
    # an account problem: code, message, since; one file is tried per pause_probe_s
    paused: dict[str, Any] | None = None
    pause_probe_at: float = 0.0
    # the journal's disk is full: nothing is taken until a write commits again
    state_full: str | None = None
    state_probe_at: float = 0.0
    # done/ or failed/ of an inbox is full: message, folder, probe_at (one file per probe interval)
    output_full: dict[str, dict[str, Any]] = field(default_factory=dict)
    inbox_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=lambda: {"done": 0, "failed": 0, "retried": 0})
    said_at: dict[str, float] = field(default_factory=dict)

    def per_file_tables(self) -> tuple[dict[Key, Any], ...]:
        return (self.not_before, self.waiting, self.failures, self.incomplete_at)

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
