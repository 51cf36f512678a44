"""Notifications through the real service: a signed webhook that fails at first, a kill -9 between a
failed attempt and the delivery, e-mail through Apprise to a local SMTP server, a flood that becomes
one summary mail, and a receiver that hangs while files go on being finished."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from dropscribe.adapters.journal import SqliteJournal
from dropscribe.emulator import Emulator
from tests.adapters.test_webhook import Receiver
from tests.support.audio import make_tone
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for

# the local SMTP server takes AUTH without TLS on purpose: Apprise's plain mailto:// form is under test
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

SECRET = "hook-secret-0123456789"
SMTP_USER, SMTP_PASSWORD = "alerts", "smtp-pass-9876543210"
EVENTS = ["file.failed", "file.done", "queue.paused", "queue.resumed", "inbox.unreachable", "inbox.back"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class MailInbox:
    """An SMTP server on 127.0.0.1 (plain, with AUTH LOGIN/PLAIN) that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.logins: list[tuple[bytes, bytes]] = []
        self.port = free_port()
        self.controller = Controller(
            self, hostname="127.0.0.1", port=self.port, authenticator=self._authenticate,
            # plain SMTP on loopback, as the test of Apprise's mailto:// (no TLS) form
            auth_require_tls=False, auth_required=True,
        )  # fmt: skip
        self.controller.start()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            self.logins.append((auth_data.login, auth_data.password))
            return AuthResult(
                success=(auth_data.login, auth_data.password) == (b"alerts", SMTP_PASSWORD.encode())
            )
        return AuthResult(success=False)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content or b""
        self.messages.append(email.message_from_bytes(raw, policy=email.policy.default))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(message["subject"]) for message in self.messages]

    def url(self) -> str:
        return (
            f"mailto://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{self.port}"
            "?from=dropscribe@example.com&to=ops@example.com"
        )

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def mail() -> Iterator[MailInbox]:
    inbox = MailInbox()
    yield inbox
    inbox.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver([500, 500])  # the first two POSTs fail
    yield found
    found.close()


def layout_with(tmp_path: Path, emulator: Emulator, notify: dict[str, Any]) -> Layout:
    return Layout(tmp_path / "site", emulator.base_url, notify=notify)


def start(layout: Layout, services: list[ServiceProcess], **env: str) -> ServiceProcess:
    service = ServiceProcess(layout.config, env={"HOOK_SECRET": SECRET, **env}).wait_started()
    services.append(service)
    return service


def not_audio(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text("this is a text file, not a recording\n" * 20)
    return path


def delivered(receiver: Receiver) -> dict[str, tuple[dict[str, str], bytes]]:
    """The requests the receiver answered with a 2xx, by delivery id (the failures came first)."""
    failed = 2
    return {headers["x-dropscribe-delivery"]: (headers, body) for headers, body in receiver.requests[failed:]}


def outbox(layout: Layout, channel: str = "webhook") -> list[Any]:
    """The channel's notifications about files and the pending ones, each as the journal has it now."""
    journal = SqliteJournal(layout.state)
    try:
        ids = {entry.id for entry in journal.due_notifications(channel, now=float("inf"), limit=10_000)}
        for job in journal.jobs_in("done", "failed"):
            ids |= {e.id for e in journal.notifications_for_job(job.id) if e.channel == channel}
        return [journal.notification(id_) for id_ in sorted(ids)]
    finally:
        journal.close()


def signed(headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["x-dropscribe-signature"])


def test_the_webhook_gets_every_file_signed_after_its_first_failures(
    tmp_path: Path, emulator: Emulator, receiver: Receiver, services: list[ServiceProcess]
) -> None:
    layout = layout_with(tmp_path, emulator, {"webhook": {"url": receiver.url, "secret_env": "HOOK_SECRET"},
                                              "events": EVENTS})  # fmt: skip
    service = start(layout, services)
    make_tone(layout.inbox / "talk.wav", seconds=1.0, fmt="wav")
    not_audio(layout.inbox, "notes.mp3")
    wait_for(lambda: len(delivered(receiver)) >= 2, timeout=30)

    by_event = {
        json.loads(body)["event"]: (headers, json.loads(body))
        for headers, body in delivered(receiver).values()
    }
    assert set(by_event) == {"file.done", "file.failed"}
    for headers, doc in by_event.values():
        body = next(
            b for h, b in receiver.requests if h["x-dropscribe-delivery"] == doc["id"] and signed(h, b)
        )
        assert signed(headers, body)
        assert headers["x-dropscribe-event"] == doc["event"]
        assert list(doc) == [
            "id",
            "event",
            "at",
            "host",
            "inbox",
            "relpath",
            "code",
            "message",
            "error",
            "result",
        ]
        assert (doc["inbox"], doc["host"]) == (str(layout.inbox), socket.gethostname())
    failed = by_event["file.failed"][1]
    assert failed["relpath"] == "notes.mp3"
    assert failed["code"] == "not_audio"
    assert failed["error"] == json.loads((layout.failed / "notes.error.json").read_text())
    done = by_event["file.done"][1]
    text = (layout.done / "talk.txt").read_text().rstrip("\n")
    assert done["result"] == {"path": str(layout.done / "talk.wav"), "text_length": len(text)}
    assert service.saw("notification_failed", channel="webhook", error="the webhook answered 500")
    # the journal knows each as delivered, under the id the receiver saw
    # the answer reaches the receiver a moment before the service journals it
    wait_for(lambda: all(e.delivered_at is not None for e in outbox(layout)), timeout=10)
    assert {e.id for e in outbox(layout)} == set(delivered(receiver))
    assert SECRET not in service.output()


def test_a_kill_between_a_failed_attempt_and_the_delivery_loses_nothing(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    down = Receiver([500] * 1000)
    try:
        layout = layout_with(tmp_path, emulator, {"webhook": {"url": down.url, "secret_env": "HOOK_SECRET"}})
        service = start(layout, services)
        for n in range(3):
            not_audio(layout.inbox, f"bad-{n}.mp3")
        wait_for(lambda: len(layout.failed_files()) == 6, timeout=30)
        wait_for(lambda: len(outbox(layout)) == 3, timeout=10)  # the event is queued just after the move
        wait_for(lambda: service.saw("notification_failed"), timeout=15)
        service.kill()  # kill -9: attempts journaled as failed, nothing delivered
    finally:
        down.close()
    committed = {e.id for e in outbox(layout)}
    assert len(committed) == 3
    assert not any(e.delivered_at for e in outbox(layout))

    up = Receiver([])
    try:
        layout.data["notify"]["webhook"]["url"] = up.url
        layout.write()
        start(layout, services)
        wait_for(lambda: {h["x-dropscribe-delivery"] for h, _b in up.requests} >= committed, timeout=30)
        ids = [h["x-dropscribe-delivery"] for h, _b in up.requests]
        assert set(ids) == committed  # exactly what was committed, none lost, none made up
        assert all(signed(h, b) for h, b in up.requests)
        wait_for(lambda: all(e.delivered_at for e in outbox(layout)), timeout=10)
        assert any(e.attempts >= 1 for e in outbox(layout))  # the one tried before the kill
    finally:
        up.close()


def test_a_crash_between_a_finish_and_its_notification_tells_it_after_the_restart(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """The file is finished in the journal, then the process dies before its event is committed."""
    up = Receiver([])
    try:
        layout = layout_with(tmp_path, emulator, {"webhook": {"url": up.url, "secret_env": "HOOK_SECRET"}})
        not_audio(layout.inbox, "bad.mp3")
        crashed = ServiceProcess(
            layout.config, env={"HOOK_SECRET": SECRET, "DROPSCRIBE_CRASH_AT": "after_finish"}
        )
        services.append(crashed)
        assert crashed.proc.wait(timeout=60) != 0
        assert layout.failed_files() == ["bad.error.json", "bad.mp3"]
        assert outbox(layout) == []  # the journal says failed, and nothing was committed to tell it

        told = start(layout, services)
        wait_for(lambda: len(up.requests) >= 1, timeout=30)
        wait_for(lambda: all(e.delivered_at for e in outbox(layout)), timeout=10)
        (entry,) = outbox(layout)
        headers, body = up.requests[0]
        assert headers["x-dropscribe-event"] == "file.failed"
        assert json.loads(body)["relpath"] == "bad.mp3"
        assert json.loads(body)["error"]["code"] == "not_audio"
        assert headers["x-dropscribe-delivery"] == entry.id
    finally:
        up.close()
    assert len(up.requests) == 1
    assert told.saw("notifications_caught_up", files=1)
    assert told.stop() == 0
    restarted = start(layout, services)  # told once: a second start finds nothing left to tell
    wait_for(lambda: restarted.saw("service_started"))
    assert not restarted.saw("notifications_caught_up")


def test_people_get_an_email_through_apprise(
    tmp_path: Path, emulator: Emulator, mail: MailInbox, services: list[ServiceProcess]
) -> None:
    layout = layout_with(tmp_path, emulator, {"urls": [mail.url()]})
    service = start(layout, services)
    not_audio(layout.inbox, "memo.m4a")
    wait_for(lambda: mail.messages, timeout=30)
    (message,) = mail.messages
    assert "file.failed memo.m4a (not_audio)" in str(message["subject"])
    assert message["to"] == "ops@example.com"
    assert mail.logins == [(SMTP_USER.encode(), SMTP_PASSWORD.encode())]
    assert SMTP_PASSWORD not in service.output()
    wait_for(lambda: service.saw("notification_delivered", channel="people"), timeout=10)


def test_a_flood_becomes_one_summary_mail_while_the_webhook_gets_every_event(
    tmp_path: Path, emulator: Emulator, mail: MailInbox, services: list[ServiceProcess]
) -> None:
    hook = Receiver([])
    try:
        layout = layout_with(tmp_path, emulator, {
            "urls": [mail.url()], "webhook": {"url": hook.url, "secret_env": "HOOK_SECRET"},
        })  # fmt: skip
        for n in range(64):  # all there at start: they fail within a few seconds
            not_audio(layout.inbox, f"junk-{n:02d}.mp3")
        start(layout, services)
        wait_for(lambda: len(hook.requests) >= 64, timeout=60)
        wait_for(lambda: mail.messages, timeout=30)
        assert sorted(json.loads(b)["relpath"] for _h, b in hook.requests) == [
            f"junk-{n:02d}.mp3" for n in range(64)
        ]
        (summary,) = mail.messages
        assert "64 events (64 file.failed)" in str(summary["subject"])
        text = summary.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "… and 59 more" in text
        assert len(outbox(layout, "people")) == 64
        wait_for(lambda: all(e.delivered_at for e in outbox(layout, "people")), timeout=10)
    finally:
        hook.close()


def test_a_receiver_that_never_answers_does_not_hold_up_files(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        layout = layout_with(tmp_path, emulator, {"webhook": {"url": url, "secret_env": "HOOK_SECRET"},
                                                  "events": ["file.done", "file.failed"]})  # fmt: skip
        start(layout, services)
        for n in range(4):
            make_tone(layout.inbox / f"call-{n}.wav", seconds=1.0, fmt="wav", freq=300 + 50 * n)
        wait_for(lambda: len([f for f in layout.done_files() if f.endswith(".wav")]) == 4, timeout=20)
        wait_for(lambda: len(outbox(layout)) == 4, timeout=10)  # the event is queued just after the move
        assert not any(e.delivered_at for e in outbox(layout))  # still hanging on the first


def test_an_outage_of_the_inbox_is_told_once_and_its_return_once(
    tmp_path: Path, emulator: Emulator, receiver: Receiver, services: list[ServiceProcess]
) -> None:
    layout = layout_with(tmp_path, emulator, {"webhook": {"url": receiver.url, "secret_env": "HOOK_SECRET"}})
    service = start(layout, services)
    away = tmp_path / "share-offline"
    layout.inbox.rename(away)
    # several rescans (every 0.5 s) see it gone: the log says so each time, the outbox once
    wait_for(lambda: sum(e.get("event") == "inbox_unavailable" for e in service.events) >= 4, timeout=15)
    away.rename(layout.inbox)
    wait_for(lambda: {json.loads(b)["event"] for _h, b in delivered(receiver).values()} == {
        "inbox.unreachable", "inbox.back"}, timeout=30)  # fmt: skip
    events = [json.loads(body) for _headers, body in delivered(receiver).values()]
    assert sorted(e["event"] for e in events) == ["inbox.back", "inbox.unreachable"]
    unreachable = next(e for e in events if e["event"] == "inbox.unreachable")
    assert unreachable["inbox"] == str(layout.inbox)
    assert unreachable["message"]
    assert len(delivered(receiver)) == 2  # one of each, though many rescans saw it gone


def test_config_mistakes_and_a_missing_secret_are_named(tmp_path: Path, emulator: Emulator) -> None:
    layout = layout_with(tmp_path, emulator, {
        "urls": ["tgram://not-a-bot", "mailto://u:hunter22@127.0.0.1:25?from=a@example.com&to=b@example.com"],
        "webhook": {"url": "ftp://example.com/hook", "secret_env": "HOOK_SECRET"},
        "events": ["file.failed", "file.exploded"],
    })  # fmt: skip
    check = subprocess.run([sys.executable, "-m", "dropscribe", "check", "-c", str(layout.config)],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert check.returncode == 78
    assert "notify.urls: item 1 (tgram://…) is not a URL Apprise can use" in check.stderr
    assert "notify.webhook: url must be an http:// or https:// URL" in check.stderr
    assert "notify.events: 'file.exploded' is not an event" in check.stderr
    assert "hunter22" not in check.stderr

    layout.data["notify"] = {"webhook": {"url": "http://127.0.0.1:9/hook", "secret_env": "HOOK_SECRET"}}
    layout.write()
    run = subprocess.run([sys.executable, "-m", "dropscribe", "run", "-c", str(layout.config)],
                         capture_output=True, text=True, check=False, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "DASHSCOPE_API_KEY": API_KEY})  # fmt: skip
    assert run.returncode == 78
    assert "no webhook secret: set HOOK_SECRET" in run.stderr + run.stdout
