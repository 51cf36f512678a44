"""Flood control for people (``core.digest``) and the notification body (``core.outbox``), on plain values."""

from __future__ import annotations

from dropscribe.core.digest import DigestPolicy, Pending, plan, summary
from dropscribe.core.outbox import DEFAULT_EVENTS, EVENTS, OutboxEntry, document, label, payload_of

POLICY = DigestPolicy(quiet_s=2.0, max_hold_s=30.0, window_s=60.0, few=3, names=5)


def failures(count: int, start: float = 100.0, step: float = 0.1) -> list[Pending]:
    return [Pending(f"id{n}", start + n * step, f"file.failed f{n}.wav (not_audio)") for n in range(count)]


def test_nothing_pending_sends_nothing_and_needs_no_look() -> None:
    assert plan([], 100.0, last_summary_at=None, policy=POLICY) == plan(
        [], 0.0, last_summary_at=5.0, policy=POLICY
    )
    assert plan([], 100.0, last_summary_at=None, policy=POLICY).look_again_at is None


def test_a_message_waits_until_the_events_have_been_quiet() -> None:
    held = plan(failures(1), 101.0, last_summary_at=None, policy=POLICY)
    assert held.messages == ()
    assert held.look_again_at == 102.0  # its time + quiet_s


def test_a_few_quiet_events_go_one_by_one() -> None:
    sent = plan(failures(3), 110.0, last_summary_at=None, policy=POLICY)
    assert [m.ids for m in sent.messages] == [("id0",), ("id1",), ("id2",)]
    assert [m.summary for m in sent.messages] == [False, False, False]
    assert sent.messages[0].title == "file.failed f0.wav (not_audio)"
    assert sent.look_again_at is None


def test_a_burst_becomes_one_summary_with_the_count_and_first_names() -> None:
    burst = failures(60)  # 60 failures within 6 s
    sent = plan(burst, burst[-1].at + 2.0, last_summary_at=None, policy=POLICY)
    (message,) = sent.messages
    assert message.summary
    assert message.ids == tuple(f"id{n}" for n in range(60))
    assert message.title == "60 events (60 file.failed)"
    assert "f0.wav" in message.body
    assert "f4.wav" in message.body
    assert "f5.wav" not in message.body
    assert "… and 55 more" in message.body


def test_events_that_keep_coming_are_held_until_the_oldest_waited_long_enough() -> None:
    steady = failures(40, step=1.0)  # one a second for 40 s: never quiet
    at = steady[29].at + 0.5
    held = plan(steady[:30], at, last_summary_at=None, policy=POLICY)
    assert held.messages == ()
    assert held.look_again_at == min(steady[29].at + 2.0, steady[0].at + 30.0)
    sent = plan(steady[:31], steady[0].at + 30.0, last_summary_at=None, policy=POLICY)
    assert len(sent.messages) == 1
    assert len(sent.messages[0].ids) == 31


def test_at_most_one_summary_per_window() -> None:
    burst = failures(10)
    now = burst[-1].at + 5.0
    held = plan(burst, now, last_summary_at=now - 10.0, policy=POLICY)
    assert held.messages == ()
    assert held.look_again_at == now + 50.0
    assert len(plan(burst, now + 50.0, last_summary_at=now - 10.0, policy=POLICY).messages) == 1
    # a few are not a flood: they go out even right after a summary
    assert len(plan(burst[:2], now, last_summary_at=now - 10.0, policy=POLICY).messages) == 2


def test_a_summary_counts_each_kind_of_event() -> None:
    items = [
        *failures(4),
        Pending("p", 1.0, "queue.paused (Arrearage)"),
        Pending("b", 2.0, "inbox.back /srv/in"),
    ]
    message = summary(items, names=2)
    assert message.title == "6 events (4 file.failed, 1 queue.paused, 1 inbox.back)"
    assert message.body.count("\n- ") == 2


# the notification body ----------------------------------------------------------------------------


def test_events_and_their_default_subscription() -> None:
    assert "file.done" in EVENTS
    assert set(DEFAULT_EVENTS) == set(EVENTS) - {"file.done"}


def test_the_body_has_every_key_and_calls_the_human_text_message() -> None:
    paused = payload_of(
        "queue_paused", {"code": "Arrearage", "reason": "pay up", "hint": "h", "request_id": "r"}
    )
    assert paused == {"inbox": None, "relpath": None, "code": "Arrearage", "message": "pay up", "error": None,
                      "result": None}  # fmt: skip
    unreachable = payload_of("inbox_unavailable", {"inbox": "/srv/in", "problem": "not mounted"})
    assert (unreachable["inbox"], unreachable["message"]) == ("/srv/in", "not mounted")
    fields = {"inbox": "/i", "relpath": "a.wav", "code": "not_audio", "message": "m", "error": {"code": "x"}}
    failed = payload_of("file_failed", {**fields, "job_id": 3})
    assert failed["error"] == {"code": "x"}
    assert "job_id" not in failed


def test_a_program_gets_the_id_event_time_and_host() -> None:
    entry = OutboxEntry(
        id="abc", event="file.done", channel="webhook", created_at=1_790_000_000.4, job_id=1, attempts=0,
        payload=payload_of("file_done", {"inbox": "/i", "relpath": "x/a.wav", "result": {"text_length": 3}}),
        next_attempt_at=0.0, delivered_at=None, dropped_at=None, last_error=None,
    )  # fmt: skip
    doc = document(entry, "nas")
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
    assert (doc["id"], doc["event"], doc["at"], doc["host"]) == (
        "abc",
        "file.done",
        "2026-09-21T14:13:20Z",
        "nas",
    )
    assert label(entry) == "file.done x/a.wav"
