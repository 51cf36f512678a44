"""Each backend's health as the service learns it from outcomes, and the pauses that belong to one backend.

Workers report every answer, transient failure and account problem of a backend here (chunks run in
a pool, so everything is behind one lock); :mod:`dropscribe.core.failover` decides from a snapshot.
An account problem pauses its backend only: a folder served by another backend goes on, and a folder
with a ``fallback_backend`` goes on through it. The loop's settler
(:class:`dropscribe.service.dispatcher.BackendSettler`) records each pause in the journal and tells the
operator, with the backend's name.

The journal keeps the pauses under the meta key ``paused`` as the first pause's ``code``, ``message``
and ``since`` (what older versions wrote and still read) plus ``backend`` and ``backends`` (every
pause by backend). A value without ``backends`` was written by a version with one global pause, which
was always DashScope's.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from dropscribe.config.model import DEFAULT_BACKEND
from dropscribe.core import failover
from dropscribe.core.errors import AccountError
from dropscribe.core.failover import Choice, Health
from dropscribe.core.ports.clock import Clock
from dropscribe.core.ruleset import EffectiveRules

PauseInfo = dict[str, Any]  # code, message, since (epoch)


class BackendAccountError(AccountError):
    """An account problem of one named backend (the settler pauses that backend only)."""

    def __init__(self, backend: str, exc: AccountError) -> None:
        super().__init__(exc.remote_code, exc.message, exc.request_id)
        self.backend = backend


class BackendHealth:
    """Thread-safe: workers report outcomes and ask where a file goes; the loop reads pauses."""

    def __init__(self, clock: Clock, probe_s: float = 600.0) -> None:
        self.clock = clock
        self.probe_s = probe_s  # dashscope.pause_probe_s, set again on reload
        self._lock = threading.Lock()
        self._health: dict[str, Health] = {}
        self._pauses: dict[str, PauseInfo] = {}

    def route(self, rules: EffectiveRules, *, begun_on: str | None = None) -> Choice:
        """The backend for a file of a folder with these rules; a probe of a down primary is spent here."""
        with self._lock:
            now = self.clock.monotonic()
            choice = failover.choose(
                rules.backend, rules.fallback_backend, rules.failover_after_s, self._health, now,
                begun_on=begun_on,
            )  # fmt: skip
            if choice.probe:
                self._health[choice.backend] = failover.probe_spent(
                    self._state(choice.backend), now, self.probe_s
                )
            return choice

    def holding(self, rules: EffectiveRules) -> str | None:
        """The paused backend a file of these rules would wait for (no fallback to go to), if any."""
        with self._lock:
            choice = failover.choose(
                rules.backend, rules.fallback_backend, rules.failover_after_s, self._health,
                self.clock.monotonic(),
            )  # fmt: skip
            return choice.backend if choice.backend in self._pauses and not choice.probe else None

    def failed(self, backend: str) -> None:
        with self._lock:
            self._health[backend] = failover.after_failure(
                self._state(backend), self.clock.monotonic(), self.probe_s
            )

    def succeeded(self, backend: str) -> None:
        with self._lock:
            self._health[backend] = failover.after_success(self.clock.monotonic())
            self._pauses.pop(backend, None)

    def pause(self, backend: str, info: PauseInfo) -> None:
        with self._lock:
            self._health[backend] = failover.after_pause(
                self._state(backend), self.clock.monotonic(), self.probe_s
            )
            self._pauses[backend] = info

    def resume_all(self) -> None:
        """A reload: a new key or account is worth trying at once, and failing streaks start afresh."""
        with self._lock:
            self._health.clear()
            self._pauses.clear()

    def pauses(self) -> dict[str, PauseInfo]:
        with self._lock:
            return dict(self._pauses)

    def detail(self) -> dict[str, dict[str, Any]]:
        """Per backend, for status: its pause (code, message, since), since when it has been failing and
        its last answer (epoch seconds; values that only change when something happens, so the status
        file is not rewritten every tick)."""
        with self._lock:
            offset = self.clock.time() - self.clock.monotonic()

            def wall(at: float | None) -> float | None:
                return None if at is None else round(at + offset, 3)

            return {
                name: {"paused": self._pauses.get(name), "failing_since": wall(state.failing_since),
                       "last_success": wall(state.last_success)}
                for name, state in self._health.items()
            }  # fmt: skip

    def _state(self, backend: str) -> Health:
        return self._health.get(backend, failover.HEALTHY)


def encode_pauses(pauses: Mapping[str, PauseInfo]) -> str | None:
    """The journal meta ``paused``: the first pause at the top (as older versions wrote it), then all."""
    if not pauses:
        return None
    first = next(iter(pauses))
    return json.dumps({**pauses[first], "backend": first, "backends": dict(pauses)})


def decode_pauses(doc: Mapping[str, Any] | None) -> dict[str, PauseInfo]:
    """The pauses by backend from the meta ``paused``; an old single pause is DashScope's."""
    if not doc:
        return {}
    backends = doc.get("backends")
    if isinstance(backends, Mapping):
        return {str(name): dict(info) for name, info in backends.items() if isinstance(info, Mapping)}
    return {DEFAULT_BACKEND: {k: v for k, v in doc.items() if k in ("code", "message", "since")}}


def compat_view(pauses: Mapping[str, PauseInfo]) -> dict[str, Any] | None:
    """The top-level ``paused`` of status and the web page: the first pause, plus every pause by backend."""
    if not pauses:
        return None
    first = next(iter(pauses))
    return {**pauses[first], "backend": first, "backends": dict(pauses)}
