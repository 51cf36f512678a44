"""Carrying out how one take ended, and the holds on the whole queue that an ending can start.

A take ends with an outcome (done, failed, skipped) or with an exception that says when to look at the
file again: backoff after transient trouble, a wait for an unfinished upload or a writer, a paused
queue after an account problem, a full journal or output disk. Whether and when is decided in
``core`` (:mod:`dropscribe.core.attempts`); this module records it in the queue state and the journal
and tells the operator.
"""

from __future__ import annotations

import json
import random

from dropscribe.config.model import DashScopeSettings, InboxSettings
from dropscribe.core.attempts import RetryPolicy, after_failure, failures_so_far
from dropscribe.core.dispatch import Key, output_probe_s
from dropscribe.core.errors import (
    AccountError,
    InputRejectedError,
    LeaseLostError,
    OutputFullError,
    ShareUnavailableError,
    StateFullError,
    TransientError,
)
from dropscribe.core.ports.clock import Clock
from dropscribe.core.ports.journal import Journal
from dropscribe.core.ports.notifier import Notifier
from dropscribe.logs import get_logger
from dropscribe.service.metrics_registry import ServiceMetrics
from dropscribe.service.notifications import file_event
from dropscribe.service.outcomes import (
    BusyError,
    ChangedError,
    ClaimedElsewhereError,
    GoneError,
    IncompleteError,
    ParkedError,
    RetryLaterError,
)
from dropscribe.service.queue_state import QueueState, Running
from dropscribe.service.reopen import FinishedFiles
from dropscribe.service.scanner import InboxScanner

log = get_logger()
FULL_PROBE_S = 5.0  # a full journal disk is tried again this often
LEASE_LOST_WAIT_S = 5.0  # a file whose claim this process lost: by then another process holds it


class Settler:
    def __init__(
        self, state: QueueState, journal: Journal, notifier: Notifier, clock: Clock,
        metrics: ServiceMetrics | None = None,
    ) -> None:  # fmt: skip
        self.state = state
        self.journal = journal
        self.notifier = notifier
        self.clock = clock
        self.metrics = metrics

    def settle(
        self, key: Key, running: Running, *, scanner: InboxScanner | None, ds: DashScopeSettings,
        state_path: str, generation: int, finished: FinishedFiles,
    ) -> None:  # fmt: skip
        """Carry out what the end of one take means for the file and the queue."""
        st = self.state
        inbox, relpath = running.inbox, key[1]
        try:
            outcome = running.future.result()
        except ParkedError:
            return
        except IncompleteError as exc:
            st.not_before[key] = self.clock.monotonic() + exc.wait_s
            st.waiting[key] = ("incomplete", self.clock.time() + exc.wait_s)
            observed = scanner.observations.get(relpath) if scanner is not None else None
            if observed is not None:  # the wait ends early if the file changes (its writer is back)
                st.incomplete_at[key] = observed.fingerprint
            return
        except BusyError as exc:
            st.not_before[key] = self.clock.monotonic() + exc.wait_s
            st.waiting[key] = ("open_for_writing", self.clock.time() + exc.wait_s)
            return
        except (ClaimedElsewhereError, LeaseLostError) as exc:
            # the other process finishes it; looked at again in case it dies before that
            wait_s = exc.wait_s if isinstance(exc, ClaimedElsewhereError) else LEASE_LOST_WAIT_S
            st.not_before[key] = self.clock.monotonic() + wait_s
            st.waiting[key] = ("claimed", self.clock.time() + wait_s)
            return
        except RetryLaterError as exc:
            st.not_before[key] = self.clock.monotonic() + exc.wait_s
            st.waiting[key] = ("retry", self.clock.time() + exc.wait_s)
            return
        except ChangedError:
            log.info("source_changed", inbox=str(inbox.path), relpath=relpath,
                     action="waiting for it to settle again")  # fmt: skip
            return
        except GoneError:
            problem = scanner.available() if scanner is not None else None
            if problem is None:
                self.abandon(inbox, relpath)
            else:  # the share went away, not the file: keep the job, it resumes when the share returns
                self.defer(key, inbox, ShareUnavailableError(problem), ds)
            return
        except AccountError as exc:
            # an account error from work started with an older config says nothing about the new one
            if running.generation == generation:
                self.pause(exc, ds.pause_probe_s)
            return
        except StateFullError as exc:
            self.state_is_full(exc, state_path)
            return
        except OutputFullError as exc:
            self.output_is_full(key, inbox, exc)
            return
        except TransientError as exc:
            self.defer(key, inbox, exc, ds)
            return
        except InputRejectedError as exc:  # a rejection that escaped the pipeline's own handling
            log.error("job_error", relpath=relpath, code=exc.code, error=exc.message)
            return
        except Exception as exc:
            log.exception("job_crashed", inbox=str(inbox.path), relpath=relpath, error=repr(exc))
            self.defer(key, inbox, TransientError(repr(exc)), ds)
            return
        st.not_before.pop(key, None)
        st.failures.pop(key, None)
        st.incomplete_at.pop(key, None)
        if outcome.state in ("done", "failed") and st.output_full.pop(key[0], None) is not None:
            self.notifier.notify("output_space_back", inbox=key[0], action="taking files again")
        if outcome.state in ("done", "failed"):
            st.stats[outcome.state] += 1
            job = self.journal.get(outcome.job_id) if outcome.job_id is not None else None
            if self.metrics is not None and job is not None:
                result = self.journal.result(job.result_key) if job.result_key else None
                self.metrics.job_finished(job, result)
            if job is not None and outcome.final_path is not None:
                finished.add(inbox, job.id, relpath, outcome.final_path, self.clock.time(),
                             job.meta.get("final_identity"))  # fmt: skip
                event, fields = file_event(self.journal, outcome.state, job.id, outcome.final_path)
                self.notifier.notify(event, **fields)
            if st.paused is not None:
                self.unpause("a file went through")

    def defer(self, key: Key, inbox: InboxSettings, exc: TransientError, ds: DashScopeSettings) -> None:
        st = self.state
        relpath = key[1]
        job = self.journal.active_job(str(inbox.path), relpath)
        # errors before a job row exists (a share lock on open, a read error while hashing) are
        # counted here, so their backoff grows like any other
        step = after_failure(
            RetryPolicy(base_s=ds.retry_base_s, cap_s=ds.retry_max_s),
            failures_so_far(job.attempts if job else 0, st.failures.get(key, 0)),
            jitter=random.random(), retry_after_s=exc.retry_after_s,
        )  # fmt: skip
        st.failures[key] = step.failures
        st.not_before[key] = self.clock.monotonic() + step.delay_s
        st.waiting[key] = ("retry", self.clock.time() + step.delay_s)
        if job is not None:
            self.journal.defer(job.id, until=self.clock.time() + step.delay_s, error=exc.message)
        st.stats["retried"] += 1
        if self.metrics is not None:
            self.metrics.deferred(exc)
        log.warning("job_deferred", inbox=str(inbox.path), relpath=relpath, error=exc.message,
                    remote_code=exc.remote_code, request_id=exc.request_id, attempt=step.failures,
                    retry_in_s=round(step.delay_s, 1))  # fmt: skip

    def abandon(self, inbox: InboxSettings, relpath: str) -> None:
        job = self.journal.active_job(str(inbox.path), relpath)
        if job is not None:
            self.journal.abandon(job.id, "source disappeared during processing")
        log.warning("source_gone", inbox=str(inbox.path), relpath=relpath)

    # holds on the whole queue ---------------------------------------------------------------------

    def pause(self, exc: AccountError, pause_probe_s: float) -> None:
        st = self.state
        info = {"code": exc.remote_code, "message": exc.message, "since": self.clock.time()}
        if st.paused is None or st.paused.get("code") != exc.remote_code:
            self.journal.set_meta("paused", json.dumps(info))
        st.paused = info
        st.pause_probe_at = self.clock.monotonic() + pause_probe_s
        self.notifier.notify(
            "queue_paused", code=exc.remote_code, reason=exc.message, request_id=exc.request_id,
            hint="every file stays in its inbox; fix the key or account, then reload with SIGHUP",
        )  # fmt: skip

    def unpause(self, why: str) -> None:
        self.state.paused = None
        self.journal.set_meta("paused", None)
        self.notifier.notify("queue_resumed", reason=why)

    def state_is_full(self, exc: StateFullError, state_path: str) -> None:
        st = self.state
        now = self.clock.monotonic()
        if st.state_full is None:
            st.state_probe_at = now + FULL_PROBE_S
        st.state_full = exc.message
        if st.say_once_a_minute("state_full", now):
            self.notifier.notify(
                "state_full", reason=exc.message, path=state_path,
                action="nothing is taken until there is room; files stay where they are",
            )  # fmt: skip

    def state_space_back(self, now: float, state_path: str) -> bool:
        """While the journal's disk is full, try a write every FULL_PROBE_S; True once one commits."""
        st = self.state
        if now < st.state_probe_at:
            return False
        st.state_probe_at = now + FULL_PROBE_S
        if not self.journal.writable():
            if st.say_once_a_minute("state_full", now):
                self.notifier.notify("state_full", reason=st.state_full, path=state_path,
                                     action="nothing is taken until there is room")  # fmt: skip
            return False
        st.state_full = None
        st.said_at.pop("state_full", None)
        self.notifier.notify("state_space_back", path=state_path, action="resuming")
        return True

    def output_is_full(self, key: Key, inbox: InboxSettings, exc: OutputFullError) -> None:
        st = self.state
        now = self.clock.monotonic()
        wait_s = output_probe_s(inbox.rescan_s)
        st.output_full[key[0]] = {"message": exc.message, "folder": exc.folder, "probe_at": now + wait_s}
        st.not_before[key] = now + wait_s
        st.waiting[key] = ("output_full", self.clock.time() + wait_s)
        if st.say_once_a_minute(f"output_full:{exc.folder}", now):
            self.notifier.notify("output_full", inbox=str(inbox.path), folder=exc.folder, reason=exc.message,
                                 action="files wait in the inbox; one is tried per rescan")  # fmt: skip
