"""Request limits that several processes keep together through their shared journal.

``SharedRateLimiter`` holds a configured rate on one send schedule and the concurrency in one set of
leased slots. ``SharedAdaptiveRateLimiter`` (``requests_per_minute: auto``) keeps the slots the same way
and one :class:`~dropscribe.core.rate_control.RateController` for all processes, stored in the journal:
each send and each answer of any process moves it, so the quota is measured on every request the
account sends, not on one process's share of them.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import structlog

from dropscribe.core.errors import StateFullError
from dropscribe.core.ports.claims import Claims
from dropscribe.core.rate_control import DEFAULT_MAX_RPM, RateController, is_throttle

_log = structlog.get_logger(__name__)
_SLOT_POLL_S = 0.1  # how often a request waiting for a shared slot asks again
_RECHECK_S = 1.0  # the longest a waiting request sleeps before it looks at the shared rate again


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
        try:
            self._space()
        except BaseException:
            self.release()  # the caller releases only what acquire handed out
            raise

    def _space(self) -> None:
        """Wait for this request's turn on the pool's one send schedule."""
        if self._interval_s:
            wait_s = self._claims.next_request_in(self._pool, self._interval_s)
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


class SharedAdaptiveRateLimiter(SharedRateLimiter):
    """``requests_per_minute: auto`` found and held by several processes together (``pool`` names the
    quota: a backend's name and address). Never above ``maximum``; ``backend`` names it in the
    ``rate_limit_found`` log event.
    """

    def __init__(
        self, claims: Claims, pool: str, maximum: int = DEFAULT_MAX_RPM, *, concurrency: int = 0,
        holder: str = "", lease_s: float = 60.0, backend: str = "",
    ) -> None:  # fmt: skip
        super().__init__(claims, pool, 0, concurrency=concurrency, holder=holder, lease_s=lease_s)
        self.maximum = maximum
        self._backend = backend
        self._name = f"rate:{pool}"
        self._seen_lock = threading.Lock()
        self._seen: dict[str, Any] = self._snapshot_of(RateController(maximum=maximum))
        # the journal's clock minus this process's monotonic one, as of the last turn: answers carry
        # their send time on the monotonic clock
        self._offset = 0.0

    def _space(self) -> None:
        while (wait_s := self._claims.shared_state(self._name, self._try_to_send)) > 0:
            # another process's refusal may move the turn later, or its idle slot give it sooner
            time.sleep(min(wait_s, _RECHECK_S))

    def _try_to_send(self, text: str | None, now: float) -> tuple[str, float]:
        controller = self._load(text, now)
        at = controller.next_send_at(now)
        if at <= now:
            controller.on_sent(now)
        return self._store(controller, now), at - now

    def report(
        self, status: int | None, code: str | None, retry_after_s: float | None, sent_at: float
    ) -> None:
        """One answer (``status`` None: none arrived) to a request that left at ``sent_at`` (monotonic)."""
        if status is None:
            return  # the server may never have seen it

        def answered(text: str | None, now: float) -> tuple[str, tuple[float | None, float | None]]:
            controller = self._load(text, now)
            before = controller.found
            if is_throttle(status, code):
                controller.on_throttled(now, retry_after_s, sent_at + self._offset)
            else:
                controller.on_accepted(now)
            return self._store(controller, now), (before, controller.found)

        try:
            before, found = self._claims.shared_state(self._name, answered)
        except StateFullError as exc:
            # the answer itself is what matters (it is paid for): the rate misses one lesson, and a
            # refusal it missed comes again
            _log.warning("rate_answer_unrecorded", pool=self._pool, status=status, error=exc.message)
            return
        if found is not None and (before is None or round(found) != round(before)):
            _log.info("rate_limit_found", backend=self._backend, rate=round(found),
                      requests_per_minute=self._seen["requests_per_minute"], shared=True)  # fmt: skip

    def _load(self, text: str | None, now: float) -> RateController:
        self._offset = now - time.monotonic()
        return RateController.from_state(None if text is None else json.loads(text), maximum=self.maximum)

    def _store(self, controller: RateController, now: float) -> str:
        with self._seen_lock:
            self._seen = self._snapshot_of(controller, now)
        return json.dumps(controller.to_state())

    def _snapshot_of(self, controller: RateController, now: float = 0.0) -> dict[str, Any]:
        limit = controller.found
        return {"mode": "auto", "shared": True, "requests_per_minute": round(controller.rate(now), 1),
                "limit_found": None if limit is None else round(limit),
                "max_requests_per_minute": round(controller.maximum),
                "throttled": controller.throttled, "accepted": controller.accepted,
                "concurrency": self.concurrency or None}  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        """As of this process's last turn: reading the shared controller would take one more."""
        with self._seen_lock:
            return dict(self._seen)

    def __repr__(self) -> str:
        return f"SharedAdaptiveRateLimiter(pool={self._pool!r})"
