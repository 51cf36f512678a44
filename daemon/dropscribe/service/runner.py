"""The service loop: scan inboxes, hand settled files to workers, retry, pause, reload, stop cleanly.

One thread owns all scheduling decisions; workers only run ``Pipeline.take`` and report back. Signals
set flags that the loop reads, so no decision is ever made inside a signal handler.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import random
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from dropscribe.adapters import files, systemd, writers
from dropscribe.adapters.dashscope import DashScopeClient
from dropscribe.adapters.journal import Journal
from dropscribe.adapters.metrics import MetricsServer, Snapshot
from dropscribe.adapters.statusfile import StatusFile
from dropscribe.adapters.storage import Storage, make_storage
from dropscribe.adapters.watcher import Watcher, wants_events
from dropscribe.config.load import load_settings, resolve_api_key
from dropscribe.config.model import EffectiveRules, InboxSettings, Settings
from dropscribe.config.rulefiles import RuleCache, RuleFileEvent, RulesHeld
from dropscribe.core.errors import (
    AccountError,
    ConfigError,
    InputRejectedError,
    OutputFullError,
    ShareUnavailableError,
    StateFullError,
    TransientError,
)
from dropscribe.core.gate import Fingerprint
from dropscribe.core.retry import backoff_s
from dropscribe.logs import configure, get_logger, register_secret
from dropscribe.service.pipeline import (
    BusyError,
    ChangedError,
    ContentLocks,
    GoneError,
    IncompleteError,
    Outcome,
    ParkedError,
    Pipeline,
)
from dropscribe.service.reopen import FinishedFiles
from dropscribe.service.scanner import InboxScanner

log = get_logger()
TICK_S = 0.25
FULL_PROBE_S = 5.0  # a full journal disk is tried again this often
STATUS_EVERY_S = 0.5  # the status line and report; work itself is never held back by it
POLL_S = 3.0  # a polled inbox's folders are stat-ed this often to notice new names
OUTPUT_PROBE_MAX_S = 60.0  # a full done/ or failed/ gets one file per rescan, at most a minute apart


Key = tuple[str, str]  # (inbox path, relpath): an inbox is known by its path, never its list position


@dataclass
class _Running:
    """A file in a worker's hands, with everything it was started with (a reload may change the rest)."""

    future: Future[Outcome]
    inbox: InboxSettings
    pipeline: Pipeline
    generation: int


def build_client(settings: Settings, env: dict[str, str]) -> DashScopeClient:
    key = resolve_api_key(settings.dashscope, env)
    register_secret(key)
    ds = settings.dashscope
    return DashScopeClient(
        ds.base_url, key, timeout_s=ds.timeout_s, requests_per_minute=ds.requests_per_minute,
        concurrency=ds.concurrency,
    )  # fmt: skip


def _output_probe_s(inbox: InboxSettings) -> float:
    return max(1.0, min(OUTPUT_PROBE_MAX_S, inbox.rescan_s))


def _log_rule_event(event: RuleFileEvent) -> None:
    if event.status == "invalid":
        log.error("rules_invalid", rule_file=str(event.rule_file), errors=list(event.messages),
                  action="files below it wait until the rule file is fixed")  # fmt: skip
    else:
        log.info(f"rules_{event.status}", rule_file=str(event.rule_file))


class Service:
    def __init__(self, config_path: Path, env: dict[str, str]) -> None:
        self.config_path = config_path
        self.env = env
        self.settings = load_settings(config_path, env)
        configure(self.settings.logging.format, self.settings.logging.level)
        self.client = build_client(self.settings, env)
        self.storage: Storage = make_storage(self.settings.storage, self.client)
        self.journal = Journal(self.settings.state.path)
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.reload_requested = False
        self.stop_requested = False
        # one per process, not per pipeline: the same bytes must be recognized once across reloads too
        self.content_locks = ContentLocks()
        self.pipeline = self._make_pipeline()
        self.scanners = self._make_scanners()
        self.workers = ThreadPoolExecutor(self.settings.dashscope.concurrency, thread_name_prefix="job")
        self.in_flight: dict[Key, _Running] = {}
        # bumped on every reload: an account error from work started with the old config says
        # nothing about the new one and must not pause the queue again
        self.generation = 0
        self.not_before: dict[Key, float] = {}
        self.waiting: dict[Key, tuple[str, float | None]] = {}  # why a known file is not taken yet
        self.failures: dict[Key, int] = {}
        self.incomplete_at: dict[Key, Fingerprint] = {}  # what an unfinished-looking file was
        self.next_scan: dict[str, float] = {}
        self.next_poll: dict[str, float] = {}
        self.finished_check_at: dict[str, float] = {}
        self.finished = FinishedFiles()
        self.paused: dict[str, Any] | None = None
        self.pause_probe_at = 0.0
        self.watcher = Watcher()
        self.watched: list[tuple[Path, bool]] = []
        self.last_status = ""
        self.last_snapshot = ""
        self.last_report_at = 0.0
        self.stats = {"done": 0, "failed": 0, "retried": 0}
        self.inbox_state: dict[str, dict[str, Any]] = {}
        self.metrics: MetricsServer | None = None
        self._retired: list[tuple[Pipeline, DashScopeClient, Storage]] = []
        self.status_file = StatusFile(self.settings.state.path)
        # the journal's disk is full: nothing is taken until a write commits again
        self.state_full: str | None = None
        self.state_probe_at = 0.0
        self.recovered = False
        # done/ or failed/ of an inbox is full: one file is tried per OUTPUT_PROBE_S until one fits
        self.output_full: dict[str, dict[str, Any]] = {}
        self._said_at: dict[str, float] = {}

    def _make_pipeline(self) -> Pipeline:
        return Pipeline(
            journal=self.journal, client=self.client, storage=self.storage,
            staging_dir=self.settings.state.staging_dir, concurrency=self.settings.dashscope.concurrency,
            stopping=self.stopping, content_locks=self.content_locks,
        )  # fmt: skip

    def _make_scanners(self, previous: dict[str, InboxScanner] | None = None) -> dict[str, InboxScanner]:
        scanners: dict[str, InboxScanner] = {}
        for inbox in self.settings.inboxes:
            rules = RuleCache.for_inbox(self.settings, inbox, on_change=_log_rule_event)
            scanner = InboxScanner(inbox, rules)
            old = (previous or {}).get(str(inbox.path))
            if old is not None:  # what was seen settling before the reload keeps its clock
                scanner.observations = old.observations
            scanners[str(inbox.path)] = scanner
        return scanners

    # signals ------------------------------------------------------------------------------------

    # A handler runs in the main thread between two bytecodes, possibly while that thread holds the
    # lock inside ``wake.wait()``/``wake.clear()``; setting an Event from here could deadlock on it
    # (it did, once in a few thousand SIGHUPs). So handlers only set plain flags; the loop looks at
    # them at least every TICK_S.

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stop_requested = True

    def _on_reload(self, signum: int, _frame: FrameType | None) -> None:
        self.reload_requested = True

    def _event(self, inbox: str, path: str, is_directory: bool) -> None:
        """From the watcher's thread: the scanner looks at that path in the loop's next turn."""
        scanner = self.scanners.get(inbox)
        if scanner is not None:
            scanner.note_event(path, is_directory)
            self.wake.set()

    # the loop -----------------------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        writers.ignore_lease_breaks()
        try:
            self._recover()
        except StateFullError as exc:
            self._state_is_full(exc)
        self._restart_watcher()
        if self.settings.metrics.listen:
            self.metrics = MetricsServer(self.settings.metrics.listen, self.snapshot)
            self.metrics.start()
        log.info("service_started", inboxes=[str(i.path) for i in self.settings.inboxes],
                 model=self.settings.dashscope.model, storage=self.settings.storage.type)  # fmt: skip
        watchdog_s = systemd.watchdog_interval_s()
        last_ping = 0.0
        last_report = 0.0
        first = True
        while not self.stopping.is_set():
            if self.stop_requested:
                self.stopping.set()  # from here on nothing new is sent (the pipeline checks it)
                break
            now = time.monotonic()
            if self.reload_requested:
                self._reload()
            self._collect()
            if self.state_full is not None:
                self._probe_state(now)
            if self.state_full is None:
                self._scan_due(now)
            if first:
                systemd.notify("READY=1")
                first = False
            if now - last_report >= STATUS_EVERY_S or self.stopping.is_set():
                self._publish_status()
                last_report = now
            if watchdog_s is not None and now - last_ping >= watchdog_s:
                systemd.notify("WATCHDOG=1")  # from the loop itself, so a stuck loop stops the pings
                last_ping = now
            self.wake.wait(TICK_S)
            self.wake.clear()
        return self._shutdown()

    def _shutdown(self) -> int:
        systemd.notify("STOPPING=1")
        grace_s = self.settings.dashscope.stop_grace_s
        log.info("service_stopping", in_flight=len(self.in_flight), grace_s=grace_s)
        self.watcher.stop()
        if self.metrics is not None:
            self.metrics.stop()
        # nothing new is sent from now on (the pipeline checks ``stopping`` right before each request);
        # requests already on the wire are paid for, so their answers are waited for and journaled
        deadline = time.monotonic() + grace_s
        while self.in_flight and time.monotonic() < deadline:
            self._collect()
            time.sleep(0.05)
        if self.in_flight:
            # beyond the grace: leave now; every job is journaled step by step, so this exit is as safe
            # as a crash, and only the requests still unanswered can be paid again after a restart
            parked = [relpath for _inbox, relpath in self.in_flight]
            log.warning("service_parked", in_flight=len(parked), relpaths=parked,
                        reason=f"requests still unanswered after stop_grace_s={grace_s:g}")  # fmt: skip
            systemd.notify("STATUS=stopped, in-flight work parked in the journal")
            os._exit(0)
        self.workers.shutdown(wait=True, cancel_futures=True)
        self._collect()
        for pipeline, client, storage in [*self._retired, (self.pipeline, self.client, self.storage)]:
            pipeline.close()
            client.close()
            storage.close()
        self.journal.close()
        self.status_file.close()
        log.info("service_stopped")
        return 0

    def _restart_watcher(self) -> None:
        """Watch the inboxes that want events; done again after a reload only if that set changed."""
        wanted = [
            (inbox.path, inbox.recursive)
            for inbox in self.settings.inboxes
            if inbox.path.is_dir() and wants_events(inbox.path, inbox.polling)
        ]
        if wanted == self.watched and self.watched:
            return
        self.watcher.stop()
        self.watched = wanted
        self.watcher.start(
            [(path, recursive, functools.partial(self._event, str(path))) for path, recursive in wanted]
        )

    def _recover(self) -> None:
        """Finish what a crash interrupted after the outcome was decided; the rest is found by scanning."""
        by_path = {str(inbox.path): inbox for inbox in self.settings.inboxes}
        jobs = self.journal.jobs_in("working", "finishing")
        paused = self.journal.get_meta("paused")
        self.recovered = True
        for job in jobs:
            inbox = by_path.get(job.inbox)
            if inbox is None:
                continue
            key = (job.inbox, job.relpath)
            if job.next_attempt_at > time.time():
                self.not_before[key] = time.monotonic() + job.next_attempt_at - time.time()
                self.waiting[key] = ("retry", job.next_attempt_at)
            if job.state == "finishing":
                # temp files of a crash mid-write; removed now, before any worker writes beside them
                files.remove_stale_temps(Pipeline.target_dir(job.relpath, job.outcome or "done", inbox))
                self._submit(inbox, job.relpath)
        if paused:
            self.paused = json.loads(paused)
            log.error("queue_paused", reason=self.paused.get("message"), code=self.paused.get("code"),
                      hint="fix the account or key, then reload (SIGHUP) or restart")  # fmt: skip

    def _scan_due(self, now: float) -> None:
        """A full walk of each inbox every ``rescan_s``; in between, incremental looks; then dispatch."""
        for inbox in self.settings.inboxes:
            name = str(inbox.path)
            scanner = self.scanners[name]
            busy = {relpath for (i, relpath) in self.in_flight if i == name}
            if now >= self.next_scan.get(name, 0.0) or scanner.full_scan_wanted:
                self._full_scan(inbox, scanner, now, busy)
            elif self.inbox_state.get(name, {}).get("available", False):
                poll = inbox.path not in {path for path, _recursive in self.watched}
                poll = poll and now >= self.next_poll.get(name, 0.0)
                if poll:
                    self.next_poll[name] = now + min(POLL_S, inbox.rescan_s)
                scanner.refresh(now, busy, poll=poll)
                self._watch_finished(inbox, now)
            state = self.inbox_state.get(name)
            if state is not None:
                state.update(settling=len(scanner.settling), held=len(scanner.held),
                             ready=len(scanner.candidates))  # fmt: skip
        self._dispatch(now)

    def _full_scan(self, inbox: InboxSettings, scanner: InboxScanner, now: float, busy: set[str]) -> None:
        name = str(inbox.path)
        result = scanner.scan(now, busy)
        self.inbox_state[name] = {
            "available": result.available, "problem": result.problem, "settling": result.settling,
            "held": len(result.held), "ready": len(result.ready),
        }  # fmt: skip
        if not result.available:
            log.warning("inbox_unavailable", inbox=name, problem=result.problem)
            self.next_scan[name] = now + min(inbox.rescan_s, 30.0)
            return
        self.next_scan[name] = now + inbox.rescan_s
        known = scanner.observations
        for table in (self.waiting, self.not_before, self.failures, self.incomplete_at):
            for key in [k for k in table if k[0] == name and k[1] not in known and k not in self.in_flight]:
                del table[key]  # left the inbox by other hands: nothing to wait for any more
        self._watch_finished(inbox, now)

    def _dispatch(self, now: float) -> None:
        """Work-conserving: every free slot takes the next known candidate at once, inboxes in turn."""
        capacity = 2 * self.settings.dashscope.concurrency
        if len(self.in_flight) >= capacity or self.state_full is not None:
            return
        if not any(scanner.candidates for scanner in self.scanners.values()):
            return
        if self.paused is not None and not self._probe_due(now):
            return
        probe = self.paused is not None
        queues = []
        for inbox in self.settings.inboxes:
            name = str(inbox.path)
            scanner = self.scanners[name]
            if not scanner.candidates:
                continue
            blocked = self.output_full.get(name)
            trying = any(i == name for i, _ in self.in_flight)
            if blocked is not None and (now < blocked["probe_at"] or trying):
                continue
            # the head of the queue is enough: at most the free slots plus the files held back by a wait
            head = itertools.islice(scanner.candidates, capacity + len(self.not_before) + len(self.in_flight))
            queues.append((inbox, scanner, iter(list(head))))
        while queues and len(self.in_flight) < capacity:
            for entry in list(queues):
                inbox, scanner, pending = entry
                name = str(inbox.path)
                started = False
                for relpath in pending:
                    key = (name, relpath)
                    if key in self.incomplete_at:
                        observed = scanner.observations.get(relpath)
                        if observed is None or observed.fingerprint != self.incomplete_at[key]:
                            del self.incomplete_at[key]
                            self.not_before.pop(key, None)
                    if key in self.in_flight or self.not_before.get(key, 0.0) > now:
                        continue
                    if not scanner.recheck(relpath, now, set()):
                        continue  # changed or gone since it was seen settled: the gate has it again
                    rules = scanner.candidates.pop(relpath)
                    self._submit(inbox, relpath, rules, probe=probe)
                    started = True
                    break
                if not started:
                    queues.remove(entry)
                    continue
                blocked = self.output_full.get(name)
                if blocked is not None:  # one file per probe interval while done/ is full
                    blocked["probe_at"] = now + _output_probe_s(inbox)
                    queues.remove(entry)
                if probe or len(self.in_flight) >= capacity:
                    return

    def _watch_finished(self, inbox: InboxSettings, now: float) -> None:
        """Recently finished files whose writer went on writing go back through the gate."""
        name = str(inbox.path)
        if name not in self.finished_check_at:  # first look since the start or a reload
            self.finished.load(self.journal, inbox, time.time())
        elif now < self.finished_check_at[name]:
            return
        self.finished_check_at[name] = now + max(2.0, min(inbox.rescan_s, 10.0))
        try:
            reopened = self.finished.check(self.journal, inbox, time.time())
        except StateFullError as exc:
            self._state_is_full(exc)
            return
        except OSError as exc:
            log.warning("finished_check_failed", inbox=name, error=exc.strerror or str(exc))
            return
        for item in reopened:
            log.warning("finished_file_changed", inbox=name, job_id=item.job_id, was=str(item.finished),
                        back_in=str(item.back_in),
                        action="sidecars removed; processed again once it settles")  # fmt: skip
        if reopened:
            self.next_scan[name] = 0.0

    def _probe_due(self, now: float) -> bool:
        """While paused, one file is tried every ``pause_probe_s`` to see whether the account is back."""
        if now < self.pause_probe_at or self.in_flight:
            return False
        self.pause_probe_at = now + self.settings.dashscope.pause_probe_s
        return True

    def _submit(
        self, inbox: InboxSettings, relpath: str, rules: EffectiveRules | None = None, *, probe: bool = False
    ) -> None:
        key = (str(inbox.path), relpath)
        if key in self.in_flight:
            return
        scanner = self.scanners[key[0]]
        # rules are looked up here, on the loop's thread: the rule cache is not shared with workers
        found = rules if rules is not None else scanner.rules.rules_for(Path(relpath).parent)
        if isinstance(found, RulesHeld):
            self.waiting[key] = ("held", None)
            return
        observed = scanner.observations.get(relpath)
        # when the service saw the file change last, on its own clock (the share's clock may differ)
        changed_at = observed.since if observed is not None else time.monotonic()
        future = self.workers.submit(self._work, inbox, found, self.pipeline, relpath, probe, changed_at)
        future.add_done_callback(lambda _future: self.wake.set())
        self.in_flight[key] = _Running(future, inbox, self.pipeline, self.generation)
        self.waiting.pop(key, None)
        scanner.candidates.pop(relpath, None)

    def _work(
        self, inbox: InboxSettings, rules: EffectiveRules, pipeline: Pipeline, relpath: str, probe: bool,
        changed_at: float,
    ) -> Outcome:  # fmt: skip
        if self.paused is not None and not probe:
            return Outcome("skipped")  # queued before the pause began: leave it in its inbox
        return pipeline.take(inbox, relpath, rules, changed_at=changed_at)

    def _collect(self) -> None:
        for key, running in list(self.in_flight.items()):
            if not running.future.done():
                continue
            del self.in_flight[key]
            try:
                self._settle(key, running)
            except StateFullError as exc:  # recording the outcome itself needed the full disk
                self._state_is_full(exc)
            scanner = self.scanners.get(key[0])
            if scanner is not None:  # still in the inbox (not finished, or a new file): judged again
                scanner.recheck(key[1], time.monotonic(), set())
        self._close_retired()

    def _settle(self, key: Key, running: _Running) -> None:
        """Carry out what the end of one take means for the file and the queue."""
        inbox, relpath = running.inbox, key[1]
        try:
            outcome = running.future.result()
        except ParkedError:
            return
        except IncompleteError as exc:
            self.not_before[key] = time.monotonic() + exc.wait_s
            self.waiting[key] = ("incomplete", time.time() + exc.wait_s)
            scanner = self.scanners.get(key[0])
            observed = scanner.observations.get(relpath) if scanner is not None else None
            if observed is not None:  # the wait ends early if the file changes (its writer is back)
                self.incomplete_at[key] = observed.fingerprint
            return
        except BusyError as exc:
            self.not_before[key] = time.monotonic() + exc.wait_s
            self.waiting[key] = ("open_for_writing", time.time() + exc.wait_s)
            return
        except ChangedError:
            log.info("source_changed", inbox=str(inbox.path), relpath=relpath,
                     action="waiting for it to settle again")  # fmt: skip
            return
        except GoneError:
            scanner = self.scanners.get(key[0])
            problem = scanner.available() if scanner is not None else None
            if problem is None:
                self._abandon(inbox, relpath)
            else:  # the share went away, not the file: keep the job, it resumes when the share returns
                self._defer(key, inbox, ShareUnavailableError(problem))
            return
        except AccountError as exc:
            if running.generation == self.generation:
                self._pause(exc)
            return
        except StateFullError as exc:
            self._state_is_full(exc)
            return
        except OutputFullError as exc:
            self._output_is_full(key, inbox, exc)
            return
        except TransientError as exc:
            self._defer(key, inbox, exc)
            return
        except InputRejectedError as exc:  # a rejection that escaped the pipeline's own handling
            log.error("job_error", relpath=relpath, code=exc.code, error=exc.message)
            return
        except Exception as exc:
            log.exception("job_crashed", inbox=str(inbox.path), relpath=relpath, error=repr(exc))
            self._defer(key, inbox, TransientError(repr(exc)))
            return
        self.not_before.pop(key, None)
        self.failures.pop(key, None)
        self.incomplete_at.pop(key, None)
        if outcome.state in ("done", "failed") and self.output_full.pop(key[0], None) is not None:
            log.info("output_space_back", inbox=key[0], action="taking files again")
        if outcome.state in ("done", "failed"):
            self.stats[outcome.state] += 1
            if outcome.job_id is not None and outcome.final_path is not None:
                self.finished.add(inbox, outcome.job_id, relpath, outcome.final_path, time.time())
            if self.paused is not None:
                self._unpause("a file went through")

    def _close_retired(self) -> None:
        """A pipeline replaced by a reload is closed once the last file it took is finished."""
        if not self._retired:
            return
        in_use = {id(running.pipeline) for running in self.in_flight.values()}
        keep = []
        for pipeline, client, storage in self._retired:
            if id(pipeline) in in_use:
                keep.append((pipeline, client, storage))
                continue
            pipeline.close()
            if client is not self.client:
                client.close()
            if storage is not self.storage:
                storage.close()
        self._retired = keep

    def _say_once_a_minute(self, topic: str, now: float) -> bool:
        """A condition that lasts is logged once a minute, not once per file or per tick."""
        if now - self._said_at.get(topic, -1e9) < 60.0:
            return False
        self._said_at[topic] = now
        return True

    def _state_is_full(self, exc: StateFullError) -> None:
        now = time.monotonic()
        if self.state_full is None:
            self.state_probe_at = now + FULL_PROBE_S
        self.state_full = exc.message
        if self._say_once_a_minute("state_full", now):
            log.error("state_full", reason=exc.message, path=str(self.settings.state.path),
                      action="nothing is taken until there is room; files stay where they are")  # fmt: skip

    def _probe_state(self, now: float) -> None:
        if now < self.state_probe_at:
            return
        self.state_probe_at = now + FULL_PROBE_S
        if not self.journal.writable():
            if self._say_once_a_minute("state_full", now):
                log.error("state_full", reason=self.state_full, path=str(self.settings.state.path),
                          action="nothing is taken until there is room")  # fmt: skip
            return
        self.state_full = None
        self._said_at.pop("state_full", None)
        log.info("state_space_back", path=str(self.settings.state.path), action="resuming")
        if not self.recovered:
            try:
                self._recover()
            except StateFullError as exc:
                self._state_is_full(exc)

    def _output_is_full(self, key: Key, inbox: InboxSettings, exc: OutputFullError) -> None:
        now = time.monotonic()
        wait_s = _output_probe_s(inbox)
        self.output_full[key[0]] = {"message": exc.message, "folder": exc.folder, "probe_at": now + wait_s}
        self.not_before[key] = now + wait_s
        self.waiting[key] = ("output_full", time.time() + wait_s)
        if self._say_once_a_minute(f"output_full:{exc.folder}", now):
            log.error("output_full", inbox=str(inbox.path), folder=exc.folder, reason=exc.message,
                      action="files wait in the inbox; one is tried per rescan")  # fmt: skip

    def _abandon(self, inbox: InboxSettings, relpath: str) -> None:
        job = self.journal.active_job(str(inbox.path), relpath)
        if job is not None:
            self.journal.abandon(job.id, "source disappeared during processing")
        log.warning("source_gone", inbox=str(inbox.path), relpath=relpath)

    def _defer(self, key: Key, inbox: InboxSettings, exc: TransientError) -> None:
        relpath = key[1]
        job = self.journal.active_job(str(inbox.path), relpath)
        # errors before a job row exists (a share lock on open, a read error while hashing) are
        # counted here, so their backoff grows like any other
        attempts = max(job.attempts if job else 0, self.failures.get(key, 0)) + 1
        self.failures[key] = attempts
        ds = self.settings.dashscope
        delay = backoff_s(attempts, base_s=ds.retry_base_s, cap_s=ds.retry_max_s, jitter=random.random(),
                          retry_after_s=exc.retry_after_s)  # fmt: skip
        self.not_before[key] = time.monotonic() + delay
        self.waiting[key] = ("retry", time.time() + delay)
        if job is not None:
            self.journal.defer(job.id, until=time.time() + delay, error=exc.message)
        self.stats["retried"] += 1
        log.warning("job_deferred", inbox=str(inbox.path), relpath=relpath, error=exc.message,
                    remote_code=exc.remote_code, request_id=exc.request_id, attempt=attempts,
                    retry_in_s=round(delay, 1))  # fmt: skip

    def _pause(self, exc: AccountError) -> None:
        info = {"code": exc.remote_code, "message": exc.message, "since": time.time()}
        if self.paused is None or self.paused.get("code") != exc.remote_code:
            self.journal.set_meta("paused", json.dumps(info))
        self.paused = info
        self.pause_probe_at = time.monotonic() + self.settings.dashscope.pause_probe_s
        log.error(
            "queue_paused", code=exc.remote_code, reason=exc.message, request_id=exc.request_id,
            hint="every file stays in its inbox; fix the key or account, then reload with SIGHUP",
        )  # fmt: skip

    def _unpause(self, why: str) -> None:
        self.paused = None
        self.journal.set_meta("paused", None)
        log.info("queue_resumed", reason=why)

    def _reload(self) -> None:
        self.reload_requested = False
        systemd.reloading()
        try:
            settings = load_settings(self.config_path, self.env)
            client = build_client(settings, self.env)
        except ConfigError as exc:
            log.error("reload_failed", errors=exc.messages, action="keeping the previous config")
            systemd.notify("READY=1")
            return
        # files in flight finish with the pipeline, client and inbox settings they started with;
        # those are closed as soon as the last of them is done
        self._retired.append((self.pipeline, self.client, self.storage))
        self.settings = settings
        self.generation += 1
        configure(settings.logging.format, settings.logging.level)
        self.client = client
        self.storage = make_storage(settings.storage, client)
        self.pipeline = self._make_pipeline()
        self.scanners = self._make_scanners(self.scanners)
        self.next_scan = {}
        live = set(self.scanners)
        self.finished = FinishedFiles()  # loaded again per inbox by its next look
        self.finished_check_at = {}
        for table in (self.not_before, self.waiting, self.failures, self.incomplete_at):
            for key in [k for k in table if k[0] not in live]:
                del table[key]
        self.inbox_state = {k: v for k, v in self.inbox_state.items() if k in live}
        self._close_retired()
        self._restart_watcher()
        if self.paused is not None:
            try:
                self._unpause("config reloaded")
            except StateFullError as exc:
                self._state_is_full(exc)
        log.info("config_reloaded", inboxes=[str(i.path) for i in settings.inboxes])
        systemd.notify("READY=1")

    def snapshot(self) -> Snapshot:
        """What /metrics and /healthz report; read from another thread, so only copies are taken."""
        states = dict(self.inbox_state)
        problems = []
        if self.paused is not None:
            problems.append(f"paused: {self.paused.get('code')}: {self.paused.get('message')}")
        if self.state_full is not None:
            problems.append(f"paused: state disk full: {self.state_full}")
        for blocked in list(self.output_full.values()):
            problems.append(f"output full: {blocked['message']}")
        for name, state in states.items():
            if not state["available"]:
                problems.append(f"inbox {name}: {state['problem']}")
        by_inbox = {f'inbox="{name}"': s for name, s in states.items()}
        return Snapshot(
            gauges={
                "dropscribe_files_done": ("Files finished since start.", self.stats["done"]),
                "dropscribe_files_failed": ("Files rejected since start.", self.stats["failed"]),
                "dropscribe_retries": ("Transient-error deferrals since start.", self.stats["retried"]),
                "dropscribe_in_flight": ("Files being processed now.", len(self.in_flight)),
                "dropscribe_paused": ("1 while an account problem or a full journal disk pauses the queue.",
                                      1 if self.paused is not None or self.state_full else 0),
            },
            labelled={
                "dropscribe_inbox_up": ("1 when the inbox can be scanned.",
                                        {k: 1 if s["available"] else 0 for k, s in by_inbox.items()}),
                "dropscribe_inbox_settling": ("Files waiting for their settle time.",
                                              {k: s["settling"] for k, s in by_inbox.items()}),
                "dropscribe_inbox_held": ("Rule files holding their folder.",
                                          {k: s["held"] for k, s in by_inbox.items()}),
            },
            problems=tuple(problems),
        )  # fmt: skip

    def _waiting_report(self, limit: int = 200) -> list[dict[str, Any]]:
        """Why known files are not being processed, at most ``limit`` of them (cheap on a big backlog)."""
        rows: list[dict[str, Any]] = []

        def add(inbox: str, relpath: str, reason: str, until: float | None) -> bool:
            rows.append({"inbox": inbox, "relpath": relpath, "reason": reason,
                         "until": round(until, 1) if until is not None else None})  # fmt: skip
            return len(rows) >= limit

        paused = "paused" if self.paused is not None or self.state_full is not None else None
        for name, scanner in self.scanners.items():
            for relpath in scanner.candidates:
                reason, until = self.waiting.get((name, relpath), (paused or "queued", None))
                if self.output_full.get(name) is not None and reason == "queued":
                    reason = "output_full"
                if add(name, relpath, reason, until):
                    return rows
            for relpath in scanner.settling:
                if add(name, relpath, "settling", None):
                    return rows
            for relpath in sorted(scanner.held_paths):
                if add(name, relpath, "held", None):
                    return rows
        return rows

    def _publish_status(self) -> None:
        if self.state_full is not None:
            text = f"PAUSED (state disk full): {self.state_full}"
        elif self.paused is not None:
            text = f"PAUSED ({self.paused.get('code')}): {self.paused.get('message')}"
        else:
            text = (f"{len(self.in_flight)} in flight, {self.stats['done']} done, "
                    f"{self.stats['failed']} failed, {self.stats['retried']} retries")  # fmt: skip
            if self.output_full:
                text += "; output full: " + "; ".join(b["message"] for b in self.output_full.values())
        inboxes = {
            name: {
                "available": s["available"], "problem": s["problem"],
                "waiting": s["settling"] + s["ready"], "held_rule_files": s["held"],
                "output_full": (self.output_full.get(name) or {}).get("message"),
            }
            for name, s in sorted(self.inbox_state.items())
        }  # fmt: skip
        report = {"text": text, "in_flight": len(self.in_flight), "inboxes": inboxes,
                  "state_full": self.state_full, "waiting": self._waiting_report()}  # fmt: skip
        snapshot = json.dumps(report)
        if text != self.last_status:
            systemd.notify(f"STATUS={text}")
            self.last_status = text
        now = time.time()
        # for `dropscribe status`: when something changed, and at least every 10 s so its age means "alive"
        due = snapshot != self.last_snapshot or now - self.last_report_at >= 10.0
        if due and self.status_file.write({**report, "at": now, "pid": os.getpid()}):
            self.last_snapshot = snapshot
            self.last_report_at = now
