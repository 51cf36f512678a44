"""Prometheus metrics through ``prometheus-client``: the fixed names dashboards and alerts depend on.

Each service gets its own :class:`CollectorRegistry` (never the library's global one), so two services
in one test process, or a reload, never count into each other. Everything here takes plain values;
what a finished job or a queue state means in numbers is decided by the service.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)

# recognition requests take from a fraction of a second (a short clip) to minutes (a 5-minute chunk
# on a busy day); the buckets cover that range so quantiles mean something at both ends
REQUEST_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, float("inf"))

FILE_OUTCOMES = ("done", "failed", "reused")
QUEUE_STATES = ("waiting", "settling", "held", "over_budget", "in_flight")


class Meters:
    """The service's metrics on one registry; safe to update from any thread."""

    def __init__(self) -> None:
        # the ``*_created`` series double every counter and no dashboard of ours reads them
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        process_collector.ProcessCollector(registry=r)
        platform_collector.PlatformCollector(registry=r)
        gc_collector.GCCollector(registry=r)
        self.files = Counter(
            "dropscribe_files", "Files finished, by inbox and outcome (done: recognized and paid for; "
            "reused: served by a stored result; failed: moved to failed/).",
            ["inbox", "outcome"], registry=r,
        )  # fmt: skip
        self.failures = Counter(
            "dropscribe_failures", "Files moved to failed/, by error code.", ["code"], registry=r
        )
        self.retries = Counter(
            "dropscribe_retries", "Transient-error deferrals, by reason.", ["reason"], registry=r
        )
        self.request_seconds = Histogram(
            "dropscribe_request_seconds", "Duration of recognition HTTP requests.",
            ["backend", "model"], buckets=REQUEST_BUCKETS, registry=r,
        )  # fmt: skip
        self.billed = Counter(
            "dropscribe_audio_seconds_billed", "Audio seconds the backend billed for stored results.",
            ["backend", "model"], registry=r,
        )  # fmt: skip
        self.queue_files = Gauge(
            "dropscribe_queue_files", "Files known in each inbox, by state.", ["inbox", "state"], registry=r
        )
        self.oldest_waiting = Gauge(
            "dropscribe_oldest_waiting_seconds",
            "Seconds since the oldest file still in the inbox last changed (0 when it is empty).",
            ["inbox"], registry=r,
        )  # fmt: skip
        self.paused = Gauge(
            "dropscribe_paused", "1 while an account problem or a full journal disk pauses the queue.",
            registry=r,
        )  # fmt: skip
        self.inbox_up = Gauge(
            "dropscribe_inbox_up", "1 when the inbox can be scanned.", ["inbox"], registry=r
        )
        # declared so that dashboards and alerts can name it; it has samples once budgets are configured
        self.budget_remaining = Gauge(
            "dropscribe_budget_remaining_seconds", "Audio seconds left in a budget.", ["scope", "period"],
            registry=r,
        )  # fmt: skip
        # samples only with a shared journal (state.url); refreshed from it when scraped
        self.hosts = Gauge(
            "dropscribe_hosts", "Processes sharing the journal, by state (alive, silent: not seen within "
            "a lease, stopped).", ["state"], registry=r,
        )  # fmt: skip
        self.claims = Gauge(
            "dropscribe_claims", "Files whose lease a host holds now, by hostname.", ["host"], registry=r
        )
        self._hosts_lock = threading.Lock()
        self._inboxes: set[str] = set()

    # events -------------------------------------------------------------------------------------

    def file_finished(self, inbox: str, outcome: str) -> None:
        self.files.labels(inbox=inbox, outcome=outcome).inc()

    def file_failed(self, code: str) -> None:
        self.failures.labels(code=code).inc()

    def retried(self, reason: str) -> None:
        self.retries.labels(reason=reason).inc()

    def request_done(self, backend: str, model: str, seconds: float) -> None:
        self.request_seconds.labels(backend=backend, model=model).observe(max(seconds, 0.0))

    def billed_seconds(self, backend: str, model: str, seconds: float) -> None:
        if seconds > 0:
            self.billed.labels(backend=backend, model=model).inc(seconds)

    # levels -------------------------------------------------------------------------------------

    def set_queue(
        self, inboxes: Mapping[str, tuple[bool, Mapping[str, int], float]], *, paused: bool
    ) -> None:
        """Per inbox ``(up, {state: files}, oldest waiting seconds)``; inboxes no longer listed vanish."""
        self.paused.set(1 if paused else 0)
        for gone in self._inboxes - set(inboxes):
            self._remove_inbox(gone)
        for name, (up, counts, oldest_s) in inboxes.items():
            self.inbox_up.labels(inbox=name).set(1 if up else 0)
            self.oldest_waiting.labels(inbox=name).set(max(oldest_s, 0.0))
            for state in QUEUE_STATES:
                self.queue_files.labels(inbox=name, state=state).set(counts.get(state, 0))
        self._inboxes = set(inboxes)

    def _remove_inbox(self, name: str) -> None:
        for gauge in (self.inbox_up, self.oldest_waiting):
            gauge.remove(name)
        for state in QUEUE_STATES:
            self.queue_files.remove(name, state)

    def set_budgets(self, remaining: Iterable[tuple[str, str, float]]) -> None:
        """``(scope, period, seconds left)`` for every configured budget."""
        self.budget_remaining.clear()
        for scope, period, seconds in remaining:
            self.budget_remaining.labels(scope=scope, period=period).set(seconds)

    def set_hosts(self, states: Mapping[str, int], claims: Mapping[str, int]) -> None:
        """Hosts by state, and files claimed by hostname; hostnames no longer listed vanish."""
        with self._hosts_lock:  # two scrapes at once must not interleave the clear and the sets
            for state, count in states.items():
                self.hosts.labels(state=state).set(count)
            self.claims.clear()
            for host, files in claims.items():
                self.claims.labels(host=host).set(files)

    # exposition ---------------------------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        """The text format Prometheus scrapes, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
