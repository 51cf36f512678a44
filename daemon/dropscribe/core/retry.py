"""What to do about a failed DashScope call, and how long to wait before the next try.

Pure: no clock, no randomness, no I/O. The adapter reports what the API answered (HTTP status,
error code, message); :func:`classify` decides (docs/dashscope.md, "Errors"; the backoff is in
"Client behaviour"). The caller supplies the random number for jitter so :func:`backoff_s` stays
deterministic.
"""

from __future__ import annotations

import enum


class Verdict(enum.Enum):
    """The three things the service can do about a failure."""

    RETRY = "retry"  # the same request may succeed later: back off and try again
    REJECT = "reject"  # this input can never succeed: send the file to failed/
    ACCOUNT = "account"  # key, rights, billing or config: no file can succeed, pause the queue


# Codes that say nothing is wrong with the input, only with the account or its configuration.
_ACCOUNT_CODES = frozenset(
    {
        "InvalidApiKey",
        "Arrearage",
        "LimitRequests",
        "CommodityNotPurchased",
        # A model id the endpoint does not know fails every file the same way; sending them all to
        # failed/ would hide a configuration mistake (wrong region or a missing "-us" suffix).
        "ModelNotFound",
        "WorkSpaceNotFound",
    }
)

_RETRY_CODES = frozenset(
    {
        "SystemError",
        "ModelUnavailable",
        "ServiceUnavailable",
        "GatewayTimeout",
        "RequestTimeOut",
        "RequestTimeout",
        # DashScope could not fetch our URL this time; the URL is ours and normally fine.
        "BadRequest.InputDownloadFailed",
        "InputDownloadFailed",
    }
)

_REJECT_CODES = frozenset(
    {
        "InvalidParameter",
        "DataInspectionFailed",
        "InvalidParameter.DataInspection",
        "invalid_parameter_error",
        "InvalidURL",
        "BadRequest.UnsupportedFileFormat",
        "UnsupportedFileFormat",
        "BadRequest.EmptyInput",
        "BadRequest.EmptyParameters",
        "BadRequest.EmptyModel",
        "BadRequest.TooLarge",
    }
)

# Statuses that mean "not now" whatever the code says; 409 and 425 are retried by the official SDK too.
_RETRY_STATUSES = frozenset({408, 409, 425, 429})


def classify(status: int | None, code: str | None, message: str) -> Verdict:
    """Decide between retry, reject and account-pause for one failed call.

    ``status`` is the HTTP status, or None when no response arrived (connection refused or reset,
    timeouts): those are always retried. ``code`` is DashScope's error code (``"Unknown"`` for a
    non-JSON body); ``message`` matters only for ``Throttling.AllocationQuota``.
    """
    if status is None:
        return Verdict.RETRY
    code = code or ""

    if code == "Throttling.AllocationQuota":
        # The same code covers "allocated quota exceeded" (wait) and "free quota used up" (stop: it
        # never comes back by itself, and retrying every file only burns the budget of attempts).
        return Verdict.ACCOUNT if "free" in message.lower() else Verdict.RETRY
    if code.startswith("Throttling"):
        return Verdict.RETRY
    if code in _ACCOUNT_CODES or code.endswith("BillOverdue") or "AccessDenied" in code:
        return Verdict.ACCOUNT
    if code in _RETRY_CODES:
        return Verdict.RETRY
    if code.startswith("InternalError"):
        # 500 InternalError* is the server's trouble; the same family under 400 ("Missing
        # Content-Length of multimodal url", "…Algo.InvalidParameter") is about our input.
        return Verdict.REJECT if 400 <= status < 500 else Verdict.RETRY
    if code in _REJECT_CODES or code.startswith("InvalidParameter"):
        return Verdict.REJECT
    return _classify_status(status, code)


def _classify_status(status: int, code: str) -> Verdict:
    """Fallback for codes we do not know: decide from the HTTP status alone."""
    if status in (401, 403):
        return Verdict.ACCOUNT
    if status == 404 and code in ("", "Unknown"):
        # A 404 without a DashScope error body comes from a wrong base URL or path, not from the file.
        return Verdict.ACCOUNT
    if status in _RETRY_STATUSES or status >= 500:
        return Verdict.RETRY
    if 400 <= status < 500:
        return Verdict.REJECT
    if 300 <= status < 400:
        # A redirect means the base URL points somewhere else (http vs https, old host): config.
        return Verdict.ACCOUNT
    # 2xx with an error code we do not know, or a body we could not read: treat as a server hiccup.
    return Verdict.RETRY


_MAX_EXPONENT = 62  # 2**62 times any sane base is far beyond every cap; avoids float overflow


RETRY_AFTER_MAX_S = 3600.0


def backoff_s(
    attempt: int,
    *,
    base_s: float,
    cap_s: float,
    jitter: float,
    retry_after_s: float | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 = the first failure).

    Capped exponential: ``base_s * 2**(attempt - 1)``, at most ``cap_s``, spread by ±25 % with
    ``jitter`` (a uniform random number in [0, 1] drawn by the caller; 0.5 means no spread) so that
    workers that failed together do not retry together. A server's ``Retry-After`` is a floor that
    wins over ``cap_s`` (the server knows when it will take requests again), itself bounded by
    ``RETRY_AFTER_MAX_S`` so a bogus header cannot park a file for days.
    """
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be within [0, 1], got {jitter}")
    if base_s < 0 or cap_s < 0:
        raise ValueError("base_s and cap_s must not be negative")
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    delay = min(cap_s, base_s * 2.0**exponent)
    delay = min(cap_s, delay * (0.75 + 0.5 * jitter))
    if retry_after_s is not None and retry_after_s > 0:
        delay = max(delay, min(retry_after_s, RETRY_AFTER_MAX_S))
    return delay
