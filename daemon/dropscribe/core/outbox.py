"""Notifications as the outbox keeps them: which service events become which notification, and its body.

The service reports conditions under its own event names (``queue_paused``, ``inbox_unavailable``...);
the names people and programs subscribe to are the product's (``queue.paused``, ``inbox.unreachable``...).
Each notification is committed to the journal once per channel before anything is sent, so a crash
between the two repeats a delivery rather than losing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

EVENTS: tuple[str, ...] = (
    "file.failed",
    "file.done",
    "queue.paused",
    "queue.resumed",
    "inbox.unreachable",
    "inbox.back",
    "budget.reached",
)
DEFAULT_EVENTS: tuple[str, ...] = tuple(event for event in EVENTS if event != "file.done")

WEBHOOK = "webhook"
PEOPLE = "people"
CHANNELS: tuple[str, ...] = (WEBHOOK, PEOPLE)

# the service's event names that are notifications, and the product's name for each
SERVICE_EVENTS: Mapping[str, str] = {
    "file_failed": "file.failed",
    "file_done": "file.done",
    "queue_paused": "queue.paused",
    "queue_resumed": "queue.resumed",
    "inbox_unavailable": "inbox.unreachable",
    "inbox_back": "inbox.back",
    "budget_reached": "budget.reached",
}

BODY_KEYS: tuple[str, ...] = ("inbox", "relpath", "code", "message", "error", "result")
#: Keys a body carries only when the event has them (the backend of a pause, a reached budget's figures).
OPTIONAL_KEYS: tuple[str, ...] = ("backend", "scope", "period", "limit_s", "used_s", "resets_at")


@dataclass(frozen=True)
class OutboxEntry:
    """One notification for one channel, and how its delivery went so far."""

    id: str
    event: str  # a name from EVENTS
    channel: str  # a name from CHANNELS
    payload: dict[str, Any]  # BODY_KEYS, each present (None where it says nothing)
    job_id: int | None
    created_at: float
    attempts: int
    next_attempt_at: float
    delivered_at: float | None
    dropped_at: float | None
    last_error: str | None


def payload_of(service_event: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The body of a notification from the fields the service gave its event.

    ``reason`` and ``problem`` are what the service calls the human message of a pause or an
    unreachable inbox; a notification calls it ``message``.
    """
    message = fields.get("message", fields.get("reason", fields.get("problem")))
    body = {key: fields.get(key) for key in BODY_KEYS}
    body.update({key: fields[key] for key in OPTIONAL_KEYS if fields.get(key) is not None})
    body["message"] = None if message is None else str(message)
    return body


def document(entry: OutboxEntry, host: str) -> dict[str, Any]:
    """What a program receives: the stored body with its id, event, time and the sending host."""
    at = datetime.fromtimestamp(entry.created_at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {"id": entry.id, "event": entry.event, "at": at, "host": host, **entry.payload}


def label(entry: OutboxEntry) -> str:
    """A short line naming what happened, for messages to people."""
    where = entry.payload.get("relpath") or entry.payload.get("inbox") or ""
    code = entry.payload.get("code")
    parts = [entry.event, str(where)] + ([f"({code})"] if code else [])
    return " ".join(part for part in parts if part)
