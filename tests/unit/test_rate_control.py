"""``core.rate_control``: the ``auto`` rate against a simulated server that counts a sliding minute."""

from __future__ import annotations

import collections
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from dropscribe.core.rate_control import RateController, is_throttle

LATENCY_S = 0.02  # the emulator answers at once; a real server's latency only delays the reports


@dataclass
class Run:
    """What a saturated client sent and what the server answered, by send time."""

    sent: list[tuple[float, bool]] = field(default_factory=list)  # (time, accepted)

    def accepted_between(self, start: float, end: float) -> int:
        return sum(1 for at, ok in self.sent if start <= at < end and ok)

    def throttled_share(self, start: float, end: float) -> float:
        window = [ok for at, ok in self.sent if start <= at < end]
        return window.count(False) / max(1, len(window))


def simulate(
    controller: RateController,
    quota: Callable[[float], int],
    until_s: float,
    retry_after_s: float | None = None,
) -> Run:
    """One request at a time, always more waiting: the server refuses what exceeds ``quota(now)``."""
    window: collections.deque[float] = collections.deque()
    run = Run()
    now = 0.0
    while now < until_s:
        now = controller.next_send_at(now)
        controller.on_sent(now)
        while window and window[0] <= now - 60.0:
            window.popleft()
        ok = len(window) < quota(now)
        if ok:
            window.append(now)
        run.sent.append((now, ok))
        now += LATENCY_S
        if ok:
            controller.on_accepted(now)
        else:
            controller.on_throttled(now, retry_after_s)
    return run


@pytest.mark.parametrize("quota", [30, 100, 300, 1200])
def test_finds_and_holds_an_unknown_quota(quota: int) -> None:
    controller = RateController(maximum=5000)
    run = simulate(controller, lambda _now: quota, until_s=600.0)
    # after the first minute it sends at 0.9 of the quota or more; from the fourth, every minute does
    assert run.accepted_between(60.0, 600.0) >= 0.9 * quota * 9
    for start in range(180, 540, 60):
        assert run.accepted_between(start, start + 60) >= 0.9 * quota - 1, start
    assert run.throttled_share(120.0, 600.0) <= 0.02
    assert controller.limit is not None
    assert 0.9 * quota <= controller.limit <= 1.1 * quota


def test_sustains_the_quota_after_the_first_minute() -> None:
    controller = RateController(maximum=5000)
    run = simulate(controller, lambda _now: 100, until_s=300.0)
    assert run.accepted_between(60.0, 300.0) >= 0.9 * 100 * 4
    assert run.throttled_share(0.0, 300.0) <= 0.02


def test_follows_a_raised_quota() -> None:
    controller = RateController(maximum=5000)
    run = simulate(controller, lambda now: 100 if now < 300 else 300, until_s=1500.0)
    assert run.accepted_between(1380.0, 1440.0) >= 0.9 * 300
    assert run.throttled_share(300.0, 1500.0) <= 0.02


def test_follows_a_lowered_quota() -> None:
    controller = RateController(maximum=5000)
    run = simulate(controller, lambda now: 300 if now < 300 else 100, until_s=900.0)
    for start in (480, 600, 720):
        assert 0.9 * 100 <= run.accepted_between(start, start + 60) <= 100
    assert run.throttled_share(420.0, 900.0) <= 0.02


def test_never_exceeds_the_maximum() -> None:
    controller = RateController(maximum=200)
    run = simulate(controller, lambda _now: 10_000, until_s=300.0)
    assert controller.limit is None
    assert controller.rate(300.0) == 200
    assert 190 <= run.accepted_between(200.0, 260.0) <= 201
    assert run.throttled_share(0.0, 300.0) == 0.0


def test_starts_at_60_and_grows_only_while_requests_wait() -> None:
    controller = RateController()
    assert controller.rate(0.0) == 60
    now = 0.0
    for _ in range(20):  # one request every 5 s: the work, not the rate, is the limit
        assert controller.next_send_at(now) == now
        controller.on_sent(now)
        controller.on_accepted(now + LATENCY_S)
        now += 5.0
    assert controller.rate(now) == 60


def test_retry_after_holds_every_request() -> None:
    controller = RateController()
    for second in range(30):
        controller.on_sent(float(second))
        controller.on_accepted(second + LATENCY_S)
    controller.on_throttled(30.1, retry_after_s=7.0)
    assert controller.next_send_at(30.2) >= 37.1


def test_a_reply_in_flight_before_the_refusal_does_not_cut_again() -> None:
    controller = RateController()
    for second in range(50):
        controller.on_sent(float(second))
        controller.on_accepted(second + LATENCY_S)
    controller.on_throttled(50.0, sent_at=49.9)
    found = controller.limit
    controller.on_throttled(50.1, sent_at=49.95)  # sent before the first refusal arrived
    assert controller.limit == found
    controller.on_sent(60.0)
    controller.on_throttled(60.1, sent_at=60.0)  # sent after it and refused: the quota fell
    assert found is not None
    assert controller.limit is not None
    assert controller.limit < found


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (429, "Throttling.RateQuota", True),
        (429, "Throttling", True),
        (429, None, True),
        (429, "Throttling.AllocationQuota", False),  # tokens, not requests per minute
        (429, "PrepaidBillOverdue", False),
        (500, "Throttling.RateQuota", False),
        (None, None, False),
    ],
)
def test_is_throttle(status: int | None, code: str | None, expected: bool) -> None:
    assert is_throttle(status, code) is expected


def test_refuses_a_maximum_below_one() -> None:
    with pytest.raises(ValueError, match="maximum"):
        RateController(maximum=0)


class StoredBetweenCalls(RateController):
    """A controller saved as JSON after every call and loaded again before the next, as processes that
    share one quota keep it in their journal."""

    def __init__(self, maximum: float) -> None:
        super().__init__(maximum=maximum)
        self._text = json.dumps(RateController(maximum=maximum).to_state())
        self._maximum = maximum

    def _through_text(self, name: str, *args: float | None) -> float:
        loaded = RateController.from_state(json.loads(self._text), maximum=self._maximum)
        result = getattr(loaded, name)(*args)
        self._text = json.dumps(loaded.to_state())
        self.limit = loaded.limit
        return float(result or 0.0)

    def next_send_at(self, now: float) -> float:
        return self._through_text("next_send_at", now)

    def on_sent(self, now: float) -> None:
        self._through_text("on_sent", now)

    def on_accepted(self, now: float) -> None:
        self._through_text("on_accepted", now)

    def on_throttled(
        self, now: float, retry_after_s: float | None = None, sent_at: float | None = None
    ) -> None:
        self._through_text("on_throttled", now, retry_after_s, sent_at)


@pytest.mark.parametrize("retry_after_s", [None, 90.0])
def test_a_controller_kept_as_text_between_calls_acts_as_one_kept_in_memory(
    retry_after_s: float | None,
) -> None:
    def quota(now: float) -> int:
        return 100 if now < 400 else 40

    kept = simulate(RateController(maximum=300), quota, until_s=900.0, retry_after_s=retry_after_s)
    stored = StoredBetweenCalls(maximum=300)
    reloaded = simulate(stored, quota, until_s=900.0, retry_after_s=retry_after_s)

    assert reloaded.sent == kept.sent
    assert stored.limit is not None


def test_a_stored_controller_is_held_to_the_loading_process_maximum() -> None:
    controller = RateController(maximum=1000)
    simulate(controller, lambda _now: 500, until_s=200.0)
    assert controller.rate(200.0) > 100

    loaded = RateController.from_state(json.loads(json.dumps(controller.to_state())), maximum=100)

    assert loaded.rate(200.0) == 100
    assert RateController.from_state(None, maximum=100).rate(0.0) == 60
