"""The service loop: scan inboxes, hand settled files to workers, retry, pause, reload, stop cleanly.

One thread owns all scheduling decisions; workers only run ``Pipeline.take`` and report back. Which
files start is decided by :mod:`dropscribe.core.dispatch`; what an ending means is carried out by
:mod:`dropscribe.service.settle`. Stop and reload are requested through flags that the loop reads, so
the loop runs the same in the main thread under signals (``service.signals``) or in any
thread of a test.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dropscribe.adapters import files, systemd
from dropscribe.adapters.watcher import wants_events
from dropscribe.config.model import InboxSettings, Settings
from dropscribe.core.errors import ConfigError, StateFullError
from dropscribe.core.jobs import Job
from dropscribe.core.ruleset import EffectiveRules
from dropscribe.logs import configure, get_logger
from dropscribe.service.backend_health import BackendHealth
from dropscribe.service.budgets import look_again, park_if_over_budget, refresh_budgets
from dropscribe.service.compose import Graph, Wiring
from dropscribe.service.dispatcher import BackendSettler, Dispatcher
from dropscribe.service.inbox_looks import InboxLooks
from dropscribe.service.notifications import OutboxNotifier
from dropscribe.service.outcomes import Outcome
from dropscribe.service.pipeline import Pipeline
from dropscribe.service.queue_state import QueueState, Running
from dropscribe.service.retry import retry_failed
from dropscribe.service.rule_cache import RulesHeld
from dropscribe.service.staging_sweep import sweep_staging
from dropscribe.service.status_report import StatusReporter, health_problems
from dropscribe.service.web_routes import make_routes

log = get_logger()
TICK_S = 0.25
STATUS_EVERY_S = 0.5  # the status line and report; work itself is never held back by it
SHORTEST_WAIT_S = 0.01  # a wait that is due now still yields the thread


class Service:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.clock = graph.clock
        self.journal = graph.journal
        self.stopping = graph.stopping
        self.wake = threading.Event()
        self.reload_requested = False
        self.stop_requested = False
        self.wiring = graph.wire(graph.settings)
        self.workers = ThreadPoolExecutor(self.settings.dashscope.concurrency, thread_name_prefix="job")
        # bumped on every reload: an account error from work started with the old config says
        # nothing about the new one and must not pause the queue again
        self.generation = 0
        health = graph.health or BackendHealth(graph.clock, self.settings.dashscope.pause_probe_s)
        self.queue = QueueState(health=health)
        self.settler = BackendSettler(self.queue, graph.journal, graph.notifier, graph.clock, graph.meters,
                                      health=health)  # fmt: skip
        self.reporter = StatusReporter(graph.status_file, graph.clock, graph.meters)
        self.dispatcher = Dispatcher(self.queue, self._submit)
        self.looks = InboxLooks(self.queue, graph.journal, graph.clock, graph.notifier, self._state_is_full)
        self.watched: list[tuple[Path, bool]] = []
        self.recovered = False
        self.look_again_at: float | None = None
        # wirings replaced by a reload: closed once the last file they took is finished
        self._retired: list[Wiring] = []

    @property
    def settings(self) -> Settings:
        return self.wiring.settings

    def open_wirings(self) -> list[Wiring]:
        """The current wiring and every replaced one still finishing files."""
        return [w for w in [*self._retired, self.wiring] if not w.closed.is_set()]

    # requests from outside the loop -------------------------------------------------------------

    def request_stop(self) -> None:
        """Safe from any thread but not from a signal handler (see ``service.signals``)."""
        self.stop_requested = True
        self.wake.set()

    def request_reload(self) -> None:
        self.reload_requested = True
        self.wake.set()

    def _event(self, inbox: str, path: str, is_directory: bool) -> None:
        """From the watcher's thread: the scanner looks at that path in the loop's next turn."""
        scanner = self.wiring.scanners.get(inbox)
        if scanner is not None:
            scanner.note_event(path, is_directory)
            self.wake.set()

    # the loop -----------------------------------------------------------------------------------

    def run(self) -> int:
        if self.graph.leases is not None:
            self.graph.leases.start()
        try:
            self._recover()
        except StateFullError as exc:
            self._state_is_full(exc)
        self._restart_watcher()
        if self.graph.web is not None:
            self.graph.web.start(make_routes(
                settings=lambda: self.settings, journal=self.journal, live=lambda: self.reporter.live,
                health=self.health, metrics=self.graph.meters, clock=self.clock, token=self.graph.web_token,
                retry_failed=retry_failed,
            ))  # fmt: skip
        if self.graph.deliveries is not None:  # notifications are sent from their own threads
            self.graph.deliveries.start()
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
            now = self.clock.monotonic()
            self.look_again_at = None
            if self.reload_requested:
                self._reload()
            self._collect()
            if self.queue.state_full is not None and self.settler.state_space_back(now, self._state_path()):
                self._recover_once()
                self._finish_unrecorded()
            if self.queue.state_full is None:
                # a full walk of each inbox every rescan_s, incremental looks in between; then dispatch
                self.looks.look(now, self.wiring, {path for path, _recursive in self.watched})
                self.look_again_at = self.dispatcher.start_due(now, self.wiring)
            if first:
                systemd.notify("READY=1")
                first = False
            if now - last_report >= STATUS_EVERY_S or self.stopping.is_set():
                refresh_budgets(self.queue, self.journal, self.settings, self.graph.budgets_seen,
                                self.graph.meters.meters, self.clock.time())  # fmt: skip
                self.reporter.publish(self.queue, self.wiring.scanners)
                last_report = now
            if watchdog_s is not None and now - last_ping >= watchdog_s:
                systemd.notify("WATCHDOG=1")  # from the loop itself, so a stuck loop stops the pings
                last_ping = now
            self.wake.wait(self._wait_s())
            self.wake.clear()
        return self._shutdown()

    def _wait_s(self) -> float:
        if self.look_again_at is None:
            return TICK_S
        return min(TICK_S, max(SHORTEST_WAIT_S, self.look_again_at - self.clock.monotonic()))

    def _shutdown(self) -> int:
        systemd.notify("STOPPING=1")
        grace_s = self.settings.dashscope.stop_grace_s
        in_flight = self.queue.in_flight
        log.info("service_stopping", in_flight=len(in_flight), grace_s=grace_s)
        self.graph.watcher.stop()
        if self.graph.web is not None:
            self.graph.web.stop()
        # nothing new is sent from now on (the pipeline checks ``stopping`` right before each request);
        # requests already on the wire are paid for, so their answers are waited for and journaled
        deadline = self.clock.monotonic() + grace_s
        while in_flight and self.clock.monotonic() < deadline:
            self._collect()
            time.sleep(0.05)
        if in_flight:
            # beyond the grace: leave now; every job is journaled step by step, so this exit is as safe
            # as a crash, and only the requests still unanswered can be paid again after a restart
            parked = [relpath for _inbox, relpath in in_flight]
            log.warning("service_parked", in_flight=len(parked), relpaths=parked,
                        reason=f"requests still unanswered after stop_grace_s={grace_s:g}")  # fmt: skip
            systemd.notify("STATUS=stopped, in-flight work parked in the journal")
            os._exit(0)
        self.workers.shutdown(wait=True, cancel_futures=True)
        self._collect()
        with contextlib.suppress(StateFullError):  # left for the next start
            sweep_staging(self.settings.state.staging_dir, self.journal)
        for wiring in [*self._retired, self.wiring]:
            wiring.close()
        self._retired = []
        if self.graph.leases is not None:
            self.graph.leases.stop()
        self.graph.close()
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
        self.graph.watcher.stop()
        self.watched = wanted
        self.graph.watcher.start(
            [(path, recursive, functools.partial(self._event, str(path))) for path, recursive in wanted]
        )

    def _state_path(self) -> str:
        return str(self.settings.state.path)

    def _state_is_full(self, exc: StateFullError) -> None:
        self.settler.state_is_full(exc, self._state_path())

    def _recover_once(self) -> None:
        if not self.recovered:
            try:
                self._recover()
            except StateFullError as exc:
                self._state_is_full(exc)

    def _recover(self) -> None:
        """Finish what a crash interrupted after the outcome was decided; the rest is found by scanning."""
        by_path = {str(inbox.path): inbox for inbox in self.settings.inboxes}
        # before any worker starts, so a job finished from here on is told once, by its settle
        self._tell_lost_file_events(by_path)
        jobs = self.journal.jobs_in("working", "finishing")
        # what other live processes left open (reservations, temp files in done/) is theirs to settle
        tidy = self.graph.leases is None or self.graph.leases.alone()
        if tidy:
            self.graph.budget_gate(self.settings).reconcile()  # before any worker reserves again
        sweep_staging(self.settings.state.staging_dir, self.journal)  # nothing is sent yet
        paused = self.journal.get_meta("paused")
        self.recovered = True
        now, wall = self.clock.monotonic(), self.clock.time()
        for job in jobs:
            inbox = by_path.get(job.inbox)
            if inbox is None:
                continue
            key = (job.inbox, job.relpath)
            if job.next_attempt_at > wall:
                self.queue.not_before[key] = now + job.next_attempt_at - wall
                self.queue.waiting[key] = ("retry", job.next_attempt_at)
            if job.state == "finishing":
                # temp files of a crash mid-write; removed now, before any worker writes beside them
                if tidy:
                    files.remove_stale_temps(Pipeline.target_dir(job.relpath, job.outcome or "done", inbox))
                self._submit(inbox, job.relpath)
        if paused:
            self.queue.paused = json.loads(paused)
            for backend, info in self.queue.paused_backends.items():
                self.graph.notifier.notify(
                    "queue_paused", backend=backend, reason=info.get("message"), code=info.get("code"),
                    hint="fix the account or key, then reload (SIGHUP) or restart",
                )  # fmt: skip

    def _finish_unrecorded(self) -> None:
        """The journal is back: a file moved while its finish could not be recorded is finished now."""
        by_path = {str(inbox.path): inbox for inbox in self.settings.inboxes}
        try:
            finishing = self.journal.jobs_in("finishing")
        except StateFullError as exc:
            self._state_is_full(exc)
            return
        for job in finishing:
            inbox = by_path.get(job.inbox)
            if inbox is not None:
                self._submit(inbox, job.relpath)

    def _tell_lost_file_events(self, by_path: dict[str, InboxSettings]) -> None:
        """A crash between a file's finish and its notification's commit: the event is committed now."""
        notifier = self.graph.notifier
        if not isinstance(notifier, OutboxNotifier):
            return

        def final_path(job: Job) -> Path | None:
            inbox = by_path.get(job.inbox)
            if inbox is None or job.final_name is None:
                return None
            return Pipeline.target_dir(job.relpath, job.state, inbox) / job.final_name

        told = notifier.catch_up(final_path)
        if told:
            log.info("notifications_caught_up", files=told)

    def _submit(
        self, inbox: InboxSettings, relpath: str, rules: EffectiveRules | None = None, *, probe: bool = False
    ) -> None:
        key = (str(inbox.path), relpath)
        if key in self.queue.in_flight:
            return
        scanner = self.wiring.scanners[key[0]]
        # rules are looked up here, on the loop's thread: the rule cache is not shared with workers
        found = rules if rules is not None else scanner.rules.rules_for(Path(relpath).parent)
        if isinstance(found, RulesHeld):
            self.queue.waiting[key] = ("held", None)
            return
        observed = scanner.observations.get(relpath)
        # when the service saw the file change last, on its own clock (the share's clock may differ)
        changed_at = observed.since if observed is not None else self.clock.monotonic()
        pipeline = self.wiring.pipeline
        future = self.workers.submit(self._work, inbox, found, pipeline, relpath, probe, changed_at)
        future.add_done_callback(lambda _future: self.wake.set())
        self.queue.in_flight[key] = Running(future, inbox, pipeline, self.generation)
        self.queue.waiting.pop(key, None)
        scanner.candidates.pop(relpath, None)

    def _work(
        self, inbox: InboxSettings, rules: EffectiveRules, pipeline: Pipeline, relpath: str, probe: bool,
        changed_at: float,
    ) -> Outcome:  # fmt: skip
        if not probe and self.queue.held_by_pause(rules):
            return Outcome("skipped")  # queued before its backend's pause began: leave it in its inbox
        return pipeline.take(inbox, relpath, rules, changed_at=changed_at)

    def _collect(self) -> None:
        for key, running in list(self.queue.in_flight.items()):
            if not running.future.done():
                continue
            del self.queue.in_flight[key]
            scanner = self.wiring.scanners.get(key[0])
            try:
                if not park_if_over_budget(self.queue, key, running, self.clock):
                    self.settler.settle(
                        key, running, scanner=scanner, ds=self.settings.dashscope,
                        state_path=self._state_path(), generation=self.generation,
                        finished=self.looks.finished,
                    )  # fmt: skip
            except StateFullError as exc:  # recording the outcome itself needed the full disk
                self._state_is_full(exc)
            if scanner is not None:  # still in the inbox (not finished, or a new file): judged again
                scanner.recheck(key[1], self.clock.monotonic(), set())
        self._close_retired()

    def _close_retired(self) -> None:
        """A wiring replaced by a reload is closed once the last file it took is finished."""
        if not self._retired:
            return
        in_use = {id(running.pipeline) for running in self.queue.in_flight.values()}
        keep = []
        for wiring in self._retired:
            if id(wiring.pipeline) in in_use:
                keep.append(wiring)
            else:
                wiring.close(keep=self.wiring)
        self._retired = keep

    # reload -------------------------------------------------------------------------------------

    def _reload(self) -> None:
        self.reload_requested = False
        systemd.reloading()
        try:
            settings = self.graph.load_settings()
            wiring = self.graph.wire(settings, previous=self.wiring.scanners)
        except ConfigError as exc:
            log.error("reload_failed", errors=exc.messages, action="keeping the previous config")
            systemd.notify("READY=1")
            return
        # files in flight finish with the pipeline, client and inbox settings they started with;
        # those are closed as soon as the last of them is done
        self._retired.append(self.wiring)
        self.wiring = wiring
        self.generation += 1
        configure(settings.logging.format, settings.logging.level)
        self.looks.restart()
        live = set(wiring.scanners)
        self.queue.forget_files(lambda k: k[0] not in live)
        look_again(self.queue)  # a raised budget lets its waiting files through now
        self.queue.inbox_state = {k: v for k, v in self.queue.inbox_state.items() if k in live}
        self._close_retired()
        self._restart_watcher()
        if self.queue.paused is not None:
            try:
                self.settler.resume_all("config reloaded")
            except StateFullError as exc:
                self._state_is_full(exc)
        log.info("config_reloaded", inboxes=[str(i.path) for i in settings.inboxes])
        systemd.notify("READY=1")

    def health(self) -> tuple[str, ...]:
        """Why /healthz answers 503 (none: healthy); called from the web listener's threads."""
        return health_problems(self.queue)
