"""Rate limits the real service enforces, and the 429 a request over them gets.

Windows are keyed by a digest of the API key (see :func:`dropscribe.emulator.auth.authorize`), never
by the key itself.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Hashable

from dropscribe.emulator.protocol import ApiError, is_qwen_audio_asr


class RateLimiter:
    """At most ``limit`` events per ``window_s`` seconds for each key; ``limit`` 0 means no limit."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._events: dict[Hashable, collections.deque[float]] = {}

    def allow(self, key: Hashable) -> bool:
        """Record one event for ``key`` and say whether it fits; refused events are not counted."""
        if self._limit <= 0:
            return True
        now = self._clock()
        with self._lock:
            events = self._events.setdefault(key, collections.deque())
            while events and events[0] <= now - self._window_s:
                events.popleft()
            if len(events) >= self._limit:
                return False
            events.append(now)
            return True

    def clear(self) -> None:
        with self._lock:
            self._events.clear()


class RateLimits:
    """The three windows: recognition calls per minute, task queries and upload certificates per second."""

    def __init__(self, requests_per_minute: int, task_qps: int, policy_qps: int) -> None:
        self._recognition = RateLimiter(requests_per_minute, 60.0)
        self._task_queries = RateLimiter(task_qps, 1.0)
        self._policies = RateLimiter(policy_qps, 1.0)

    def count_recognition(self, key_id: str, model: str) -> None:
        """Count one sync call or task submission; raises 429 ``Throttling.RateQuota`` when over.

        The documented quota covers the qwen3 models; none is published for qwen-audio-asr, whose
        free token allowance is its limit ("Rate limits"), so its calls are not counted.
        """
        if is_qwen_audio_asr(model):
            return
        _check(self._recognition, (key_id, model))

    def count_task_query(self, key_id: str) -> None:
        """Count one task query or cancel; raises 429 ``Throttling.RateQuota`` when over."""
        _check(self._task_queries, key_id)

    def count_policy(self, key_id: str, model: str) -> None:
        """Count one upload-certificate request; raises 429 ``Throttling.RateQuota`` when over."""
        _check(self._policies, (key_id, model))

    def clear(self) -> None:
        self._recognition.clear()
        self._task_queries.clear()
        self._policies.clear()


def _check(limiter: RateLimiter, key: Hashable) -> None:
    if not limiter.allow(key):
        raise ApiError(429, "Throttling.RateQuota")
