"""Finding and holding a backend's requests-per-minute quota from its own answers (``auto``).

Pure: the caller passes the time (monotonic seconds) to every call; no clock, no threads, no I/O.

DashScope counts an account's requests over a sliding minute and refuses those over its quota with
429 ``Throttling.RateQuota``. The controller keeps the same count of its own sends, so the count at
the moment of a refusal is the quota as the server sees it, measured rather than guessed. Until the
first refusal the rate grows by half every ``STEP_S`` in which requests had to wait for it (slow
start: 60 to 1,000 per minute in about 70 s). Once a limit is found, no minute may hold more than
``MARGIN`` of it (the sliding window is mirrored, so the burst a fast ramp left in the server's window
drains before more is sent), and every ``PROBE_S`` the limit is tried a little higher, doubling the
step while the server keeps accepting, so a raised quota is found without costing more than one
refusal per probe.
"""

from __future__ import annotations

import collections
import math
from typing import Any

WINDOW_S = 60.0  # the server's counting window
MARGIN = 0.97  # share of the found limit held: room for requests in flight and other clocks
START_RPM = 60.0
DEFAULT_MAX_RPM = 1000
STEP_S = 10.0  # how often the rate may grow while no limit is known
GROWTH = 1.5  # per step while no limit is known
PROBE_S = 300.0  # after a refusal, how long the found limit is held before trying above it
PROBE_GAIN = 0.10  # the first probe's step above the found limit; doubles with each accepted probe
CONFIRM_S = 90.0  # how long a probe must go unrefused before the next, bigger one
BACKOFF = 0.7  # a request sent after a refusal was refused too: the quota fell, cut harder


def is_throttle(status: int | None, code: str | None) -> bool:
    """Whether an answer says "too many requests per minute" (not a token quota or an unpaid bill)."""
    if status != 429:
        return False
    return code in (None, "", "Unknown", "Throttling", "Throttling.RateQuota", "rate_limit_exceeded")


class RateController:
    """The rate one client may send at, found from accepted and throttled answers.

    ``next_send_at(now)`` says when the next request may leave; ``on_sent(now)`` records that it
    left; ``on_accepted`` / ``on_throttled`` report the answers. ``found`` is the quota the last
    refusal measured (None until the first); ``limit`` is the one held, ``found`` or a probe above
    it; ``rate(now)`` is what is sent at, per minute.
    """

    def __init__(self, *, start: float = START_RPM, maximum: float = DEFAULT_MAX_RPM) -> None:
        if maximum < 1:
            raise ValueError(f"maximum must be >= 1, got {maximum}")
        self.maximum = float(maximum)
        self._rate = min(float(start), self.maximum)
        self.limit: float | None = None
        self.found: float | None = None
        self._sends: collections.deque[float] = collections.deque()  # send times within the window
        self._first_send: float | None = None
        self._last_send: float | None = None
        self._not_before = 0.0  # Retry-After
        self._step_at: float | None = None
        self._pressed_at = -math.inf  # when a request last had to wait for the rate
        self._throttled_at = -math.inf
        self._accepted_since_throttle = 0
        self._probe_at = math.inf
        self._gain = PROBE_GAIN
        self.throttled = 0
        self.accepted = 0

    def rate(self, now: float) -> float:
        """Requests per minute currently allowed."""
        return self._rate

    def to_state(self) -> dict[str, Any]:
        """Everything the controller knows, as plain values (infinities included), for :meth:`from_state`.

        Several processes sharing one quota keep one controller this way: each loads it, moves it with
        its own sends and answers, and stores it back.
        """
        state = {name: getattr(self, name) for name in _STATE}
        state["_sends"] = list(self._sends)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, *, maximum: float = DEFAULT_MAX_RPM) -> RateController:
        """The controller ``state`` describes (a fresh one for None), held to this caller's ``maximum``."""
        controller = cls(maximum=maximum)
        if state is None:
            return controller
        for name in _STATE:
            if name in state:
                setattr(controller, name, state[name])
        controller._sends = collections.deque(state.get("_sends", ()))
        controller.maximum = float(maximum)
        controller._rate = max(1.0, min(controller._rate, controller.maximum))
        return controller

    def _cap(self) -> int | None:
        """Most sends any window may hold, once a limit is known."""
        return None if self.limit is None else max(1, math.floor(self.limit * MARGIN))

    def _prune(self, now: float) -> None:
        while self._sends and self._sends[0] <= now - WINDOW_S:
            self._sends.popleft()

    def next_send_at(self, now: float) -> float:
        """The earliest time the next request may leave (``now`` if it may go at once)."""
        self._prune(now)
        at = max(now, self._not_before)
        if self._last_send is not None:
            at = max(at, self._last_send + 60.0 / self._rate)
        cap = self._cap()
        if cap is not None and len(self._sends) >= cap:
            at = max(at, self._sends[-cap] + WINDOW_S)
        if at > now:
            self._pressed_at = now
        return at

    def on_sent(self, now: float) -> None:
        """One request left at ``now``."""
        self._sends.append(now)
        self._last_send = now
        if self._first_send is None:
            self._first_send = now
            self._step_at = now

    def on_accepted(self, now: float) -> None:
        """The server took a request (answered, whatever the answer, but not with a throttle)."""
        self.accepted += 1
        self._accepted_since_throttle += 1
        if self.limit is None:
            self._grow(now)
        elif now >= self._probe_at and now - self._pressed_at < STEP_S and self._rate < self.maximum:
            self.limit = min(self.limit * (1.0 + self._gain), self.maximum / MARGIN)
            self._rate = min(self.maximum, self.limit * MARGIN)
            self._gain = min(self._gain * 2.0, 1.0)
            self._probe_at = now + CONFIRM_S

    def _grow(self, now: float) -> None:
        if self._step_at is None or now - self._step_at < STEP_S:
            return
        if now - self._pressed_at < STEP_S:  # the rate, not the work, held requests back
            self._rate = min(self.maximum, self._rate * GROWTH)
        self._step_at = now

    def on_throttled(
        self, now: float, retry_after_s: float | None = None, sent_at: float | None = None
    ) -> None:
        """The server refused a request for the rate; ``sent_at`` tells a reply already in flight apart."""
        self.throttled += 1
        self._prune(now)
        if self._sends:
            self._sends.pop()  # a refused request is not counted by the server
        if retry_after_s is not None and retry_after_s > 0:
            self._not_before = max(self._not_before, now + retry_after_s)
        stale = sent_at is not None and sent_at < self._throttled_at
        # a young window misses what the server still counts from before (a restart): probe sooner
        young = self._first_send is None or now - self._first_send < WINDOW_S
        if not stale:
            count = float(max(1, len(self._sends)))
            if self.limit is None:
                self.limit = count
            elif self._accepted_since_throttle == 0:
                self.limit = max(1.0, self.limit * BACKOFF)
            else:
                self.limit = max(1.0, min(self.limit, max(count, self.limit * 0.5)))
            self._rate = max(1.0, min(self.maximum, self.limit * MARGIN))
            self.found = self.limit
            self._throttled_at = now
            self._accepted_since_throttle = 0
        self._gain = PROBE_GAIN
        self._probe_at = now + (CONFIRM_S if young else PROBE_S)


# what :meth:`RateController.to_state` keeps besides the window's sends
_STATE = ("_rate", "limit", "found", "_first_send", "_last_send", "_not_before", "_step_at",
          "_pressed_at", "_throttled_at", "_accepted_since_throttle", "_probe_at", "_gain", "throttled",
          "accepted")  # fmt: skip
