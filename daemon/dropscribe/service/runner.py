"""The service loop: scan inboxes, hand settled files to workers, retry, pause, reload, stop cleanly.

One thread owns all scheduling decisions; workers only run ``Pipeline.take`` and report back. Signals
set flags that the loop reads, so no decision is ever made inside a signal handler.
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from dropscribe.adapters import files, systemd
from dropscribe.adapters.dashscope import DashScopeClient
from dropscribe.adapters.journal import Journal
from dropscribe.adapters.metrics import MetricsServer, Snapshot
from dropscribe.adapters.storage import Storage, make_storage
from dropscribe.adapters.watcher import Watcher, wants_events
from dropscribe.config.load import load_settings, resolve_api_key
from dropscribe.config.model import InboxSettings, Settings
from dropscribe.config.rulefiles import RuleCache, RuleFileEvent, RulesHeld
from dropscribe.core.errors import (
    AccountError,
    ConfigError,
    InputRejectedError,
    ShareUnavailableError,
    TransientError,
)
from dropscribe.core.retry import backoff_s
from dropscribe.logs import configure, get_logger, register_secret
from dropscribe.service.pipeline import (
    ChangedError,
    GoneError,
    IncompleteError,
    Outcome,
    ParkedError,
    Pipeline,
)
from dropscribe.service.scanner import InboxScanner

log = get_logger()
TICK_S = 0.25
DRAIN_S = 10.0  # well inside systemd's TimeoutStopSec


@dataclass
class _Work:
    inbox_index: int
    relpath: str


def build_client(settings: Settings, env: dict[str, str]) -> DashScopeClient:
    key = resolve_api_key(settings.dashscope, env)
    register_secret(key)
    ds = settings.dashscope
    return DashScopeClient(
        ds.base_url, key, timeout_s=ds.timeout_s, requests_per_minute=ds.requests_per_minute,
        concurrency=ds.concurrency,
    )  # fmt: skip


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
        self.pipeline = self._make_pipeline()
        self.scanners = self._make_scanners()
        self.workers = ThreadPoolExecutor(self.settings.dashscope.concurrency, thread_name_prefix="job")
        self.in_flight: dict[tuple[int, str], Future[Outcome]] = {}
        # bumped on every reload: an account error from work started with the old config says
        # nothing about the new one and must not pause the queue again
        self.generation = 0
        self.started_in: dict[tuple[int, str], int] = {}
        self.not_before: dict[tuple[int, str], float] = {}
        self.failures: dict[tuple[int, str], int] = {}
        self.next_scan: list[float] = [0.0] * len(self.scanners)
        self.paused: dict[str, Any] | None = None
        self.pause_probe_at = 0.0
        self.watcher = Watcher()
        self.last_status = ""
        self.last_snapshot = ""
        self.stats = {"done": 0, "failed": 0, "retried": 0}
        self.inbox_state: dict[int, dict[str, Any]] = {}
        self.metrics: MetricsServer | None = None
        self._retired: list[tuple[Pipeline, DashScopeClient, Storage]] = []

    def _make_pipeline(self) -> Pipeline:
        return Pipeline(
            journal=self.journal, client=self.client, storage=self.storage,
            staging_dir=self.settings.state.staging_dir, concurrency=self.settings.dashscope.concurrency,
            stopping=self.stopping,
        )  # fmt: skip

    def _make_scanners(self) -> list[InboxScanner]:
        return [
            InboxScanner(inbox, RuleCache.for_inbox(self.settings, inbox, on_change=_log_rule_event))
            for inbox in self.settings.inboxes
        ]

    # signals ------------------------------------------------------------------------------------

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping.set()
        self.wake.set()

    def _on_reload(self, signum: int, _frame: FrameType | None) -> None:
        self.reload_requested = True
        self.wake.set()

    def _hint(self, index: int) -> None:
        self.next_scan[index] = 0.0
        self.wake.set()

    # the loop -----------------------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)
        self._recover()
        self._start_watcher()
        if self.settings.metrics.listen:
            self.metrics = MetricsServer(self.settings.metrics.listen, self.snapshot)
            self.metrics.start()
        log.info("service_started", inboxes=[str(i.path) for i in self.settings.inboxes],
                 model=self.settings.dashscope.model, storage=self.settings.storage.type)  # fmt: skip
        watchdog_s = systemd.watchdog_interval_s()
        last_ping = 0.0
        first = True
        while not self.stopping.is_set():
            now = time.monotonic()
            if self.reload_requested:
                self._reload()
            self._collect()
            self._scan_due(now)
            if first:
                systemd.notify("READY=1")
                first = False
            self._publish_status()
            if watchdog_s is not None and now - last_ping >= watchdog_s:
                systemd.notify("WATCHDOG=1")  # from the loop itself, so a stuck loop stops the pings
                last_ping = now
            self.wake.wait(TICK_S)
            self.wake.clear()
        return self._shutdown()

    def _shutdown(self) -> int:
        systemd.notify("STOPPING=1")
        log.info("service_stopping", in_flight=len(self.in_flight))
        self.watcher.stop()
        if self.metrics is not None:
            self.metrics.stop()
        deadline = time.monotonic() + DRAIN_S
        while self.in_flight and time.monotonic() < deadline:
            self._collect()
            time.sleep(0.05)
        if self.in_flight:
            # a request can take up to timeout_s; rather than outwait it, leave now: every job is
            # journaled step by step, so this exit is as safe as a crash and a restart resumes it
            parked = [relpath for _index, relpath in self.in_flight]
            log.warning("service_parked", in_flight=len(parked), relpaths=parked)
            systemd.notify("STATUS=stopped, in-flight work parked in the journal")
            os._exit(0)
        self.workers.shutdown(wait=True, cancel_futures=True)
        self._collect()
        for pipeline, client, storage in [*self._retired, (self.pipeline, self.client, self.storage)]:
            pipeline.close()
            client.close()
            storage.close()
        self.journal.close()
        log.info("service_stopped")
        return 0

    def _start_watcher(self) -> None:
        roots: list[tuple[Path, bool, Callable[[], None]]] = []
        for index, inbox in enumerate(self.settings.inboxes):
            if inbox.path.is_dir() and wants_events(inbox.path, inbox.polling):
                roots.append((inbox.path, inbox.recursive, functools.partial(self._hint, index)))
        self.watcher.start(roots)

    def _recover(self) -> None:
        """Finish what a crash interrupted after the outcome was decided; the rest is found by scanning."""
        by_path = {str(inbox.path): (i, inbox) for i, inbox in enumerate(self.settings.inboxes)}
        for job in self.journal.jobs_in("working", "finishing"):
            if job.inbox not in by_path:
                continue
            index, inbox = by_path[job.inbox]
            if job.next_attempt_at > time.time():
                self.not_before[(index, job.relpath)] = time.monotonic() + job.next_attempt_at - time.time()
            if job.state == "finishing":
                # temp files of a crash mid-write; removed now, before any worker writes beside them
                files.remove_stale_temps(Pipeline.target_dir(job.relpath, job.outcome or "done", inbox))
                self._submit(index, job.relpath)
        paused = self.journal.get_meta("paused")
        if paused:
            self.paused = json.loads(paused)
            log.error("queue_paused", reason=self.paused.get("message"), code=self.paused.get("code"),
                      hint="fix the account or key, then reload (SIGHUP) or restart")  # fmt: skip

    def _scan_due(self, now: float) -> None:
        for index, scanner in enumerate(self.scanners):
            if now < self.next_scan[index]:
                continue
            busy = {relpath for (i, relpath) in self.in_flight if i == index}
            result = scanner.scan(time.monotonic(), busy)
            inbox = scanner.inbox
            self.inbox_state[index] = {
                "available": result.available, "problem": result.problem, "settling": result.settling,
                "held": len(result.held), "ready": len(result.ready),
            }  # fmt: skip
            if not result.available:
                log.warning("inbox_unavailable", inbox=str(inbox.path), problem=result.problem)
                self.next_scan[index] = now + min(inbox.rescan_s, 30.0)
                continue
            # files that failed least go first, so a few retrying files cannot starve new ones
            ready = sorted(result.ready, key=lambda item: self.failures.get((index, item[0]), 0))
            for relpath, _rules in ready:
                if (index, relpath) in self.in_flight:
                    continue
                if self.not_before.get((index, relpath), 0.0) > now:
                    continue
                probe = False
                if self.paused is not None:
                    if not self._probe_due(now):
                        continue
                    probe = True
                if len(self.in_flight) >= 2 * self.settings.dashscope.concurrency:
                    break
                self._submit(index, relpath, probe=probe)
            # while something is settling, look again soon; otherwise wait for the rescan or an event
            delay = min(inbox.rescan_s, max(0.2, inbox.settle_s / 2)) if result.settling else inbox.rescan_s
            waits = [nb - now for (i, _), nb in self.not_before.items() if i == index and nb > now]
            if waits:  # come back exactly when the first deferred file may be retried
                delay = min(delay, max(0.05, min(waits)))
            if self.paused is not None:
                delay = min(delay, max(1.0, self.pause_probe_at - now))
            self.next_scan[index] = now + delay

    def _probe_due(self, now: float) -> bool:
        """While paused, one file is tried every ``pause_probe_s`` to see whether the account is back."""
        if now < self.pause_probe_at or self.in_flight:
            return False
        self.pause_probe_at = now + self.settings.dashscope.pause_probe_s
        return True

    def _submit(self, index: int, relpath: str, *, probe: bool = False) -> None:
        key = (index, relpath)
        if key in self.in_flight:
            return
        self.started_in[key] = self.generation
        future = self.workers.submit(self._work, index, relpath, probe)
        future.add_done_callback(lambda _future: self.wake.set())
        self.in_flight[key] = future

    def _work(self, index: int, relpath: str, probe: bool = False) -> Outcome:
        if self.paused is not None and not probe:
            return Outcome("skipped")  # queued before the pause began: leave it in its inbox
        scanner = self.scanners[index]
        rules = scanner.rules.rules_for(Path(relpath).parent)
        if isinstance(rules, RulesHeld):
            return Outcome("skipped")
        return self.pipeline.take(scanner.inbox, relpath, rules)

    def _collect(self) -> None:
        for key, future in list(self.in_flight.items()):
            if not future.done():
                continue
            del self.in_flight[key]
            generation = self.started_in.pop(key, self.generation)
            index, relpath = key
            inbox = self.settings.inboxes[index]
            try:
                outcome = future.result()
            except ParkedError:
                continue
            except IncompleteError as exc:
                self.not_before[key] = time.monotonic() + exc.wait_s
                continue
            except ChangedError:
                log.info("source_changed", inbox=str(inbox.path), relpath=relpath,
                         action="waiting for it to settle again")  # fmt: skip
                continue
            except GoneError:
                problem = self.scanners[index].available()
                if problem is None:
                    self._abandon(inbox, relpath)
                else:  # the share went away, not the file: keep the job, it resumes when the share returns
                    self._defer(index, inbox, relpath, ShareUnavailableError(problem))
                continue
            except AccountError as exc:
                if generation == self.generation:
                    self._pause(exc)
                continue
            except TransientError as exc:
                self._defer(index, inbox, relpath, exc)
                continue
            except InputRejectedError as exc:  # a rejection that escaped the pipeline's own handling
                log.error("job_error", relpath=relpath, code=exc.code, error=exc.message)
                continue
            except Exception as exc:
                log.exception("job_crashed", inbox=str(inbox.path), relpath=relpath, error=repr(exc))
                self._defer(index, inbox, relpath, TransientError(repr(exc)))
                continue
            self.not_before.pop(key, None)
            self.failures.pop(key, None)
            if outcome.state in ("done", "failed"):
                self.stats[outcome.state] += 1
                if self.paused is not None:
                    self._unpause("a file went through")

    def _abandon(self, inbox: InboxSettings, relpath: str) -> None:
        job = self.journal.active_job(str(inbox.path), relpath)
        if job is not None:
            self.journal.abandon(job.id, "source disappeared during processing")
        log.warning("source_gone", inbox=str(inbox.path), relpath=relpath)

    def _defer(self, index: int, inbox: InboxSettings, relpath: str, exc: TransientError) -> None:
        job = self.journal.active_job(str(inbox.path), relpath)
        # errors before a job row exists (a share lock on open, a read error while hashing) are
        # counted here, so their backoff grows like any other
        attempts = max(job.attempts if job else 0, self.failures.get((index, relpath), 0)) + 1
        self.failures[(index, relpath)] = attempts
        ds = self.settings.dashscope
        delay = backoff_s(attempts, base_s=ds.retry_base_s, cap_s=ds.retry_max_s, jitter=random.random(),
                          retry_after_s=exc.retry_after_s)  # fmt: skip
        self.not_before[(index, relpath)] = time.monotonic() + delay
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
        systemd.notify("RELOADING=1")
        try:
            settings = load_settings(self.config_path, self.env)
            client = build_client(settings, self.env)
        except ConfigError as exc:
            log.error("reload_failed", errors=exc.messages, action="keeping the previous config")
            systemd.notify("READY=1")
            return
        # in-flight jobs finish with the old pipeline and client, which are closed at shutdown
        self._retired.append((self.pipeline, self.client, self.storage))
        self.settings = settings
        self.generation += 1
        configure(settings.logging.format, settings.logging.level)
        self.client = client
        self.storage = make_storage(settings.storage, client)
        self.pipeline = self._make_pipeline()
        old = {s.inbox.path: s for s in self.scanners}
        self.scanners = self._make_scanners()
        for scanner in self.scanners:
            if scanner.inbox.path in old:
                scanner.observations = old[scanner.inbox.path].observations
        self.next_scan = [0.0] * len(self.scanners)
        self.in_flight = {k: v for k, v in self.in_flight.items() if k[0] < len(self.scanners)}
        if self.paused is not None:
            self._unpause("config reloaded")
        log.info("config_reloaded", inboxes=[str(i.path) for i in settings.inboxes])
        systemd.notify("READY=1")

    def snapshot(self) -> Snapshot:
        """What /metrics and /healthz report; read from another thread, so only copies are taken."""
        states = dict(self.inbox_state)
        problems = []
        if self.paused is not None:
            problems.append(f"paused: {self.paused.get('code')}: {self.paused.get('message')}")
        for index, state in states.items():
            if not state["available"]:
                problems.append(f"inbox {self.settings.inboxes[index].path}: {state['problem']}")
        by_inbox = {f'inbox="{self.settings.inboxes[i].path}"': s for i, s in states.items()}
        return Snapshot(
            gauges={
                "dropscribe_files_done": ("Files finished since start.", self.stats["done"]),
                "dropscribe_files_failed": ("Files rejected since start.", self.stats["failed"]),
                "dropscribe_retries": ("Transient-error deferrals since start.", self.stats["retried"]),
                "dropscribe_in_flight": ("Files being processed now.", len(self.in_flight)),
                "dropscribe_paused": ("1 while an account problem pauses the queue.",
                                      1 if self.paused is not None else 0),
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

    def _publish_status(self) -> None:
        if self.paused is not None:
            text = f"PAUSED ({self.paused.get('code')}): {self.paused.get('message')}"
        else:
            text = (f"{len(self.in_flight)} in flight, {self.stats['done']} done, "
                    f"{self.stats['failed']} failed, {self.stats['retried']} retries")  # fmt: skip
        inboxes = {
            str(self.settings.inboxes[i].path): {
                "available": s["available"], "problem": s["problem"],
                "waiting": s["settling"] + s["ready"], "held_rule_files": s["held"],
            }
            for i, s in sorted(self.inbox_state.items())
        }  # fmt: skip
        snapshot = json.dumps({"text": text, "in_flight": len(self.in_flight), "inboxes": inboxes})
        if text != self.last_status:
            systemd.notify(f"STATUS={text}")
            self.last_status = text
        if snapshot != self.last_snapshot:  # for `dropscribe status`, written only when it changes
            self.last_snapshot = snapshot
            self.journal.set_meta("status", json.dumps({**json.loads(snapshot), "at": time.time()}))
