"""The journal contract: what every implementation of ``core.ports.journal.Journal`` must do.

Written against the port only. An implementation runs it from a ``test_<name>_journal.py`` holding one
class that inherits :class:`JournalContract` and provides the fixture ``open_journal``: a callable that
opens the same journal each time it is called (empty on the first call), so reopening can be tested.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dropscribe.core.jobs import Job
from dropscribe.core.ports.journal import Journal

OpenJournal = Callable[[], Journal]

INBOX = "/srv/inbox"
# a name that is not UTF-8, as os.fsdecode gives it: it must round-trip and be found again
ODD_NAME = b"caf\xe9 \xff.wav".decode("utf-8", "surrogateescape")


def take(journal: Journal, relpath: str, *, inbox: str = INBOX, size: int = 1000, **meta: Any) -> Job:
    return journal.start_job(
        inbox, relpath, sha256="ab" * 32, size=size, dev=1, ino=size, mtime_ns=size * 10,
        result_key=None, meta=dict(meta),
    )  # fmt: skip


def finish(journal: Journal, job: Job, outcome: str = "done", name: str | None = None) -> Job:
    journal.decide(job.id, outcome=outcome, final_name=name or job.relpath.rpartition("/")[2])
    journal.finish(job.id)
    return journal.get(job.id)


class JournalContract:
    @pytest.fixture
    def journal(self, open_journal: OpenJournal) -> Iterator[Journal]:
        journal = open_journal()
        yield journal
        journal.close()

    # jobs: taking a file -----------------------------------------------------------------------

    def test_a_taken_file_is_a_working_job_with_what_was_recorded(self, journal: Journal) -> None:
        before = time.time()
        job = journal.start_job(
            INBOX, "a/b.wav", sha256="cd" * 32, size=5, dev=7, ino=9, mtime_ns=11,
            result_key="rk1", meta={"rules": {"language": "en"}},
        )  # fmt: skip
        assert job == journal.get(job.id)
        assert (job.inbox, job.relpath, job.state) == (INBOX, "a/b.wav", "working")
        assert (job.sha256, job.size, job.dev, job.ino, job.mtime_ns) == ("cd" * 32, 5, 7, 9, 11)
        assert (job.result_key, job.meta) == ("rk1", {"rules": {"language": "en"}})
        assert (job.attempts, job.next_attempt_at, job.last_error) == (0, 0, None)
        assert (job.outcome, job.final_name, job.error, job.finished_at) == (None, None, None, None)
        assert job.started_at is not None
        assert before <= job.created_at <= job.started_at <= time.time()

    def test_the_active_job_is_found_by_inbox_and_relpath(self, journal: Journal) -> None:
        job = take(journal, "a/b.wav")
        assert journal.active_job(INBOX, "a/b.wav") == job
        assert journal.active_job(INBOX, "a/c.wav") is None
        assert journal.active_job("/srv/other", "a/b.wav") is None

    def test_taking_a_changed_file_again_refreshes_its_active_job(self, journal: Journal) -> None:
        first = take(journal, "x.wav", size=10)
        journal.decide(first.id, outcome="failed", final_name="x.wav", error={"code": "not_audio"})
        again = take(journal, "x.wav", size=20, note="second")
        assert again.id == first.id
        assert (again.state, again.size, again.meta) == ("working", 20, {"note": "second"})
        assert (again.outcome, again.final_name, again.error) == (None, None, None)
        assert journal.jobs_in("working", "finishing") == [again]

    def test_a_file_taken_after_its_job_ended_gets_a_new_job(self, journal: Journal) -> None:
        old = finish(journal, take(journal, "x.wav"))
        new = take(journal, "x.wav")
        assert new.id != old.id
        assert journal.get(old.id).state == "done"
        assert journal.active_job(INBOX, "x.wav") == new

    def test_names_that_are_not_utf8_round_trip(self, journal: Journal) -> None:
        inbox = INBOX + "/" + ODD_NAME
        job = take(journal, f"{ODD_NAME}/{ODD_NAME}", inbox=inbox)
        assert (job.inbox, job.relpath) == (inbox, f"{ODD_NAME}/{ODD_NAME}")
        assert journal.active_job(inbox, f"{ODD_NAME}/{ODD_NAME}") == job
        journal.decide(job.id, outcome="failed", final_name=ODD_NAME)
        journal.finish(job.id)
        assert journal.get(job.id).final_name == ODD_NAME
        assert [j.id for j in journal.finished_since(inbox, 0)] == [job.id]
        assert journal.mark_retried(inbox, ODD_NAME, ODD_NAME) == job.id

    # jobs: along the way -----------------------------------------------------------------------

    def test_result_key_and_meta_can_be_set_later(self, journal: Journal) -> None:
        job = take(journal, "x.wav")
        journal.set_result_key(job.id, "rk2", {"duration_s": 3.5})
        got = journal.get(job.id)
        assert (got.result_key, got.meta) == ("rk2", {"duration_s": 3.5})

    def test_defer_counts_attempts_unless_told_not_to(self, journal: Journal) -> None:
        job = take(journal, "x.wav")
        journal.defer(job.id, until=1234.5, error="throttled")
        journal.defer(job.id, until=2345.5, error="share gone", count_attempt=False)
        got = journal.get(job.id)
        assert (got.attempts, got.next_attempt_at, got.last_error) == (1, 2345.5, "share gone")
        journal.defer(job.id, until=3456.5, error="throttled")
        assert journal.get(job.id).attempts == 2

    def test_a_decision_is_kept_while_finishing(self, journal: Journal) -> None:
        job = take(journal, "a/x.wav")
        journal.decide(job.id, outcome="failed", final_name="x (2).wav", error={"code": "too_long"})
        got = journal.get(job.id)
        assert (got.state, got.outcome, got.final_name) == ("finishing", "failed", "x (2).wav")
        assert got.error == {"code": "too_long"}
        assert journal.active_job(INBOX, "a/x.wav") == got

    def test_finish_makes_the_outcome_the_state_and_keeps_the_final_identity(self, journal: Journal) -> None:
        job = take(journal, "x.wav", rules="kept")
        journal.decide(job.id, outcome="done", final_name="x.wav")
        before = time.time()
        journal.finish(job.id, {"dev": 3, "ino": 4, "size": 5, "mtime_ns": 6})
        got = journal.get(job.id)
        assert got.state == "done"
        assert got.meta == {"rules": "kept", "final_identity": {"dev": 3, "ino": 4, "size": 5, "mtime_ns": 6}}
        assert got.finished_at is not None
        assert before <= got.finished_at <= time.time()
        assert journal.active_job(INBOX, "x.wav") is None

    def test_finish_without_an_identity_leaves_meta_alone(self, journal: Journal) -> None:
        job = take(journal, "x.wav", rules="kept")
        got = finish(journal, job, "failed")
        assert (got.state, got.meta) == ("failed", {"rules": "kept"})

    def test_restart_forgets_the_decision(self, journal: Journal) -> None:
        job = take(journal, "x.wav")
        journal.decide(job.id, outcome="done", final_name="x.wav", error=None)
        journal.restart(job.id)
        got = journal.get(job.id)
        assert (got.state, got.outcome, got.final_name, got.error) == ("working", None, None, None)
        assert journal.active_job(INBOX, "x.wav") == got

    def test_abandon_and_reopen_end_a_job_with_their_reason(self, journal: Journal) -> None:
        gone = take(journal, "gone.wav")
        journal.abandon(gone.id, "source disappeared")
        got = journal.get(gone.id)
        assert (got.state, got.last_error) == ("gone", "source disappeared")
        assert got.finished_at is not None
        assert journal.active_job(INBOX, "gone.wav") is None

        done = finish(journal, take(journal, "resumed.wav"))
        journal.reopen(done.id, "writer resumed")
        got = journal.get(done.id)
        assert (got.state, got.last_error) == ("reopened", "writer resumed")
        assert journal.finished_since(INBOX, 0) == []

    # jobs: finished ones -----------------------------------------------------------------------

    def test_finished_since_lists_done_and_failed_of_one_inbox_oldest_first(self, journal: Journal) -> None:
        first = finish(journal, take(journal, "1.wav"), "done")
        second = finish(journal, take(journal, "2.wav"), "failed")
        finish(journal, take(journal, "3.wav", inbox="/srv/other"), "done")
        journal.abandon(take(journal, "4.wav").id, "gone")
        take(journal, "5.wav")  # still working
        assert [j.id for j in journal.finished_since(INBOX, 0)] == [first.id, second.id]
        assert second.finished_at is not None
        assert [j.id for j in journal.finished_since(INBOX, second.finished_at)] == [second.id]
        assert journal.finished_since(INBOX, time.time() + 60) == []

    def test_mark_retried_takes_the_newest_failed_job_of_that_name_in_that_folder(
        self, journal: Journal
    ) -> None:
        older = finish(journal, take(journal, "sub/x.wav"), "failed", "x.wav")
        newer = finish(journal, take(journal, "sub/x.wav"), "failed", "x.wav")
        top = finish(journal, take(journal, "x.wav"), "failed", "x.wav")
        finish(journal, take(journal, "sub/y.wav"), "done", "y.wav")
        assert journal.mark_retried(INBOX, "sub", "x.wav") == newer.id
        assert journal.get(newer.id).state == "retried"
        assert journal.get(older.id).state == "failed"
        assert journal.mark_retried(INBOX, "", "x.wav") == top.id
        assert journal.mark_retried(INBOX, "sub", "y.wav") is None  # done, not failed
        assert journal.mark_retried("/srv/other", "sub", "x.wav") is None
        assert journal.mark_retried(INBOX, "elsewhere", "x.wav") is None

    def test_jobs_in_recent_and_counts(self, journal: Journal) -> None:
        a = finish(journal, take(journal, "a.wav"), "failed")
        b = take(journal, "b.wav")
        c = finish(journal, take(journal, "c.wav"), "failed")
        d = take(journal, "d.wav")
        journal.decide(d.id, outcome="done", final_name="d.wav")
        assert [j.id for j in journal.jobs_in("working", "finishing")] == [b.id, d.id]
        assert [j.id for j in journal.jobs_in("failed")] == [a.id, c.id]
        assert journal.jobs_in("gone") == []
        assert [j.id for j in journal.recent("failed")] == [c.id, a.id]
        assert [j.id for j in journal.recent("failed", 1)] == [c.id]
        assert journal.counts() == {"failed": 2, "working": 1, "finishing": 1}

    # results -----------------------------------------------------------------------------------

    def test_results_are_stored_replaced_and_looked_up_by_key(self, journal: Journal) -> None:
        assert journal.result("rk") is None
        journal.store_result("rk", {"text": "one", "usage_seconds": 2.5})
        journal.store_result("rk", {"text": "two", "usage_seconds": 3})
        journal.store_result("other", {"text": "x", "usage_seconds": 1.5})
        journal.store_result("free", {"text": "no usage recorded"})
        assert journal.result("rk") == {"text": "two", "usage_seconds": 3}
        assert journal.usage_seconds_total() == pytest.approx(4.5)

    def test_usage_between_two_times_counts_the_answers_stored_then(self, journal: Journal) -> None:
        start = time.time()
        assert journal.usage_seconds_between(0.0, start + 60) == 0.0
        journal.store_result("a", {"text": "a", "usage_seconds": 2.5})
        journal.store_result("free", {"text": "no usage recorded"})
        journal.store_result("b", {"text": "b", "usage_seconds": 4})
        end = time.time() + 1e-3
        assert journal.usage_seconds_between(start - 1e-3, end) == pytest.approx(6.5)
        assert journal.usage_seconds_between(end, end + 3600) == 0.0  # stored before the window
        assert journal.usage_seconds_between(0.0, start - 1) == 0.0  # stored after it

    def test_chunk_results_are_kept_per_chunk(self, journal: Journal) -> None:
        assert journal.chunk_results("rk") == {}
        journal.store_chunk_result("rk", 1, {"text": "b"})
        journal.store_chunk_result("rk", 0, {"text": "a"})
        journal.store_chunk_result("rk", 1, {"text": "b2"})
        journal.store_chunk_result("rk2", 0, {"text": "other"})
        assert journal.chunk_results("rk") == {0: {"text": "a"}, 1: {"text": "b2"}}

    def test_forget_result_drops_answers_and_task_but_keeps_what_was_paid(self, journal: Journal) -> None:
        for key in ("rk", "kept"):
            journal.store_result(key, {"text": key})
            journal.store_chunk_result(key, 0, {"text": key})
            journal.task_submitting(key)
            journal.call_ended(journal.call_started(key, 0, "sync"), "ok", f"req-{key}")
        journal.forget_result("rk")
        assert (journal.result("rk"), journal.chunk_results("rk"), journal.task("rk")) == (None, {}, None)
        assert journal.request_ids("rk") == ["req-rk"]
        assert journal.result("kept") == {"text": "kept"}
        assert journal.chunk_results("kept") == {0: {"text": "kept"}}
        assert journal.task("kept") is not None

    # calls and tasks ---------------------------------------------------------------------------

    def test_calls_give_their_request_ids_in_the_order_they_started(self, journal: Journal) -> None:
        first = journal.call_started("rk", 0, "sync")
        second = journal.call_started("rk", 1, "sync")
        unanswered = journal.call_started("rk", 2, "sync")
        elsewhere = journal.call_started("rk2", 0, "submit")
        assert len({first, second, unanswered, elsewhere}) == 4
        journal.call_ended(second, "ok", "req-2")
        journal.call_ended(first, "throttled", "req-1")
        journal.call_ended(unanswered, "timeout", None)
        journal.call_ended(elsewhere, "ok", "req-x")
        assert journal.request_ids("rk") == ["req-1", "req-2"]
        assert journal.request_ids("nothing") == []

    def test_an_answer_stored_with_its_call_closes_the_call_with_the_answer(self, journal: Journal) -> None:
        """The answer and the end of the call that brought it are one step: the call history is what
        says which audio was paid for, so it may never show an answered call as still open."""
        answered = journal.call_started("rk", 1, "sync")
        open_call = journal.call_started("rk", 2, "sync")
        journal.store_chunk_result("rk", 1, {"text": "b"}, call_id=answered, request_id="req-b")
        calls = {c.id: c for c in journal.calls_of("rk")}
        assert (calls[answered].outcome, calls[answered].request_id) == ("ok", "req-b")
        assert calls[answered].ended_at is not None
        assert (calls[open_call].outcome, calls[open_call].ended_at) == (None, None)
        assert journal.chunk_results("rk") == {1: {"text": "b"}}
        assert journal.request_ids("rk") == ["req-b"]

    def test_a_task_id_stored_with_its_submit_closes_the_submit(self, journal: Journal) -> None:
        journal.task_submitting("rk")
        submit = journal.call_started("rk", 0, "submit")
        journal.task_submitted("rk", "task-1", "req-1", call_id=submit)
        (call,) = journal.calls_of("rk")
        assert (call.id, call.outcome, call.request_id) == (submit, "submitted", "req-1")
        assert [task_id for task_id, _at in filter(None, [journal.task("rk")])] == ["task-1"]

    def test_a_task_is_noted_before_and_after_its_submit(self, journal: Journal) -> None:
        assert journal.task("rk") is None
        before = time.time()
        journal.task_submitting("rk")
        in_flight = journal.task("rk")
        assert in_flight is not None
        assert in_flight[0] is None
        assert before <= in_flight[1] <= time.time()
        journal.task_submitted("rk", "task-1", "req-1")
        assert journal.task("rk") == ("task-1", in_flight[1])
        journal.forget_task("rk")
        assert journal.task("rk") is None

    # history, for explain ----------------------------------------------------------------------

    def test_every_job_of_a_file_is_found_oldest_first(self, journal: Journal) -> None:
        first = finish(journal, take(journal, "a/x.wav"), "failed")
        journal.mark_retried(INBOX, "a", "x.wav")
        second = finish(journal, take(journal, "a/x.wav"))
        third = take(journal, "a/x.wav")
        take(journal, "a/y.wav")
        take(journal, "a/x.wav", inbox="/srv/other")
        found = journal.jobs_of_file(INBOX, "a/x.wav")
        assert [j.id for j in found] == [first.id, second.id, third.id]
        assert [j.state for j in found] == ["retried", "done", "working"]
        assert journal.jobs_of_file(INBOX, "a/z.wav") == []

    def test_jobs_are_found_by_their_final_name_in_their_folder(self, journal: Journal) -> None:
        renamed = finish(journal, take(journal, "a/x.wav"), "done", "x (2).wav")
        top = finish(journal, take(journal, "x.wav"), "done", "x (2).wav")
        odd = finish(journal, take(journal, f"{ODD_NAME}/{ODD_NAME}"), "failed", ODD_NAME)
        assert [j.id for j in journal.jobs_finished_as(INBOX, "a", "x (2).wav")] == [renamed.id]
        assert [j.id for j in journal.jobs_finished_as(INBOX, "", "x (2).wav")] == [top.id]
        assert [j.id for j in journal.jobs_finished_as(INBOX, ODD_NAME, ODD_NAME)] == [odd.id]
        assert journal.jobs_finished_as(INBOX, "a", "x.wav") == []
        assert journal.jobs_finished_as("/srv/other", "a", "x (2).wav") == []

    def test_jobs_are_found_by_a_prefix_of_their_hash(self, journal: Journal) -> None:
        def taken(relpath: str, sha: str) -> Job:
            return journal.start_job(INBOX, relpath, sha256=sha, size=1, dev=1, ino=1, mtime_ns=1,
                                     result_key=None, meta={})  # fmt: skip

        a = taken("a.wav", "ab12" + "0" * 60)
        b = taken("b.wav", "ab12" + "f" * 60)
        c = taken("c.wav", "ab13" + "0" * 60)
        journal.start_job(INBOX, "empty.wav", sha256="", size=0, dev=1, ino=1, mtime_ns=1, result_key=None,
                          meta={})  # fmt: skip
        assert [j.id for j in journal.jobs_with_sha("ab12")] == [a.id, b.id]
        assert [j.id for j in journal.jobs_with_sha("AB12")] == [a.id, b.id]
        assert [j.id for j in journal.jobs_with_sha("ab1")] == [a.id, b.id, c.id]
        assert [j.id for j in journal.jobs_with_sha("ab12" + "f" * 60)] == [b.id]
        assert journal.jobs_with_sha("ab14") == []

    def test_calls_are_listed_with_how_they_ended(self, journal: Journal) -> None:
        before = time.time()
        first = journal.call_started("rk", 0, "sync")
        journal.call_ended(first, "AsrUnavailableError", "req-1")
        second = journal.call_started("rk", 0, "sync")
        journal.call_ended(second, "ok", "req-2")
        open_call = journal.call_started("rk", 1, "submit")
        journal.call_started("rk2", 0, "sync")
        journal.forget_result("rk")  # calls are the record of payment: they stay
        calls = journal.calls_of("rk")
        assert [(c.id, c.chunk, c.kind, c.outcome, c.request_id) for c in calls] == [
            (first, 0, "sync", "AsrUnavailableError", "req-1"),
            (second, 0, "sync", "ok", "req-2"),
            (open_call, 1, "submit", None, None),
        ]
        assert {c.result_key for c in calls} == {"rk"}
        assert before <= calls[0].started_at <= (calls[0].ended_at or 0) <= calls[1].started_at
        assert calls[2].ended_at is None
        assert journal.calls_of("nothing") == []

    def test_results_and_chunk_answers_say_when_they_were_stored(self, journal: Journal) -> None:
        assert (journal.result_stored_at("rk"), journal.chunks_stored_at("rk")) == (None, {})
        before = time.time()
        journal.store_chunk_result("rk", 1, {"text": "b"})
        journal.store_chunk_result("rk", 0, {"text": "a"})
        journal.store_result("rk", {"text": "ab"})
        stored = journal.result_stored_at("rk")
        chunks = journal.chunks_stored_at("rk")
        assert stored is not None
        assert before <= chunks[1] <= chunks[0] <= stored <= time.time()
        assert sorted(chunks) == [0, 1]
        journal.forget_result("rk")
        assert (journal.result_stored_at("rk"), journal.chunks_stored_at("rk")) == (None, {})

    # uploaded objects --------------------------------------------------------------------------

    def test_live_objects_are_those_under_the_prefix_not_deleted(self, journal: Journal) -> None:
        for key in ("up/ab/1.flac", "up/ab/2.flac", "up/ab/3.flac", "up/abc/1.flac", "up/AB/1.flac",
                    "up/a%/1.flac", "up/a_/1.flac", "up/\u00e9/1.flac", "other/up/ab/1.flac"):  # fmt: skip
            journal.object_created(key)
        journal.object_created("up/ab/1.flac")  # again: still one object
        journal.object_deleted("up/ab/2.flac")
        assert sorted(journal.live_objects("up/ab/")) == ["up/ab/1.flac", "up/ab/3.flac"]
        assert sorted(journal.live_objects("up/ab")) == ["up/ab/1.flac", "up/ab/3.flac", "up/abc/1.flac"]
        assert journal.live_objects("up/a%") == ["up/a%/1.flac"]  # no wildcards, no case folding
        assert journal.live_objects("up/a_") == ["up/a_/1.flac"]
        assert journal.live_objects("up/\u00e9/") == ["up/\u00e9/1.flac"]
        assert journal.live_objects("nothing/") == []
        journal.object_deleted("up/ab/1.flac")
        journal.object_deleted("up/ab/3.flac")
        assert journal.live_objects("up/ab/") == []

    # meta --------------------------------------------------------------------------------------

    def test_meta_is_set_replaced_and_removed(self, journal: Journal) -> None:
        assert journal.get_meta("paused") is None
        journal.set_meta("paused", '{"reason": "Arrearage"}')
        journal.set_meta("paused", '{"reason": "InvalidApiKey"}')
        journal.set_meta("other", "x")
        assert journal.get_meta("paused") == '{"reason": "InvalidApiKey"}'
        journal.set_meta("paused", None)
        journal.set_meta("never-set", None)
        assert (journal.get_meta("paused"), journal.get_meta("other")) == (None, "x")

    def test_a_healthy_journal_is_writable(self, journal: Journal) -> None:
        journal.set_meta("paused", "yes")
        assert journal.writable()
        assert journal.get_meta("paused") == "yes"

    # the notification outbox -------------------------------------------------------------------

    def test_a_notification_is_one_pending_entry_per_channel_due_at_once(self, journal: Journal) -> None:
        before = time.time()
        body = {"inbox": INBOX, "relpath": ODD_NAME, "code": "not_audio", "message": "m", "error": {"a": 1},
                "result": None}  # fmt: skip
        ids = journal.add_notification("file.failed", ["webhook", "people"], body, job_id=7)
        assert len(set(ids)) == 2
        assert all(isinstance(id_, str) and id_ for id_ in ids)
        now = time.time()
        (hook,) = journal.due_notifications("webhook", now)
        (people,) = journal.due_notifications("people", now)
        assert (hook.id, people.id) == tuple(ids)
        assert (hook.event, hook.channel, hook.payload, hook.job_id) == ("file.failed", "webhook", body, 7)
        assert (hook.attempts, hook.delivered_at, hook.dropped_at, hook.last_error) == (0, None, None, None)
        assert before <= hook.created_at <= hook.next_attempt_at <= now
        assert journal.notification(ids[0]) == hook
        assert journal.notification("no-such-id") is None
        assert journal.next_notification_at("webhook") == hook.next_attempt_at
        assert journal.next_notification_at("elsewhere") is None

    def test_due_notifications_come_oldest_first_up_to_the_limit(self, journal: Journal) -> None:
        ids = [journal.add_notification("queue.paused", ["webhook"], {"n": n})[0] for n in range(5)]
        assert [e.id for e in journal.due_notifications("webhook", time.time())] == ids
        assert [e.id for e in journal.due_notifications("webhook", time.time(), limit=2)] == ids[:2]
        assert journal.due_notifications("people", time.time()) == []

    def test_a_failed_attempt_counts_and_waits_until_its_time(self, journal: Journal) -> None:
        (first,) = journal.add_notification("inbox.back", ["webhook"], {"inbox": INBOX})
        (second,) = journal.add_notification("inbox.back", ["webhook"], {"inbox": INBOX})
        later = time.time() + 60
        journal.notifications_failed([first], error="answered 500", next_attempt_at=later)
        journal.notifications_failed([first], error="connection refused", next_attempt_at=later + 1)
        assert [e.id for e in journal.due_notifications("webhook", time.time())] == [second]
        assert [e.id for e in journal.due_notifications("webhook", later + 1)] == [first, second]
        entry = journal.notification(first)
        assert entry is not None
        assert (entry.attempts, entry.last_error) == (2, "connection refused")
        assert entry.next_attempt_at == later + 1
        waiting = journal.notification(second)
        assert waiting is not None
        assert journal.next_notification_at("webhook") == waiting.next_attempt_at

    def test_delivered_and_dropped_entries_are_never_due_again(self, journal: Journal) -> None:
        a, b, c = (journal.add_notification("file.done", ["webhook"], {"n": n})[0] for n in range(3))
        before = time.time()
        journal.notifications_delivered([a])
        journal.notifications_dropped([b], "older than notify.max_age_s")
        journal.notifications_failed([a, b], error="late", next_attempt_at=0)  # ended: changes nothing
        journal.notifications_delivered([b])
        assert [e.id for e in journal.due_notifications("webhook", time.time() + 1)] == [c]
        delivered, dropped = journal.notification(a), journal.notification(b)
        assert delivered is not None
        assert dropped is not None
        assert before <= (delivered.delivered_at or 0) <= time.time()
        assert (delivered.attempts, delivered.last_error, delivered.dropped_at) == (0, None, None)
        assert before <= (dropped.dropped_at or 0) <= time.time()
        assert dropped.delivered_at is None
        assert dropped.last_error == "older than notify.max_age_s"
        journal.notifications_delivered([c])
        assert journal.next_notification_at("webhook") is None

    def test_notifications_of_a_job_are_all_kept_oldest_first(self, journal: Journal) -> None:
        job = take(journal, "a.wav")
        first = journal.add_notification("file.failed", ["webhook", "people"], {"n": 1}, job_id=job.id)
        journal.add_notification("queue.paused", ["webhook"], {"n": 2})
        second = journal.add_notification("file.done", ["webhook"], {"n": 3}, job_id=job.id)
        journal.notifications_delivered(first)
        found = journal.notifications_for_job(job.id)
        assert [e.id for e in found] == first + second
        assert [e.delivered_at is not None for e in found] == [True, True, False]
        assert journal.notifications_for_job(job.id + 1000) == []

    def test_a_finished_job_waits_to_be_told_until_its_event_is_committed_or_passed_over(
        self, journal: Journal
    ) -> None:
        working = take(journal, "working.wav")
        told = finish(journal, take(journal, "told.wav"))
        passed = finish(journal, take(journal, "passed.wav"), "failed")
        lost = finish(journal, take(journal, "lost.wav"))
        assert journal.jobs_to_notify() == [told.id, passed.id, lost.id]  # never one still working
        journal.add_notification("file.done", ["webhook"], {"n": 1}, job_id=told.id)
        journal.job_notified(passed.id)  # not subscribed: considered all the same
        journal.add_notification("queue.paused", ["webhook"], {"n": 2})  # no job: changes nothing
        assert journal.jobs_to_notify() == [lost.id]
        assert working.id not in journal.jobs_to_notify()

    def test_the_outbox_survives_closing_and_opening_again(self, open_journal: OpenJournal) -> None:
        journal = open_journal()
        (pending,) = journal.add_notification("queue.paused", ["webhook"], {"code": "Arrearage"})
        (done,) = journal.add_notification("queue.resumed", ["webhook"], {"code": None})
        journal.notifications_failed([pending], error="refused", next_attempt_at=5.0)
        journal.notifications_delivered([done])
        kept = (journal.notification(pending), journal.notification(done))
        journal.close()
        journal = open_journal()
        try:
            assert (journal.notification(pending), journal.notification(done)) == kept
            assert [e.id for e in journal.due_notifications("webhook", 10.0)] == [pending]
        finally:
            journal.close()

    # budgets: reservations by result key -------------------------------------------------------

    def test_a_reservation_counts_in_every_budget_until_it_settles_to_what_was_billed(
        self, journal: Journal
    ) -> None:
        both = [("defaults", "day:2026-05-05"), ("inbox:/in", "month:2026-05")]
        journal.reserve("rk", both, 30.0, at=1.0)
        assert journal.budget_use("defaults", "day:2026-05-05") == 30.0
        assert journal.budget_reserved("inbox:/in", "month:2026-05") == 30.0
        assert journal.budget_use("defaults", "day:2026-05-06") == 0.0
        assert journal.open_reservations() == ["rk"]
        journal.settle("rk", 28.5)
        assert journal.budget_use("defaults", "day:2026-05-05") == 28.5
        assert journal.budget_use("inbox:/in", "month:2026-05") == 28.5
        assert journal.budget_reserved("inbox:/in", "month:2026-05") == 0.0
        assert journal.open_reservations() == []
        journal.release("rk")  # what was settled was paid: releasing leaves it
        journal.settle("rk", 99.0)  # nothing open: nothing changes
        assert journal.budget_use("defaults", "day:2026-05-05") == 28.5

    def test_reserving_again_for_the_same_key_replaces_the_open_reservation(self, journal: Journal) -> None:
        day = [("defaults", "day:d")]
        journal.reserve("rk", day, 30.0, at=1.0)
        journal.reserve("rk", day, 31.0, at=2.0)  # a new try after a crash between reservation and call
        journal.reserve("other", day, 5.0, at=2.0)
        assert journal.budget_use("defaults", "day:d") == 36.0
        journal.release("rk")
        assert journal.budget_use("defaults", "day:d") == 5.0
        assert journal.open_reservations() == ["other"]

    def test_a_result_bought_again_counts_again(self, journal: Journal) -> None:
        day = [("defaults", "day:d")]
        journal.reserve("rk", day, 10.0, at=1.0)
        journal.settle("rk", 10.0)
        journal.reserve("rk", day, 10.0, at=2.0)  # its answer was forgotten and is bought once more
        assert journal.budget_use("defaults", "day:d") == 20.0
        journal.settle("rk", 9.0)
        assert journal.budget_use("defaults", "day:d") == 19.0

    def test_reservations_survive_closing_and_opening_again(self, open_journal: OpenJournal) -> None:
        journal = open_journal()
        journal.reserve("open", [("defaults", "day:d")], 7.0, at=1.0)
        journal.reserve("paid", [("defaults", "day:d")], 3.0, at=1.0)
        journal.settle("paid", 2.0)
        journal.close()
        journal = open_journal()
        try:
            assert journal.budget_use("defaults", "day:d") == 9.0
            assert journal.budget_reserved("defaults", "day:d") == 7.0
            assert journal.open_reservations() == ["open"]
        finally:
            journal.close()

    # durability and sharing --------------------------------------------------------------------

    def test_everything_survives_closing_and_opening_again(self, open_journal: OpenJournal) -> None:
        journal = open_journal()
        done = finish(journal, take(journal, "done.wav"))
        working = take(journal, "working.wav", rules="r")
        journal.defer(working.id, until=99.0, error="throttled")
        journal.store_result("rk", {"text": "t", "usage_seconds": 2})
        journal.store_chunk_result("rk", 0, {"text": "c"})
        journal.call_ended(journal.call_started("rk", 0, "sync"), "ok", "req-1")
        journal.task_submitting("rk")
        journal.task_submitted("rk", "task-1", "req-2")
        journal.object_created("up/1")
        journal.set_meta("paused", "p")
        jobs = (journal.get(done.id), journal.get(working.id))
        task = journal.task("rk")
        journal.close()

        journal = open_journal()
        try:
            assert (journal.get(done.id), journal.get(working.id)) == jobs
            assert journal.active_job(INBOX, "working.wav") == jobs[1]
            assert journal.result("rk") == {"text": "t", "usage_seconds": 2}
            assert journal.chunk_results("rk") == {0: {"text": "c"}}
            assert journal.request_ids("rk") == ["req-1"]
            assert journal.task("rk") == task
            assert journal.live_objects("up/") == ["up/1"]
            assert journal.get_meta("paused") == "p"
            assert journal.counts() == {"done": 1, "working": 1}
            assert take(journal, "new.wav").id not in (done.id, working.id)
        finally:
            journal.close()

    def test_a_write_is_seen_by_another_open_journal_at_once(self, open_journal: OpenJournal) -> None:
        writer, reader = open_journal(), open_journal()
        try:
            job = take(writer, "x.wav")
            writer.store_result("rk", {"text": "t"})
            assert reader.active_job(INBOX, "x.wav") == job
            assert reader.result("rk") == {"text": "t"}
        finally:
            writer.close()
            reader.close()

    def test_threads_may_share_one_journal(self, journal: Journal) -> None:
        def work(n: int) -> None:
            for chunk in range(10):
                journal.store_chunk_result(f"rk{n}", chunk, {"n": n, "chunk": chunk})
                journal.call_ended(journal.call_started(f"rk{n}", chunk, "sync"), "ok", f"r{n}.{chunk}")

        with ThreadPoolExecutor(4) as pool:
            for done in [pool.submit(work, n) for n in range(4)]:
                done.result()  # a thread's exception fails the test here
        for n in range(4):
            assert journal.chunk_results(f"rk{n}") == {c: {"n": n, "chunk": c} for c in range(10)}
            assert journal.request_ids(f"rk{n}") == [f"r{n}.{c}" for c in range(10)]
