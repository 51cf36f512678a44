"""A job's timeline from plain journal values (``core.history``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dropscribe.core.history import CallRecord, Facts, Step, describe, looks_like_sha, own_calls, timeline
from dropscribe.core.jobs import Job

T0 = 1_000_000.0
KEY = "rk-1"


def job(**changes: Any) -> Job:
    base = Job(
        id=7, inbox="/srv/inbox", relpath="alice/talk.wav", state="done", sha256="ab" * 32, size=4800,
        dev=1, ino=2, mtime_ns=3, result_key=KEY, attempts=0, next_attempt_at=0.0, last_error=None,
        outcome="done", final_name="talk.wav", error=None,
        meta={"name": "talk.wav", "duration_s": 3.02, "format": "wav", "mode": "single",
              "model": "qwen3-asr-flash", "result_key": KEY},
        created_at=T0, started_at=T0, finished_at=T0 + 10,
    )  # fmt: skip
    return replace(base, **changes)


def call(id_: int, at: float, outcome: str | None, request_id: str | None, chunk: int = 0) -> CallRecord:
    return CallRecord(id_, KEY, chunk, "sync", at, at + 0.5 if outcome else None, outcome, request_id)


def kinds(steps: list[Step]) -> list[str]:
    return [s.kind for s in steps]


def text(step: Step) -> str:
    return describe(step, shown=lambda s: s if s.isprintable() else repr(s), clock=lambda at: f"@{at - T0:g}")


PAID = {"usage_seconds": 4, "request_ids": ["req-2"], "mode": "single", "model": "qwen3-asr-flash",
        "paid_by": {"job_id": 7, "name": "talk.wav", "sha256": "ab" * 32}}  # fmt: skip


def test_a_file_retried_after_a_503_then_done() -> None:
    retried = job(attempts=1, last_error="recognize: HTTP 503 ServiceUnavailable: busy")
    facts = Facts(
        calls=[call(1, T0 + 1, "AsrUnavailableError", "req-1"), call(2, T0 + 4, "ok", "req-2")],
        result=PAID, result_stored_at=T0 + 5, chunks_stored_at={0: T0 + 4.6},
        final_path="/srv/done/alice/talk.wav", sidecars=["talk.txt", "talk.json"],
    )  # fmt: skip
    steps = timeline(retried, facts)
    assert kinds(steps) == ["taken", "probed", "routed", "call", "retry", "call", "chunk_stored",
                            "result_stored", "decided", "sidecars", "moved"]  # fmt: skip
    assert [s.at for s in steps if s.kind == "call"] == [T0 + 1, T0 + 4]
    lines = [text(s) for s in steps]
    assert lines[3] == "chunk 0 request: AsrUnavailableError (request id req-1)"
    assert lines[4] == "retried: 1 failed attempt, last: recognize: HTTP 503 ServiceUnavailable: busy"
    assert lines[5] == "chunk 0 request: ok (request id req-2)"
    assert lines[7] == "result stored: 4 s billed; request ids req-2"
    assert lines[9] == "sidecars: talk.txt, talk.json"
    assert lines[10] == "moved to /srv/done/alice/talk.wav"
    assert lines[1:3] == ["probed: 3.02 s, wav", "routed: one request to qwen3-asr-flash"]


def test_a_waiting_retry_says_when_it_is_tried_again() -> None:
    waiting = job(state="working", outcome=None, final_name=None, finished_at=None, attempts=2,
                  next_attempt_at=T0 + 60, last_error="HTTP 503")  # fmt: skip
    facts = Facts(
        calls=[call(1, T0 + 1, "AsrUnavailableError", "r1"), call(2, T0 + 3, "AsrUnavailableError", None)]
    )
    steps = timeline(waiting, facts)
    assert kinds(steps) == ["taken", "probed", "routed", "call", "call", "retry"]
    assert steps[-1].details["next_attempt_at"] == T0 + 60
    assert text(steps[-1]) == "retried: 2 failed attempts, last: HTTP 503; next attempt at @60"
    assert text(steps[4]) == "chunk 0 request: AsrUnavailableError"


def test_a_reused_result_names_the_job_that_paid_and_shows_no_calls() -> None:
    second = job(id=9, relpath="copy.wav", final_name="copy.wav", created_at=T0 + 20, finished_at=T0 + 21,
                 meta={**job().meta, "reused": True})  # fmt: skip
    facts = Facts(calls=[call(1, T0 + 1, "ok", "req-1")], result=PAID, result_stored_at=T0 + 2)
    steps = timeline(second, facts)
    assert "call" not in kinds(steps)
    assert "result_stored" not in kinds(steps)
    (reused,) = [s for s in steps if s.kind == "result_reused"]
    assert reused.details["paid_by_job"] == 7
    assert text(reused) == "result reused: paid by job 7 (talk.wav); nothing billed for this file"
    assert own_calls(second, facts.calls, facts.result) == []


def test_calls_outside_the_jobs_lifetime_belong_to_another_job() -> None:
    calls = [call(1, T0 - 100, "ok", "old"), call(2, T0 + 2, "ok", "mine"), call(3, T0 + 500, "ok", "later"),
             CallRecord(4, "other-key", 0, "sync", T0 + 3, T0 + 4, "ok", "elsewhere")]  # fmt: skip
    assert [c.request_id for c in own_calls(job(), calls, PAID)] == ["mine"]
    open_job = job(state="working", finished_at=None)
    assert [c.request_id for c in own_calls(open_job, calls, PAID)] == ["mine", "later"]
    assert own_calls(job(result_key=None), calls, PAID) == []


def test_a_result_stored_before_the_job_was_not_stored_by_it() -> None:
    steps = timeline(job(), Facts(result=PAID, result_stored_at=T0 - 50))
    assert "result_stored" not in kinds(steps)


def test_a_rejected_file_shows_its_code_and_where_it_went() -> None:
    rejected = job(state="failed", outcome="failed", result_key=None, meta={"name": "talk.wav"},
                   error={"code": "not_audio", "message": "FFmpeg cannot read it"})  # fmt: skip
    steps = timeline(rejected, Facts(final_path="/srv/failed/alice/talk.wav", sidecars=["talk.error.json"]))
    assert kinds(steps) == ["taken", "decided", "sidecars", "moved"]
    assert text(steps[1]) == "decided: failed as talk.wav: not_audio: FFmpeg cannot read it"
    remote = replace(
        rejected, error={"code": "asr_rejected", "message": "bad", "remote_code": "InvalidParameter"}
    )
    assert (
        text(timeline(remote, Facts())[1])
        == "decided: failed as talk.wav: asr_rejected (InvalidParameter): bad"
    )


def test_jobs_that_ended_by_other_hands_say_so() -> None:
    gone = timeline(
        job(state="gone", outcome=None, final_name=None, last_error="source disappeared"), Facts()
    )
    assert kinds(gone)[-1] == "gone"
    assert text(gone[-1]) == "gone: source disappeared"
    reopened = timeline(job(state="reopened", last_error="writer resumed"), Facts())
    assert kinds(reopened)[-2:] == ["moved", "reopened"]
    sent_back = timeline(job(state="retried", outcome="failed"), Facts())
    assert kinds(sent_back)[-2:] == ["moved", "sent_back"]
    assert "retry" not in kinds(gone), "a reason for leaving is not a retry"


def test_notifications_take_their_place_in_time() -> None:
    facts = Facts(notifications=[{"event": "file.done", "at": T0 + 11, "state": "delivered", "secret": "x"}])
    steps = timeline(job(), facts)
    assert kinds(steps)[-2:] == ["moved", "notification"]
    assert steps[-1].details == {"event": "file.done", "state": "delivered"}
    assert text(steps[-1]) == "notification file.done: delivered"


def test_names_are_shown_through_the_callers_escaping() -> None:
    odd = b"caf\xe9\n.wav".decode("utf-8", "surrogateescape")
    steps = timeline(job(final_name=odd), Facts(final_path="/srv/done/" + odd, sidecars=[]))
    (moved,) = [s for s in steps if s.kind == "moved"]
    assert text(moved) == "moved to " + repr("/srv/done/" + odd)


def test_sha_lookups_need_eight_hex_digits() -> None:
    assert looks_like_sha("ab" * 32)
    assert looks_like_sha("DEADBEEF")
    assert not looks_like_sha("deadbee")
    assert not looks_like_sha("talk.wav")
    assert not looks_like_sha("a" * 65)
