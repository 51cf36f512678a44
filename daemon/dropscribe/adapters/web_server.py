"""The service's one HTTP listener: the status page, ``/api/status``, ``/metrics``, ``/healthz`` and
``POST /api/retry``.

Built on the standard library's ``ThreadingHTTPServer``: the traffic is a scrape every few seconds and
an operator's browser, so a framework would add dependencies and a second event loop for nothing, and a
thread per request keeps a slow client from holding up a scrape. Everything it serves comes from plain
callables handed to :meth:`WebServer.start`; this module only speaks HTTP: routing, the token check,
size limits and the headers that keep a browser from running anything the page did not mean.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

_log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 64 * 1024  # a retry request names paths; anything bigger is not one

# the page is plain server-rendered HTML with inline CSS and nothing else: forbid everything else, so
# even a name that escaped escaping could not load or run anything
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "DENY",
}
_COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class RequestError(Exception):
    """A request the action refuses: answered with ``status`` and ``message`` as JSON."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Routes:
    """What the listener serves, as plain callables (each called on a request thread)."""

    page: Callable[[], str]  # the HTML status page
    status: Callable[[], Mapping[str, Any]]  # the JSON of /api/status
    metrics: Callable[[], tuple[bytes, str]]  # body and content type
    health: Callable[[], tuple[str, ...]]  # problems; none means healthy
    retry: Callable[[Mapping[str, Any]], Mapping[str, Any]]  # may raise RequestError
    token: str | None = None  # actions answer 403 without one


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); an empty host means loopback, never every interface."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def token_matches(expected: str, header: str | None) -> bool:
    """``Authorization: Bearer <token>`` compared in constant time (no timing oracle for the token)."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), expected.encode())


class WebServer:
    """Bound when built (a port in use fails at start-up), served once :meth:`start` gives the routes."""

    def __init__(self, listen: str) -> None:
        host, port = split_listen(listen)
        outer = self
        self._routes: Routes | None = None

        class Handler(BaseHTTPRequestHandler):
            server_version = "dropscribe"
            sys_version = ""

            def do_GET(self) -> None:
                outer._get(self)

            def do_HEAD(self) -> None:
                outer._get(self, head=True)

            def do_POST(self) -> None:
                outer._post(self)

            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes every few seconds would drown the service's own log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="web", daemon=True)
        self._stopped = False

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self, routes: Routes) -> None:
        self._routes = routes
        self._thread.start()

    def stop(self) -> None:
        """Idempotent; a server that was bound but never started is only closed."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread.is_alive():  # shutdown() would wait forever for a loop that never ran
            self._server.shutdown()
        self._server.server_close()

    # requests -----------------------------------------------------------------------------------

    def _get(self, handler: BaseHTTPRequestHandler, *, head: bool = False) -> None:
        path = handler.path.split("?", 1)[0]
        routes = self._routes
        try:
            if routes is None:
                _reply(handler, 503, b"starting\n", "text/plain; charset=utf-8", head=head)
            elif path == "/":
                body = routes.page().encode("utf-8", "surrogateescape")
                _reply(handler, 200, body, "text/html; charset=utf-8", head=head, extra=_PAGE_HEADERS)
            elif path == "/api/status":
                _reply_json(handler, 200, routes.status(), head=head)
            elif path == "/metrics":
                data, content_type = routes.metrics()
                _reply(handler, 200, data, content_type, head=head)
            elif path == "/healthz":
                problems = routes.health()
                text = "\n".join(problems) + "\n" if problems else "ok\n"
                _reply(handler, 503 if problems else 200, text.encode("utf-8", "backslashreplace"),
                       "text/plain; charset=utf-8", head=head)  # fmt: skip
            elif path == "/api/retry":
                _reply_json(handler, 405, {"error": "use POST"}, extra={"Allow": "POST"}, head=head)
            else:
                _reply(handler, 404, b"not found\n", "text/plain; charset=utf-8", head=head)
        except Exception as exc:  # noqa: BLE001 - one broken request must not take the listener down
            _log.exception("web_request_failed", path=path, error=repr(exc))
            _reply(handler, 500, b"internal error\n", "text/plain; charset=utf-8", head=head)

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?", 1)[0]
        routes = self._routes
        if path != "/api/retry":
            allowed = "GET, HEAD" if path in ("/", "/api/status", "/metrics", "/healthz") else None
            if allowed:
                _reply_json(handler, 405, {"error": "read-only"}, extra={"Allow": allowed})
            else:
                _reply(handler, 404, b"not found\n", "text/plain; charset=utf-8")
            return
        if routes is None:
            _reply_json(handler, 503, {"error": "starting"})
            return
        if routes.token is None:
            _reply_json(handler, 403, {"error": "actions are off: no web token is configured "
                                                "(web.token_env or web.token_file)"})  # fmt: skip
            return
        if not token_matches(routes.token, handler.headers.get("Authorization")):
            _log.warning("web_action_refused", path=path, client=handler.client_address[0])
            _reply_json(handler, 401, {"error": "wrong or missing token (Authorization: Bearer <token>)"},
                        extra={"WWW-Authenticate": 'Bearer realm="dropscribe"'})  # fmt: skip
            return
        try:
            body = _read_json(handler)
            answer = routes.retry(body)
        except RequestError as exc:
            _reply_json(handler, exc.status, {"error": exc.message})
            return
        except Exception as exc:  # noqa: BLE001 - answered 500 and logged; the listener goes on
            _log.exception("web_request_failed", path=path, error=repr(exc))
            _reply_json(handler, 500, {"error": "internal error"})
            return
        _reply_json(handler, 200, answer)


def _read_json(handler: BaseHTTPRequestHandler) -> Mapping[str, Any]:
    content_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise RequestError(415, "send the request as Content-Type: application/json")
    try:
        length = int(handler.headers.get("Content-Length") or "")
    except ValueError:
        raise RequestError(411, "Content-Length is required") from None
    if length < 0 or length > MAX_BODY_BYTES:
        raise RequestError(413, f"the request body must be at most {MAX_BODY_BYTES} bytes")
    raw = handler.rfile.read(length)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RequestError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    return body


def _reply_json(
    handler: BaseHTTPRequestHandler, status: int, body: Mapping[str, Any], *,
    extra: Mapping[str, str] | None = None, head: bool = False,
) -> None:  # fmt: skip
    # names that are not UTF-8 arrive with surrogate escapes; ensure_ascii keeps them representable
    data = (json.dumps(body, ensure_ascii=True, indent=1) + "\n").encode()
    _reply(handler, status, data, "application/json", extra=extra, head=head)


def _reply(
    handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str, *,
    extra: Mapping[str, str] | None = None, head: bool = False,
) -> None:  # fmt: skip
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in {**_COMMON_HEADERS, **(extra or {})}.items():
            handler.send_header(name, value)
        handler.end_headers()
        if not head:
            handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client went away; nothing to tell it
