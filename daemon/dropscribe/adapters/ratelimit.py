"""A blocking, thread-safe requests-per-minute limiter shared by every worker of one client."""

from __future__ import annotations

import threading
import time


class RateLimiter:
    """Spaces calls evenly so that at most ``per_minute`` start in any minute; 0 means no limit.

    A token bucket holding a single token: each :meth:`acquire` reserves the next free slot, one
    interval after the previous one, then sleeps outside the lock until that slot comes. A bigger
    bucket would let a burst of ``per_minute`` calls through right after the refill of the previous
    minute, which a server counting over a sliding minute answers with ``Throttling.RateQuota``.
    Slots are handed out in arrival order, so no waiting thread starves.
    """

    def __init__(self, per_minute: int) -> None:
        if per_minute < 0:
            raise ValueError(f"per_minute must be >= 0, got {per_minute}")
        self.per_minute = per_minute
        self._interval_s = 60.0 / per_minute if per_minute else 0.0
        self._lock = threading.Lock()
        self._next_slot = 0.0  # monotonic time at which the next call may start

    def acquire(self) -> None:
        """Block until this caller may start one request."""
        if not self._interval_s:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval_s
        wait_s = slot - now
        if wait_s > 0:
            time.sleep(wait_s)

    def __repr__(self) -> str:
        return f"RateLimiter(per_minute={self.per_minute})"
