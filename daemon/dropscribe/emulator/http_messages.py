"""What an endpoint receives and answers: :class:`HttpRequest` in, :class:`Reply` out, no sockets.

:mod:`dropscribe.emulator.server` moves the bytes; the reply builders here give errors the two shapes
the real service uses: DashScope's JSON envelope and OSS's XML.
"""

from __future__ import annotations

import functools
import json
import urllib.parse
from dataclasses import dataclass, field
from html import escape
from typing import Any

from dropscribe.emulator.multipart import FormField, parse_form
from dropscribe.emulator.protocol import ApiError, OssError

JSON_TYPE = "application/json"


class HttpRequest:
    """A received request, with its body parsed lazily (and once) as JSON or as a form."""

    def __init__(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        origin: str,
    ) -> None:
        split = urllib.parse.urlsplit(target)
        self.method = method
        self.path = split.path
        self.query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        self.headers = headers
        self.body = body
        self.origin = origin

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def header_enabled(self, name: str) -> bool:
        return (self.header(name) or "").strip().lower() == "enable"

    @functools.cached_property
    def json(self) -> Any:
        """The body as JSON; raises ApiError when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "InvalidParameter", "The request body is not valid JSON.") from exc

    @functools.cached_property
    def form(self) -> list[FormField]:
        """The body as multipart/form-data; raises OssError when it is not."""
        try:
            return parse_form(self.header("Content-Type") or "", self.body)
        except ValueError as exc:
            raise OssError(400, "InvalidArgument", f"The form cannot be parsed: {exc}") from exc


@dataclass
class Reply:
    """What to send back. ``events`` makes it a server-sent-event stream, ``reset`` a dropped connection."""

    status: int
    body: bytes = b""
    content_type: str | None = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    events: list[bytes] | None = None
    reset: bool = False
    delay_s: float = 0.0
    error_code: str | None = None


def json_reply(status: int, payload: Any, error_code: str | None = None) -> Reply:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Reply(status, body, error_code=error_code)


def json_error(status: int, code: str, message: str, request_id: str) -> Reply:
    payload = {"request_id": request_id, "code": code, "message": message}
    return json_reply(status, payload, error_code=code)


def xml_error(status: int, code: str, message: str, request_id: str) -> Reply:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
        f"  <Code>{escape(code)}</Code>\n  <Message>{escape(message)}</Message>\n"
        f"  <RequestId>{request_id}</RequestId>\n  <HostId>dashscope-instant.emulator</HostId>\n"
        "</Error>\n"
    ).encode()
    return Reply(
        status,
        body,
        content_type="application/xml",
        headers={"x-oss-request-id": request_id},
        error_code=code,
    )


def error_reply(error: ApiError | OssError, request_id: str) -> Reply:
    if isinstance(error, OssError):
        return xml_error(error.status, error.code, error.message, request_id)
    return json_error(error.status, error.code, error.message, request_id)
