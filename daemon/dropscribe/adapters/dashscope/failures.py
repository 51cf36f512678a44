"""How a failed DashScope call becomes one of the errors of ``core.errors``.

The error envelope (docs/dashscope.md, "Errors") is read here, and ``core.retry.classify`` decides
whether the failure is worth another try, the input's fault, or the account's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from dropscribe.adapters.dashscope.redaction import redact_text
from dropscribe.core.dashscope_wire import MalformedResponseError, optional_str
from dropscribe.core.errors import (
    AccountError,
    AsrUnavailableError,
    DropscribeError,
    RemoteRejectedError,
    TransientError,
)
from dropscribe.core.retry import Verdict, classify

_T = TypeVar("_T")


@dataclass(frozen=True)
class Failure:
    """One failed call as the server described it; ``status`` None means no HTTP answer at all."""

    status: int | None
    code: str | None
    message: str
    request_id: str | None = None
    retry_after_s: float | None = None


def error_for(
    failure: Failure,
    *,
    what: str,
    transient: type[TransientError] = AsrUnavailableError,
    reject_means_account: bool = False,
) -> DropscribeError:
    """The service-level error for one failed call, as ``core.retry.classify`` decides."""
    code = failure.code or "Unknown"
    verdict = classify(failure.status, failure.code, failure.message)
    if verdict is Verdict.REJECT and not reject_means_account:
        return RemoteRejectedError(code, failure.message, failure.request_id)
    if verdict is not Verdict.RETRY:
        return AccountError(code, failure.message, failure.request_id)
    status = "no response" if failure.status is None else f"HTTP {failure.status}"
    return transient(
        f"{what}: {status} {code}: {failure.message}",
        retry_after_s=failure.retry_after_s,
        remote_code=failure.code,
        request_id=failure.request_id,
    )


def parse_or_raise(parser: Callable[[Any], _T], payload: Any, *, what: str) -> _T:
    """Run a parser over a 200 answer; a body of the wrong shape is a server hiccup, so retried."""
    try:
        return parser(payload)
    except MalformedResponseError as exc:
        request_id = optional_str(payload, "request_id")
        failure = Failure(200, "MalformedResponse", str(exc), request_id)
        raise error_for(failure, what=what) from exc


@contextlib.contextmanager
def map_transport_errors(what: str, transient: type[TransientError] = AsrUnavailableError) -> Iterator[None]:
    """Turn every httpx failure without an HTTP answer into a service error; the one place for it."""
    try:
        yield
    except httpx.RequestError as exc:
        failure = Failure(None, None, f"{type(exc).__name__}: {redact_text(str(exc))}")
        raise error_for(failure, what=what, transient=transient) from exc


def read_answer(
    response: httpx.Response, result_key: str, api_key: str
) -> tuple[Failure | None, dict[str, Any]]:
    """Split an API answer into success (its JSON object) or a failure description.

    Success is a 200 whose body holds ``result_key`` or no error code at all.
    """
    request_id = response.headers.get("x-request-id") or response.headers.get("x-dashscope-request-id")
    status = response.status_code
    try:
        payload = response.json()
    except ValueError:
        # gateway pages and proxies answer in HTML or plain text; the official SDK calls that
        # code "Unknown" and so does classify()
        message = redact_text(response.text, api_key) or response.reason_phrase
        return Failure(status, "Unknown", message, request_id), {}
    if not isinstance(payload, dict):
        return Failure(status, "MalformedResponse", "body is not an object", request_id), {}
    request_id = optional_str(payload, "request_id") or request_id
    code = optional_str(payload, "code")
    message = optional_str(payload, "message") or optional_str(payload, "msg") or ""
    error = payload.get("error")
    if code is None and isinstance(error, dict):  # OpenAI-compatible envelope
        code = optional_str(error, "code")
        message = message or optional_str(error, "message") or ""
    if status == 200 and (code is None or payload.get(result_key) is not None):
        return None, payload
    return (
        Failure(
            status,
            code or ("MalformedResponse" if status == 200 else "Unknown"),
            redact_text(message, api_key),
            request_id,
            retry_after_s(response.headers),
        ),
        {},
    )


def retry_after_s(headers: httpx.Headers) -> float | None:
    """``retry-after-ms`` (what the official SDK reads first), else ``Retry-After`` in any form."""
    with contextlib.suppress(ValueError):
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000.0)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
