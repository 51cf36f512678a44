"""The clock port: the service's two clocks, so that time is passed in rather than read in place."""

from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back: every wait and deadline is measured on it."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch: what the journal and the status report record."""
        ...
