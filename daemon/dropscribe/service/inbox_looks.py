"""Looking at the inboxes: a full walk of each every ``rescan_s`` (the truth), cheap incremental looks
in between, and a look at recently finished files whose writer may have gone on writing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dropscribe.config.model import InboxSettings
from dropscribe.core import dispatch
from dropscribe.core.errors import StateFullError
from dropscribe.core.ports.clock import Clock
from dropscribe.core.ports.journal import Journal
from dropscribe.core.ports.notifier import Notifier
from dropscribe.logs import get_logger
from dropscribe.service.compose import Wiring
from dropscribe.service.queue_state import QueueState
from dropscribe.service.reopen import FinishedFiles
from dropscribe.service.scanner import InboxScanner

log = get_logger()


class InboxLooks:
    def __init__(
        self, queue: QueueState, journal: Journal, clock: Clock, notifier: Notifier,
        on_state_full: Callable[[StateFullError], None],
    ) -> None:  # fmt: skip
        self.queue = queue
        self.journal = journal
        self.clock = clock
        self.notifier = notifier
        self.on_state_full = on_state_full
        self.next_scan: dict[str, float] = {}
        self.next_poll: dict[str, float] = {}
        self.finished_check_at: dict[str, float] = {}
        self.finished = FinishedFiles()

    def restart(self) -> None:
        """After a reload: every inbox is walked at once, and its finished files read again."""
        self.next_scan = {}
        self.finished = FinishedFiles()  # loaded again per inbox by its next look
        self.finished_check_at = {}

    def look(self, now: float, wiring: Wiring, watched: set[Path]) -> None:
        """The looks due now; an inbox with filesystem events (``watched``) is not polled."""
        for inbox in wiring.settings.inboxes:
            name = str(inbox.path)
            scanner = wiring.scanners[name]
            busy = {relpath for (i, relpath) in self.queue.in_flight if i == name}
            if now >= self.next_scan.get(name, 0.0) or scanner.full_scan_wanted:
                self._full_scan(inbox, scanner, now, busy)
            elif self.queue.inbox_state.get(name, {}).get("available", False):
                poll = inbox.path not in watched and now >= self.next_poll.get(name, 0.0)
                if poll:
                    self.next_poll[name] = dispatch.next_poll_at(now, inbox.rescan_s)
                scanner.refresh(now, busy, poll=poll)
                self._watch_finished(inbox, now)
            state = self.queue.inbox_state.get(name)
            if state is not None:
                state.update(settling=len(scanner.settling), held=len(scanner.held),
                             ready=len(scanner.candidates))  # fmt: skip

    def _full_scan(self, inbox: InboxSettings, scanner: InboxScanner, now: float, busy: set[str]) -> None:
        name = str(inbox.path)
        was_available = self.queue.inbox_state.get(name, {}).get("available")
        result = scanner.scan(now, busy)
        self.queue.inbox_state[name] = {
            "available": result.available, "problem": result.problem, "settling": result.settling,
            "held": len(result.held), "ready": len(result.ready),
        }  # fmt: skip
        self.next_scan[name] = dispatch.next_scan_at(now, inbox.rescan_s, available=result.available)
        if not result.available:
            if was_available is False:  # told once per outage; the log hears it every rescan
                log.warning("inbox_unavailable", inbox=name, problem=result.problem)
            else:
                self.notifier.notify("inbox_unavailable", inbox=name, problem=result.problem)
            return
        if was_available is False:
            self.notifier.notify("inbox_back", inbox=name, message="the inbox can be read again")
        known, in_flight = scanner.observations, self.queue.in_flight
        # left the inbox by other hands: nothing to wait for any more
        self.queue.forget_files(lambda k: k[0] == name and k[1] not in known and k not in in_flight)
        self._watch_finished(inbox, now)

    def _watch_finished(self, inbox: InboxSettings, now: float) -> None:
        """Recently finished files whose writer went on writing go back through the gate."""
        name = str(inbox.path)
        if name not in self.finished_check_at:  # first look since the start or a reload
            self.finished.load(self.journal, inbox, self.clock.time())
        elif now < self.finished_check_at[name]:
            return
        self.finished_check_at[name] = dispatch.next_finished_check_at(now, inbox.rescan_s)
        try:
            reopened = self.finished.check(self.journal, inbox, self.clock.time())
        except StateFullError as exc:
            self.on_state_full(exc)
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
