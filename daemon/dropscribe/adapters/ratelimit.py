"""Blocking, thread-safe requests-per-minute limiters shared by every worker of one client.

``RateLimiter`` holds a configured rate; ``AdaptiveRateLimiter`` (``requests_per_minute: auto``) takes
its rate from ``core.rate_control``, told of every answer through :meth:`report`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from dropscribe.core.errors import StateFullError
from dropscribe.core.ports.claims import Claims
from dropscribe.core.rate_control import RateController, is_throttle

_log = structlog.get_logger(__name__)
_SLOT_POLL_S = 0.1  # how often a request waiting for a shared slot asks again


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


class SharedRateLimiter:
    """A backend's quota kept by several processes together, through their shared journal.

    Each request reserves the next send time of ``pool`` there (the spacing of :class:`RateLimiter`, on
    one schedule for all processes instead of one each) and, with ``concurrency``, one of that many
    slots, held with a lease so that a process that dies mid-request frees its slot by itself.
    """

    def __init__(
        self, claims: Claims, pool: str, per_minute: int, *, concurrency: int = 0, holder: str = "",
        lease_s: float = 60.0,
    ) -> None:  # fmt: skip
        if per_minute < 0:
            raise ValueError(f"per_minute must be >= 0, got {per_minute}")
        self.per_minute = per_minute
        self.concurrency = concurrency
        self._claims = claims
        self._pool = pool
        self._holder = holder
        self._lease_s = lease_s
        self._interval_s = 60.0 / per_minute if per_minute else 0.0
        self._mine = threading.local()  # the slot this thread's request holds
        # slots whose freeing failed (the journal was away): freed before any other is taken, or the
        # renewals would keep them held for as long as this process lives
        self._unfreed: set[int] = set()
        self._unfreed_lock = threading.Lock()

    def acquire(self) -> None:
        self._free_unfreed()
        if self.concurrency:
            while (slot := self._claims.take_slot(self._pool, self.concurrency, holder=self._holder,
                                                  lease_s=self._lease_s)) is None:  # fmt: skip
                time.sleep(_SLOT_POLL_S)
                self._free_unfreed()
            self._mine.slot = slot
        if self._interval_s:
            try:
                wait_s = self._claims.next_request_in(self._pool, self._interval_s)
            except BaseException:
                self.release()  # the caller releases only what acquire handed out
                raise
            if wait_s > 0:
                time.sleep(wait_s)

    def release(self) -> None:
        slot = getattr(self._mine, "slot", None)
        if slot is None:
            return
        self._mine.slot = None
        try:
            self._claims.free_slot(self._pool, slot, holder=self._holder)
        except StateFullError:
            with self._unfreed_lock:
                self._unfreed.add(slot)
            _log.warning("shared_slot_unfreed", pool=self._pool, slot=slot,
                         action="freed once the journal answers again")  # fmt: skip

    def _free_unfreed(self) -> None:
        with self._unfreed_lock:
            pending = sorted(self._unfreed)
        for slot in pending:
            try:
                self._claims.free_slot(self._pool, slot, holder=self._holder)
            except StateFullError:
                return
            with self._unfreed_lock:
                self._unfreed.discard(slot)

    def report(
        self, status: int | None, code: str | None, retry_after_s: float | None, sent_at: float
    ) -> None:
        """A configured rate learns nothing from answers."""

    def snapshot(self) -> dict[str, Any]:
        return {"mode": "shared", "requests_per_minute": self.per_minute or None,
                "concurrency": self.concurrency or None}  # fmt: skip

    def __repr__(self) -> str:
        return f"SharedRateLimiter(pool={self._pool!r}, per_minute={self.per_minute})"


def make_limiter(
    requests_per_minute: int | str, maximum: int, backend: str = ""
) -> RateLimiter | AdaptiveRateLimiter:
    """The limiter a ``requests_per_minute`` setting asks for: a number, or ``auto``."""
    if requests_per_minute == "auto":
        return AdaptiveRateLimiter(maximum, backend=backend)
    return RateLimiter(int(requests_per_minute))
