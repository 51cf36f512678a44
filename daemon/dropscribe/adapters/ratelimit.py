"""Blocking, thread-safe requests-per-minute limiters shared by every worker of one client.

``RateLimiter`` holds a configured rate; ``AdaptiveRateLimiter`` (``requests_per_minute: auto``) takes
its rate from ``core.rate_control``, told of every answer through :meth:`report`. The limiters that
several processes keep together through their journal are in :mod:`.shared_ratelimit`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from dropscribe.core.rate_control import RateController, is_throttle

_log = structlog.get_logger(__name__)


class Limiter(Protocol):
    def acquire(self) -> None: ...

    def release(self) -> None:
        """The request :meth:`acquire` let through has ended, answered or not (same thread)."""
        ...

    def report(
        self, status: int | None, code: str | None, retry_after_s: float | None, sent_at: float
    ) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...


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

    def release(self) -> None:
        """A rate holds nothing while a request is out."""

    def report(
        self, status: int | None, code: str | None, retry_after_s: float | None, sent_at: float
    ) -> None:
        """A configured rate learns nothing from answers."""

    def snapshot(self) -> dict[str, Any]:
        return {"mode": "fixed", "requests_per_minute": self.per_minute or None}

    def __repr__(self) -> str:
        return f"RateLimiter(per_minute={self.per_minute})"


class AdaptiveRateLimiter:
    """``requests_per_minute: auto``: finds the backend's quota from its answers, never above ``maximum``.

    Waiting threads recheck on every answer: a refusal holds back every request not yet sent.
    ``backend`` names the backend in the ``rate_limit_found`` log event.
    """

    def __init__(
        self, maximum: int, *, backend: str = "", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._controller = RateController(maximum=maximum)
        self._backend = backend
        self._clock = clock
        self._changed = threading.Condition()

    def acquire(self) -> None:
        """Block until this caller may start one request."""
        with self._changed:
            while True:
                now = self._clock()
                at = self._controller.next_send_at(now)
                if at <= now:
                    self._controller.on_sent(now)
                    return
                self._changed.wait(at - now)

    def release(self) -> None:
        """A rate holds nothing while a request is out."""

    def report(
        self, status: int | None, code: str | None, retry_after_s: float | None, sent_at: float
    ) -> None:
        """One answer (``status`` None: none arrived) to a request that left at ``sent_at`` (monotonic)."""
        if status is None:
            return  # the server may never have seen it
        with self._changed:
            now = self._clock()
            if not is_throttle(status, code):
                self._controller.on_accepted(now)
                return
            before = self._controller.found
            self._controller.on_throttled(now, retry_after_s, sent_at)
            found, rate = self._controller.found, self._controller.rate(now)
            self._changed.notify_all()
        if found is not None and (before is None or round(found) != round(before)):
            _log.info("rate_limit_found", backend=self._backend, rate=round(found),
                      requests_per_minute=round(rate, 1))  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        with self._changed:
            now = self._clock()
            limit = self._controller.found
            return {"mode": "auto", "requests_per_minute": round(self._controller.rate(now), 1),
                    "limit_found": None if limit is None else round(limit),
                    "max_requests_per_minute": round(self._controller.maximum),
                    "throttled": self._controller.throttled,
                    "accepted": self._controller.accepted}  # fmt: skip

    def __repr__(self) -> str:
        return f"AdaptiveRateLimiter(backend={self._backend!r})"


def make_limiter(
    requests_per_minute: int | str, maximum: int, backend: str = ""
) -> RateLimiter | AdaptiveRateLimiter:
    """The limiter a ``requests_per_minute`` setting asks for: a number, or ``auto``."""
    if requests_per_minute == "auto":
        return AdaptiveRateLimiter(maximum, backend=backend)
    return RateLimiter(int(requests_per_minute))
