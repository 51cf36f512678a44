"""The one HTTP connection pool to DashScope: authentication, the concurrency cap, one call at a time.

Secrets: the API key is sent only to the API host, never to the upload host or a result URL, and
never appears in a message, log line or repr.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import structlog

from dropscribe.adapters.bearer import BearerAuth
from dropscribe.adapters.dashscope.failures import error_for, map_transport_errors, read_answer
from dropscribe.adapters.dashscope.inline_body import InlineBody
from dropscribe.adapters.ratelimit import Limiter
from dropscribe.core.errors import AsrUnavailableError, TransientError

_CONNECT_TIMEOUT_S = 10.0

_log = structlog.get_logger(__name__)


def resolve_header(oss_resolve: bool) -> dict[str, str]:
    """The header that lets the API read temporary ``oss://`` URLs, when they are used."""
    return {"X-DashScope-OssResourceResolve": "enable"} if oss_resolve else {}


class ApiConnection:
    """Authenticated calls to the API at ``base_url``, at most ``concurrency`` at a time.

    Also the plain HTTP of the same pool for hosts that must not see the key (result files,
    the upload host): :meth:`get` and :meth:`post_form`, which leave error mapping to the caller.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float,
        concurrency: int,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parsed = httpx.URL(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.host or parsed.query:
            raise ValueError("base_url must be an http(s) URL without a query string")
        api_key = api_key.strip()
        # h11 quotes a rejected header value in its exception text: refuse such a key up front
        if not api_key or any(not 32 < ord(char) < 127 for char in api_key):
            raise ValueError("api_key is empty or has characters not allowed in an HTTP header")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._auth = BearerAuth(api_key)
        self._http = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout_s, connect=min(_CONNECT_TIMEOUT_S, timeout_s)),
            follow_redirects=False,
        )
        self._slots = threading.BoundedSemaphore(concurrency)

    def __repr__(self) -> str:
        return f"ApiConnection(base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: dict[str, Any] | InlineBody | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        limiter: Limiter | None = None,
        before_send: Callable[[], None] | None = None,
        result_key: str = "output",
        transient: type[TransientError] = AsrUnavailableError,
        reject_means_account: bool = False,
        on_elapsed: Callable[[float], None] | None = None,
    ) -> dict[str, Any]:
        """Send one authenticated API request and return its JSON body, or raise its error.

        ``before_send`` runs once the slot and the rate limit are granted, right before the request
        leaves; ``reject_means_account`` makes a refusal pause the queue instead of failing the file;
        ``on_elapsed`` is told how long the request took on the wire, answered or not.
        """
        # httpx adds Content-Type: application/json for a json body
        request_headers = {"Accept": "application/json", **(headers or {})}
        if isinstance(body, InlineBody):
            # with its length given, httpx sends the iterable as a plain body, not in HTTP chunks
            request_headers |= {"Content-Type": "application/json", "Content-Length": str(body.length)}
            request = self._http.build_request(
                method, self.base_url + path, content=body, headers=request_headers, params=params
            )
        else:
            request = self._http.build_request(
                method, self.base_url + path, json=body, headers=request_headers, params=params
            )
        with self._slots:
            if limiter is not None:
                limiter.acquire()
            try:
                if before_send is not None:
                    before_send()
                started = time.monotonic()
                try:
                    with map_transport_errors(what, transient):
                        response = self._http.send(request, auth=self._auth)
                finally:
                    if on_elapsed is not None:
                        on_elapsed(time.monotonic() - started)
            finally:
                if limiter is not None:
                    limiter.release()
        failure, payload = read_answer(response, result_key, self._api_key)
        if limiter is not None:  # the answer tells an ``auto`` rate what the quota is
            limiter.report(response.status_code, failure.code if failure else None,
                           failure.retry_after_s if failure else None, started)  # fmt: skip
        _log.debug(
            "dashscope_call",
            call=what,
            status=response.status_code,
            code=failure.code if failure else None,
            request_id=failure.request_id if failure else payload.get("request_id"),
            elapsed_s=round(time.monotonic() - started, 3),
        )
        if failure is not None:
            raise error_for(
                failure, what=what, transient=transient, reject_means_account=reject_means_account
            )
        return payload

    def get(self, url: str) -> httpx.Response:
        """GET ``url`` without the API key (a presigned URL carries its own)."""
        return self._http.get(url)

    def post_form(self, url: str, fields: Mapping[str, str], files: Mapping[str, Any]) -> httpx.Response:
        """POST a multipart form to ``url`` without the API key."""
        return self._http.post(url, data=fields, files=files)
