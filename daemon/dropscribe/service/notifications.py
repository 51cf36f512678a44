"""Notifications: committed to the journal's outbox by the loop, delivered by a thread per channel.

The loop only ever writes a row (:class:`OutboxNotifier`); sending happens in :class:`Deliveries`,
so a receiver that hangs or refuses never holds up a file. Each channel works through its due rows
oldest first; a failed send puts that row off with backoff and rests the channel for as long (the
receiver is likely down, and every row would fail the same way). Rows outlive restarts: a row sent
but not yet marked delivered when the process died is sent again, so delivery is at least once.
Rows older than ``notify.max_age_s`` are dropped with a warning.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dropscribe.adapters.apprise_notify import AppriseError, AppriseSender
from dropscribe.adapters.webhook import WebhookError, WebhookSender
from dropscribe.config.model import NotifySettings, WebhookSettings
from dropscribe.core import digest
from dropscribe.core.attempts import RetryPolicy, after_failure
from dropscribe.core.errors import ConfigError
from dropscribe.core.jobs import Job
from dropscribe.core.naming import sidecar_name
from dropscribe.core.outbox import PEOPLE, SERVICE_EVENTS, WEBHOOK, OutboxEntry, document, label, payload_of
from dropscribe.core.ports.journal import Journal
from dropscribe.core.ports.notifier import Notifier
from dropscribe.logs import get_logger, register_secret

log = get_logger()

RETRY = RetryPolicy(base_s=1.0, cap_s=300.0)
IDLE_S = 5.0  # a channel looks at the outbox at least this often
BATCH = 100
PEOPLE_BATCH = 500  # a summary covers at most this many
MAX_SECRET_FILE_BYTES = 4096
MAX_ERROR_DOC_BYTES = 256 * 1024


def resolve_webhook_secret(webhook: WebhookSettings, env: Mapping[str, str]) -> str:
    """The secret the webhook's requests are signed with. Raises ConfigError naming where it looked."""
    if webhook.secret_env is not None:
        secret = env.get(webhook.secret_env, "").strip()
        if not secret:
            raise ConfigError([f"no webhook secret: set {webhook.secret_env} (notify.webhook.secret_env)"])
        return secret
    path = webhook.secret_file
    assert path is not None, "the config check requires secret_env or secret_file"
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"no webhook secret: {path} cannot be read: {exc.strerror or exc}"]) from exc
    secret = data.decode("utf-8", "replace").strip()
    if not secret or len(data) > MAX_SECRET_FILE_BYTES:
        raise ConfigError(
            [f"no webhook secret: {path} does not hold one (it should contain just the secret)"]
        )
    return secret


def _register_url_secrets(url: str) -> None:
    """Passwords and tokens live inside notification URLs: the whole URL and its password are masked."""
    register_secret(url)
    with contextlib.suppress(ValueError):
        password = urlsplit(url).password
        if password:
            register_secret(password)


class OutboxNotifier:
    """Tells ``inner`` (the log) about every event, and commits the subscribed ones to the outbox."""

    def __init__(
        self, inner: Notifier, journal: Journal, *, channels: Sequence[str], events: Collection[str],
        on_commit: Callable[[], None] = lambda: None,
    ) -> None:  # fmt: skip
        self.inner = inner
        self.journal = journal
        self.channels = list(channels)
        self.events = frozenset(events)
        self.on_commit = on_commit

    def notify(self, event: str, **fields: Any) -> None:
        self.inner.notify(event, **fields)
        name = SERVICE_EVENTS.get(event)
        job_id = fields.get("job_id")
        if name is None or name not in self.events or not self.channels:
            if event in FILE_EVENTS and isinstance(job_id, int):
                self._considered(job_id)
            return
        try:
            self.journal.add_notification(
                name,
                self.channels,
                payload_of(event, fields),
                job_id=job_id if isinstance(job_id, int) else None,
            )
        except Exception as exc:  # noqa: BLE001  # a notification must never fail the work it reports
            log.warning("notification_not_recorded", notify_event=name, error=str(exc))
            return
        self.on_commit()

    def _considered(self, job_id: int) -> None:
        try:
            self.journal.job_notified(job_id)
        except Exception as exc:  # noqa: BLE001  # a notification must never fail the work it reports
            log.warning("notification_not_recorded", job_id=job_id, error=str(exc))

    def catch_up(self, final_path_of: Callable[[Job], Path | None]) -> int:
        """File events lost to a crash between a job's finish and their commit, told now; returns how many.

        ``final_path_of`` names where a finished job's file went (None: its inbox is no longer configured).
        """
        told = 0
        for job_id in self.journal.jobs_to_notify():
            job = self.journal.get(job_id)
            final_path = final_path_of(job)
            if final_path is None or job.state not in ("done", "failed"):
                self._considered(job_id)
                continue
            event, fields = file_event(self.journal, job.state, job_id, final_path)
            self.notify(event, **fields)
            told += 1
        return told


FILE_EVENTS = frozenset({"file_done", "file_failed"})


def file_event(journal: Journal, outcome: str, job_id: int, final_path: Path) -> tuple[str, dict[str, Any]]:
    """The event and fields for a file that ended ``done`` or ``failed`` (as ``final_path``)."""
    job = journal.get(job_id)
    fields: dict[str, Any] = {"inbox": job.inbox, "relpath": job.relpath, "job_id": job.id}
    if outcome == "failed":
        doc = _error_document(final_path) or dict(job.error or {})
        fields.update(code=doc.get("code"), message=doc.get("message"), error=doc)
        return "file_failed", fields
    result = journal.result(job.result_key) if job.result_key else None
    text = (result or {}).get("text")
    fields["result"] = {"path": str(final_path), "text_length": len(text) if isinstance(text, str) else None}
    return "file_done", fields


def _error_document(final_path: Path) -> dict[str, Any] | None:
    """The ``.error.json`` written beside the failed file, as it was written."""
    try:
        with open(final_path.parent / sidecar_name(final_path.name, ".error.json"), "rb") as handle:
            data = handle.read(MAX_ERROR_DOC_BYTES)
        doc = json.loads(data)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


class Deliveries:
    """One thread per configured channel, sending what the outbox holds."""

    def __init__(
        self, journal: Journal, settings: NotifySettings, *, webhook: WebhookSender | None,
        people: AppriseSender | None, host: str, policy: digest.DigestPolicy | None = None,
    ) -> None:  # fmt: skip
        self.journal = journal
        self.max_age_s = settings.max_age_s
        self.webhook = webhook
        self.people = people
        self.host = host
        self.policy = policy or digest.DigestPolicy()
        self.channels: tuple[str, ...] = tuple(
            name for name, sender in ((WEBHOOK, webhook), (PEOPLE, people)) if sender is not None
        )
        self._stop = threading.Event()
        self._wake = {channel: threading.Event() for channel in self.channels}
        self._threads: list[threading.Thread] = []
        self._failures = dict.fromkeys(self.channels, 0)
        self._rest_until = dict.fromkeys(self.channels, 0.0)
        self._last_summary_at: float | None = None

    @classmethod
    def build(cls, journal: Journal, settings: NotifySettings, env: Mapping[str, str]) -> Deliveries:
        """From the settings; raises ConfigError when the webhook's secret is missing."""
        webhook = None
        if settings.webhook is not None:
            secret = resolve_webhook_secret(settings.webhook, env)
            register_secret(secret)
            webhook = WebhookSender(settings.webhook.url, secret)
        for url in (*settings.urls, *([settings.webhook.url] if settings.webhook else [])):
            _register_url_secrets(url)
        people = AppriseSender(settings.urls) if settings.urls else None
        return cls(journal, settings, webhook=webhook, people=people, host=socket.gethostname())

    def wake(self) -> None:
        for event in self._wake.values():
            event.set()

    def start(self) -> None:
        for channel in self.channels:
            thread = threading.Thread(
                target=self._run, args=(channel,), name=f"notify-{channel}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop sending; a send in progress is given ``timeout_s``, then left (its row stays pending)."""
        self._stop.set()
        self.wake()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if not any(thread.is_alive() for thread in self._threads) and self.webhook is not None:
            self.webhook.close()
        self._threads = []

    def _run(self, channel: str) -> None:
        wake = self._wake[channel]
        while not self._stop.is_set():
            wake.clear()
            try:
                wait_s = self._round(channel)
            except Exception as exc:  # noqa: BLE001  # a broken round must not end the channel for good
                log.warning("notification_round_failed", channel=channel, error=repr(exc))
                wait_s = IDLE_S
            wake.wait(wait_s)

    def _round(self, channel: str) -> float:
        """Send what is due on ``channel``; returns how long to wait before the next round."""
        now = time.time()
        if now < self._rest_until[channel]:
            return self._rest_until[channel] - now
        if channel == WEBHOOK:
            return self._webhook_round(now)
        return self._people_round(now)

    def _webhook_round(self, now: float) -> float:
        assert self.webhook is not None
        for entry in self.journal.due_notifications(WEBHOOK, now, BATCH):
            if self._stop.is_set():
                return 0.0
            if self._expired(entry, now):
                continue
            try:
                self.webhook.send(entry.id, entry.event, document(entry, self.host))
            except WebhookError as exc:
                return self._failed(WEBHOOK, [entry], str(exc))
            self._delivered(WEBHOOK, [entry])
        return self._until_next(WEBHOOK)

    def _people_round(self, now: float) -> float:
        assert self.people is not None
        entries = [
            e for e in self.journal.due_notifications(PEOPLE, now, PEOPLE_BATCH) if not self._expired(e, now)
        ]
        by_id = {entry.id: entry for entry in entries}
        pending = [digest.Pending(entry.id, entry.created_at, label(entry)) for entry in entries]
        plan = digest.plan(pending, now, last_summary_at=self._last_summary_at, policy=self.policy)
        for message in plan.messages:
            sent = [by_id[id_] for id_ in message.ids]
            try:
                self.people.send(f"dropscribe on {self.host}: {message.title}", message.body)
            except AppriseError as exc:
                return self._failed(PEOPLE, sent, str(exc))
            if message.summary:
                self._last_summary_at = time.time()
            self._delivered(PEOPLE, sent)
        if plan.look_again_at is not None:
            return min(IDLE_S, max(0.01, plan.look_again_at - time.time()))
        return self._until_next(PEOPLE)

    def _until_next(self, channel: str) -> float:
        due_at = self.journal.next_notification_at(channel)
        return IDLE_S if due_at is None else min(IDLE_S, max(0.01, due_at - time.time()))

    def _expired(self, entry: OutboxEntry, now: float) -> bool:
        age_s = now - entry.created_at
        if age_s <= self.max_age_s:
            return False
        self.journal.notifications_dropped(
            [entry.id], f"not delivered within notify.max_age_s={self.max_age_s:g}"
        )
        log.warning("notification_dropped", channel=entry.channel, id=entry.id, notify_event=entry.event,
                    attempts=entry.attempts, age_s=round(age_s), last_error=entry.last_error)  # fmt: skip
        return True

    def _delivered(self, channel: str, entries: Sequence[OutboxEntry]) -> None:
        self.journal.notifications_delivered([entry.id for entry in entries])
        self._failures[channel] = 0
        for entry in entries:
            log.info("notification_delivered", channel=channel, id=entry.id, notify_event=entry.event,
                     attempts=entry.attempts + 1)  # fmt: skip

    def _failed(self, channel: str, entries: Sequence[OutboxEntry], error: str) -> float:
        step = after_failure(RETRY, self._failures[channel], jitter=random.random())
        self._failures[channel] = step.failures
        until = time.time() + step.delay_s
        self._rest_until[channel] = until
        self.journal.notifications_failed([entry.id for entry in entries], error=error, next_attempt_at=until)
        log.warning("notification_failed", channel=channel, ids=[entry.id for entry in entries],
                    notify_event=entries[0].event, error=error,
                    retry_in_s=round(step.delay_s, 1))  # fmt: skip
        return step.delay_s
