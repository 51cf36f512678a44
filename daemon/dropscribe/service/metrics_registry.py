"""What the service's events mean in metrics: a finished job, a deferral, a request's time, the queue.

The names and the registry are in :mod:`dropscribe.adapters.metrics`; this module turns the service's
own values (jobs, errors, queue state) into the plain numbers and labels it takes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dropscribe.adapters.metrics import Meters
from dropscribe.core.errors import (
    AsrUnavailableError,
    OutputFullError,
    ShareUnavailableError,
    StorageUnavailableError,
    TransientError,
    TruncatedAnswerError,
)
from dropscribe.core.hosts_view import HOST_STATES, claims_per_host
from dropscribe.core.jobs import Job

DEFAULT_BACKEND = "dashscope"

# a closed set, so a retry storm cannot grow the number of series
_RETRY_REASONS: tuple[tuple[type[TransientError], str], ...] = (
    (OutputFullError, "output_full"),
    (ShareUnavailableError, "share_unavailable"),
    (StorageUnavailableError, "storage_unavailable"),
    (AsrUnavailableError, "asr_unavailable"),
    (TruncatedAnswerError, "asr_truncated"),
)


def retry_reason(exc: TransientError) -> str:
    """The ``reason`` label of a deferral: throttling is told apart, as it calls for a lower rate."""
    code = (exc.remote_code or "").lower()
    if "throttl" in code or "ratelimit" in code or "rate_limit" in code:
        return "throttled"
    for kind, reason in _RETRY_REASONS:
        if isinstance(exc, kind):
            return reason
    return "other"


class ServiceMetrics:
    """The service's :class:`Meters`, fed from its own values."""

    def __init__(self, meters: Meters | None = None) -> None:
        self.meters = meters or Meters()

    def job_finished(self, job: Job, result: Mapping[str, Any] | None) -> None:
        """A job ended ``done`` or ``failed``; ``result`` is its stored answer (None when it failed)."""
        inbox = job.inbox
        if job.state == "failed" or job.outcome == "failed":
            self.meters.file_finished(inbox, "failed")
            self.meters.file_failed(str((job.error or {}).get("code") or "unknown"))
            return
        backend = str(job.meta.get("backend") or DEFAULT_BACKEND)
        model = str(job.meta.get("model") or (result or {}).get("model") or "unknown")
        if job.meta.get("reused"):
            self.meters.file_finished(inbox, "reused")  # paid by the file whose result it shares
            return
        self.meters.file_finished(inbox, "done")
        usage = (result or {}).get("usage_seconds")
        if isinstance(usage, int | float):
            self.meters.billed_seconds(backend, model, float(usage))

    def deferred(self, exc: TransientError) -> None:
        self.meters.retried(retry_reason(exc))

    def request_timer(self, backend: str) -> Callable[[float, str], None]:
        """The ``on_request(seconds, model)`` callback a recognition client reports each request to."""

        def on_request(seconds: float, model: str) -> None:
            self.meters.request_done(backend, model, seconds)

        return on_request

    def hosts_seen(self, view: Mapping[str, Any]) -> None:
        """``dropscribe_hosts`` and ``dropscribe_claims`` from a view of :mod:`dropscribe.core.hosts_view`."""
        counts = view.get("counts") or {}
        self.meters.set_hosts({s: int(counts.get(s, 0)) for s in HOST_STATES}, claims_per_host(view))

    def exposition(self) -> tuple[bytes, str]:
        return self.meters.exposition()
