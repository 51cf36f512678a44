"""The webhook: one notification POSTed as JSON, signed with HMAC-SHA256 of the exact bytes sent.

A receiver checks ``X-Dropscribe-Signature`` against the raw body before parsing it, and may use
``X-Dropscribe-Delivery`` to drop a repeat: delivery is at least once, so a notification whose 2xx got
lost on the way back comes again with the same id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import httpx

USER_AGENT = "dropscribe-webhook"


class WebhookError(Exception):
    """The receiver did not take the notification (no answer, or not a 2xx); try again later."""


def signature(secret: str, body: bytes) -> str:
    """The value of ``X-Dropscribe-Signature`` for ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def body_bytes(document: Mapping[str, Any]) -> bytes:
    # a name that was not UTF-8 holds lone surrogates; backslashreplace keeps the JSON valid
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")


class WebhookSender:
    def __init__(self, url: str, secret: str, *, timeout_s: float = 10.0) -> None:
        self._url = url
        self._secret = secret
        # no redirects: a signed body is for the address configured, not wherever it points
        self._client = httpx.Client(
            timeout=timeout_s, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )

    def send(self, delivery_id: str, event: str, document: Mapping[str, Any]) -> None:
        """POST ``document``; returns on a 2xx, raises :class:`WebhookError` otherwise."""
        body = body_bytes(document)
        headers = {
            "Content-Type": "application/json",
            "X-Dropscribe-Event": event,
            "X-Dropscribe-Delivery": delivery_id,
            "X-Dropscribe-Signature": signature(self._secret, body),
        }
        try:
            answer = self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            # the exception's text can hold the URL, which can hold a token: say what kind it was
            raise WebhookError(f"no answer from the webhook ({type(exc).__name__})") from exc
        if not 200 <= answer.status_code < 300:
            raise WebhookError(f"the webhook answered {answer.status_code}")

    def close(self) -> None:
        self._client.close()
