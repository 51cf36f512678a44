"""The webhook adapter against a real HTTP receiver on 127.0.0.1 (``http.server`` in a thread)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dropscribe.adapters.webhook import WebhookError, WebhookSender, signature

SECRET = "hook-secret-0123456789"


class Receiver:
    """Records each POST (headers and raw body); answers ``statuses`` in turn, then 204."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver([500])
    yield found
    found.close()


def verified(secret: str, headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["x-dropscribe-signature"])


def test_a_notification_is_posted_signed_and_a_non_2xx_is_an_error(receiver: Receiver) -> None:
    sender = WebhookSender(receiver.url, SECRET, timeout_s=5)
    doc = {"id": "d1", "event": "file.failed", "relpath": "caf\udce9 <b>.wav", "error": {"code": "not_audio"}}
    try:
        with pytest.raises(WebhookError, match="answered 500"):
            sender.send("d1", "file.failed", doc)
        sender.send("d1", "file.failed", doc)  # the receiver answers 204 now
    finally:
        sender.close()
    assert len(receiver.requests) == 2
    headers, body = receiver.requests[1]
    assert receiver.requests[0][1] == body  # a repeat is the same bytes, with the same id
    assert headers["x-dropscribe-event"] == "file.failed"
    assert headers["x-dropscribe-delivery"] == "d1"
    assert headers["content-type"] == "application/json"
    assert verified(SECRET, headers, body)
    assert not verified("another-secret", headers, body)
    assert json.loads(body)["relpath"] == "caf\udce9 <b>.wav"  # a name that was not UTF-8: valid JSON
    assert signature(SECRET, body) == headers["x-dropscribe-signature"]


def test_no_receiver_is_an_error_that_does_not_show_the_url() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = WebhookSender(f"http://user:tok3n-in-url@127.0.0.1:{port}/hook", SECRET, timeout_s=2)
    try:
        with pytest.raises(WebhookError) as caught:
            sender.send("d2", "queue.paused", {"id": "d2"})
    finally:
        sender.close()
    assert "tok3n-in-url" not in str(caught.value)
    assert "ConnectError" in str(caught.value)
