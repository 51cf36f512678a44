"""The journal port: the service's durable memory of jobs, results, calls, uploads and meta.

Every side effect is preceded by a committed intent and followed by a committed outcome, so a restart
can tell what was done. Results are stored by *result key* (content hash + everything that shapes the
request), which is what keeps a recognition from being paid for twice.

Contract for every implementation (checked by ``tests/contract/journal_contract.py``):

* each write is committed when the call returns, and is seen after the journal is closed and opened
  again, by this process or another;
* paths (``inbox``, ``relpath``, ``final_name``) round-trip exactly, names that are not UTF-8 included
  (they arrive as ``str`` with surrogate escapes);
* when nothing can be recorded (the store is full) a call raises
  :class:`~dropscribe.core.errors.StateFullError` and nothing may be done; once there is room again
  calls work without reopening;
* a store written by a newer release is refused on open with
  :class:`~dropscribe.core.errors.JournalVersionError` and left as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from dropscribe.core.history import CallRecord
from dropscribe.core.jobs import Job
from dropscribe.core.outbox import OutboxEntry


class Journal(Protocol):
    def close(self) -> None: ...

    def writable(self) -> bool:
        """Whether a write commits now (how the service learns that a full store has room again)."""
        ...

    # jobs -------------------------------------------------------------------------------------

    def active_job(self, inbox: str, relpath: str) -> Job | None:
        """The job of this file that is ``working`` or ``finishing``; there is at most one."""
        ...

    def get(self, job_id: int) -> Job: ...

    def start_job(
        self, inbox: str, relpath: str, *, sha256: str, size: int, dev: int, ino: int,
        mtime_ns: int, result_key: str | None, meta: dict[str, Any],
    ) -> Job:  # fmt: skip
        """Record that a file was taken, or refresh its active job (same id) if the file changed since.

        A refreshed job is ``working`` again: its outcome, final name and error are cleared.
        """
        ...

    def set_result_key(self, job_id: int, result_key: str, meta: dict[str, Any]) -> None: ...

    def defer(self, job_id: int, *, until: float, error: str, count_attempt: bool = True) -> None:
        """Not before ``until``; ``attempts`` grows by one unless ``count_attempt`` is false."""
        ...

    def decide(
        self, job_id: int, *, outcome: str, final_name: str, error: dict[str, Any] | None = None,
        token: int | None = None,
    ) -> None:  # fmt: skip
        """Commit where the file goes (``done`` | ``failed``) and under which name: state ``finishing``.

        With ``token`` (a claim's, see ``core.ports.claims``) nothing changes and ``LeaseLostError`` is
        raised unless that claim on the job's file still runs; the check and the change are one step.
        """
        ...

    def finish(
        self, job_id: int, final_identity: dict[str, int] | None = None, *, token: int | None = None
    ) -> None:
        """The decided outcome becomes the state; ``final_identity`` lands in ``meta``.

        ``token`` fences it as it fences :meth:`decide`.
        """
        ...

    def restart(self, job_id: int) -> None:
        """Back to ``working`` with the decision forgotten: the file goes through the gate again."""
        ...

    def abandon(self, job_id: int, reason: str) -> None:
        """The file left the inbox by other hands: state ``gone``, ``reason`` as its last error."""
        ...

    def reopen(self, job_id: int, reason: str) -> None:
        """The finished file changed in place: state ``reopened``, ``reason`` as its last error."""
        ...

    def mark_retried(self, inbox: str, folder: str, final_name: str) -> int | None:
        """The newest ``failed`` job of ``inbox`` named ``final_name`` in ``folder`` becomes ``retried``.

        ``folder`` is the relpath's folder (``""`` at the top). Returns its id, or None if none matched.
        """
        ...

    def finished_since(self, inbox: str, since: float) -> list[Job]:
        """Jobs of ``inbox`` that ended ``done`` or ``failed`` at or after ``since``, oldest first."""
        ...

    def jobs_in(self, *states: str) -> list[Job]:
        """Jobs in any of ``states``, in the order they were first taken."""
        ...

    def recent(self, state: str, limit: int = 10) -> list[Job]:
        """The last ``limit`` jobs to finish in ``state``, newest first."""
        ...

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state (states with none are absent)."""
        ...

    # results ----------------------------------------------------------------------------------

    def result(self, result_key: str) -> dict[str, Any] | None: ...

    def store_result(self, result_key: str, result: dict[str, Any]) -> None:
        """Store (or replace) the whole answer for ``result_key``."""
        ...

    def chunk_results(self, result_key: str) -> dict[int, dict[str, Any]]: ...

    def store_chunk_result(
        self, result_key: str, chunk: int, result: dict[str, Any], *, call_id: int | None = None,
        request_id: str | None = None,
    ) -> None:  # fmt: skip
        """Store (or replace) one chunk's answer.

        With ``call_id``, the call that brought it is closed as ``ok`` with ``request_id`` in the same
        transaction: a crash leaves either both or neither, never a stored answer whose call looks
        unanswered (the call history is the record of what was paid, and of which audio it was for).
        """
        ...

    def forget_result(self, result_key: str) -> None:
        """Drop the answer, its chunk answers and its task; the calls stay as the record of payment."""
        ...

    def usage_seconds_total(self) -> float:
        """The sum of ``usage_seconds`` over every stored answer."""
        ...

    def usage_seconds_between(self, start: float, end: float) -> float:
        """The sum of ``usage_seconds`` of the answers stored at or after ``start`` and before ``end``."""
        ...

    # calls and tasks --------------------------------------------------------------------------

    def call_started(self, result_key: str, chunk: int, kind: str) -> int:
        """Note a request about to be sent (``kind``: ``sync`` | ``submit``); returns the call's id."""
        ...

    def call_ended(self, call_id: int, outcome: str, request_id: str | None) -> None: ...

    def request_ids(self, result_key: str) -> list[str]:
        """The request ids of the ended calls for ``result_key``, in the order the calls started."""
        ...

    def task(self, result_key: str) -> tuple[str | None, float] | None:
        """``(task_id, submitted_at)``; ``task_id`` is None while the submit is in flight."""
        ...

    def task_submitting(self, result_key: str) -> None: ...

    def task_submitted(
        self, result_key: str, task_id: str, request_id: str | None, *, call_id: int | None = None
    ) -> None:
        """Record the accepted task's id; with ``call_id``, close that submit call as ``submitted`` in
        the same transaction."""
        ...

    def forget_task(self, result_key: str) -> None: ...

    # history, for ``dropscribe explain`` --------------------------------------------------------

    def jobs_of_file(self, inbox: str, relpath: str) -> list[Job]:
        """Every job of this file, ended ones included, oldest first."""
        ...

    def jobs_finished_as(self, inbox: str, folder: str, final_name: str) -> list[Job]:
        """Jobs of ``inbox`` decided under ``final_name`` in ``folder`` (the relpath's), oldest first."""
        ...

    def jobs_with_sha(self, prefix: str) -> list[Job]:
        """Jobs whose content hash starts with ``prefix`` (hex, any case), oldest first."""
        ...

    def calls_of(self, result_key: str) -> list[CallRecord]:
        """Every call made for ``result_key``, in the order they started; forgetting keeps them."""
        ...

    def result_stored_at(self, result_key: str) -> float | None:
        """When the stored answer for ``result_key`` was stored; None if there is none."""
        ...

    def chunks_stored_at(self, result_key: str) -> dict[int, float]:
        """When each stored chunk answer for ``result_key`` was stored."""
        ...

    # uploaded objects -------------------------------------------------------------------------

    def object_created(self, object_key: str) -> None:
        """Note an uploaded object; noting it again changes nothing."""
        ...

    def object_deleted(self, object_key: str) -> None: ...

    def live_objects(self, prefix: str) -> list[str]:
        """Keys that start with ``prefix`` (case counts) and were not deleted."""
        ...

    # meta -------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str | None) -> None:
        """Set ``key``; None removes it."""
        ...

    # the notification outbox ------------------------------------------------------------------

    def add_notification(
        self, event: str, channels: Sequence[str], payload: dict[str, Any], *, job_id: int | None = None
    ) -> list[str]:
        """Commit one notification per channel, due now; returns their ids (unique strings)."""
        ...

    def due_notifications(self, channel: str, now: float, limit: int = 100) -> list[OutboxEntry]:
        """Pending notifications of ``channel`` due at ``now``, oldest first."""
        ...

    def next_notification_at(self, channel: str) -> float | None:
        """When the next pending notification of ``channel`` is due; None when none is pending."""
        ...

    def notifications_delivered(self, ids: Sequence[str]) -> None:
        """These were delivered; only pending ones change."""
        ...

    def notifications_failed(self, ids: Sequence[str], *, error: str, next_attempt_at: float) -> None:
        """A failed attempt: ``attempts`` grows by one, due again at ``next_attempt_at``."""
        ...

    def notifications_dropped(self, ids: Sequence[str], reason: str) -> None:
        """Given up (too old): never due again, ``reason`` as the last error."""
        ...

    def notification(self, notification_id: str) -> OutboxEntry | None: ...

    def job_notified(self, job_id: int) -> None:
        """This finished job's file event was considered: committed with ``job_id``, or not subscribed."""
        ...

    def jobs_to_notify(self) -> list[int]:
        """Finished (done or failed) jobs whose file event was never considered, oldest first.

        ``add_notification(..., job_id=J)`` and ``job_notified(J)`` take J off this list; a crash between
        a job's finish and either of them leaves it here for the next start.
        """
        ...

    def notifications_for_job(self, job_id: int) -> list[OutboxEntry]:
        """Every notification about this job, delivered or not, oldest first."""
        ...

    # budgets ------------------------------------------------------------------------------------

    def reserve(
        self, result_key: str, scopes_periods: Sequence[tuple[str, str]], seconds: float, at: float
    ) -> None:
        """Reserve ``seconds`` in each ``(scope, period)`` for ``result_key``, replacing its open reservation.

        Reserving again for the same key (a new try after a crash) never counts it twice.
        """
        ...

    def settle(self, result_key: str, billed_seconds: float) -> None:
        """The open reservation of ``result_key`` becomes what was billed, in the same budgets and periods."""
        ...

    def release(self, result_key: str) -> None:
        """Drop the open reservation of ``result_key`` (nothing was billed); what was settled stays."""
        ...

    def budget_use(self, scope: str, period: str) -> float:
        """Seconds settled plus reserved in ``scope`` during ``period`` (a key such as day:2026-05-05)."""
        ...

    def budget_reserved(self, scope: str, period: str) -> float:
        """The reserved (not yet settled) part of :meth:`budget_use`."""
        ...

    def open_reservations(self) -> list[str]:
        """Result keys with a reservation that was neither settled nor released."""
        ...
