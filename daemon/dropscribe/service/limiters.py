"""The request limiter of each backend: one per backend and rate setting for the life of the process.

The wirings of a reload share the account's quota while both run, and an ``auto`` rate keeps the limit
it found. With several processes on one journal, the rate and the concurrency are kept in the journal.
"""

from __future__ import annotations

import threading

from dropscribe.adapters.ratelimit import Limiter, make_limiter
from dropscribe.adapters.shared_ratelimit import SharedAdaptiveRateLimiter, SharedRateLimiter
from dropscribe.config.model import DashScopeSettings, OpenAIBackendSettings
from dropscribe.service.leases import Leases

_LIMITERS: dict[tuple[str, str, object, int, int], Limiter] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(
    name: str, backend: DashScopeSettings | OpenAIBackendSettings, leases: Leases | None = None
) -> Limiter:
    """The rate limiter of backend ``name``, kept across reloads while its settings stay the same.

    With ``leases`` (several processes on one journal) the rate, configured or ``auto``, and the
    concurrency are kept by all of them together.
    """
    key = (name, backend.base_url, backend.requests_per_minute, backend.max_requests_per_minute,
           backend.concurrency)  # fmt: skip
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            pool = f"{name}:{backend.base_url}"
            if leases is not None and backend.requests_per_minute == "auto":
                limiter = SharedAdaptiveRateLimiter(
                    leases.claims, pool, backend.max_requests_per_minute, concurrency=backend.concurrency,
                    holder=leases.holder, lease_s=leases.lease_s, backend=name,
                )  # fmt: skip
            elif leases is not None:
                limiter = SharedRateLimiter(
                    leases.claims, pool, int(backend.requests_per_minute), concurrency=backend.concurrency,
                    holder=leases.holder, lease_s=leases.lease_s,
                )  # fmt: skip
            else:
                limiter = make_limiter(backend.requests_per_minute, backend.max_requests_per_minute, name)
            _LIMITERS[key] = limiter
        return limiter
