"""What the service says about itself: the systemd status line, the report for ``dropscribe status``,
the queue's gauges and ``/healthz``; the live view the web page and ``/api/status`` are built from."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dropscribe.adapters import systemd
from dropscribe.adapters.statusfile import StatusFile
from dropscribe.core.dispatch import Key
from dropscribe.core.ports.clock import Clock
from dropscribe.core.ports.journal import Journal
from dropscribe.core.status_view import RECENT_LIMIT, utc_day_start, utc_month_start
from dropscribe.service.metrics_registry import ServiceMetrics
from dropscribe.service.queue_state import QueueState
from dropscribe.service.scanner import InboxScanner

REPORT_EVERY_S = 10.0  # the report is rewritten at least this often, so its age means "alive"


class RateBoard:
    """Each backend's request rate (configured, or found by ``auto``), read when the status is written.

    The clients are rebuilt on a reload; the newest one registered under a name is the one shown.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers: dict[str, Callable[[], dict[str, object]]] = {}

    def track(self, backend: str, reader: Callable[[], dict[str, object]]) -> None:
        with self._lock:
            self._readers[backend] = reader

    def snapshot(self) -> dict[str, dict[str, object]]:
        with self._lock:
            readers = dict(self._readers)
        return {name: read() for name, read in sorted(readers.items())}


RATES = RateBoard()


def health_problems(state: QueueState) -> tuple[str, ...]:
    """Why /healthz answers 503 (none: healthy); read from another thread, so only copies are taken."""
    states = dict(state.inbox_state)
    paused = state.paused
    problems = []
    if paused is not None:
        problems.append(f"paused: {paused.get('code')}: {paused.get('message')}")
    if state.state_full is not None:
        problems.append(f"paused: state disk full: {state.state_full}")
    for blocked in list(state.output_full.values()):
        problems.append(f"output full: {blocked['message']}")
    for name, inbox in states.items():
        if not inbox["available"]:
            problems.append(f"inbox {name}: {inbox['problem']}")
    return tuple(problems)


def queue_counts(
    name: str, scanner: InboxScanner, state: QueueState, now: float
) -> tuple[dict[str, int], float]:
    """One inbox's files by state (the names of ``dropscribe_queue_files``), and how long the oldest of
    those still in the inbox has been there unchanged (on the service's clock)."""
    over_budget = sum(
        1 for rel in scanner.candidates if state.waiting.get((name, rel), ("",))[0] == "over_budget"
    )
    counts = {
        "waiting": len(scanner.candidates) - over_budget,
        "settling": len(scanner.settling),
        "held": len(scanner.held_paths),
        "over_budget": over_budget,
        "in_flight": sum(1 for key in state.in_flight if key[0] == name),
    }
    oldest = 0.0
    for relpath in [*scanner.candidates, *scanner.settling]:
        observed = scanner.observations.get(relpath)
        if observed is not None:
            oldest = max(oldest, now - observed.since)
    return counts, oldest


def waiting_report(
    state: QueueState, scanners: Mapping[str, InboxScanner], limit: int = 200
) -> list[dict[str, Any]]:
    """Why known files are not being processed, at most ``limit`` of them (cheap on a big backlog)."""
    rows: list[dict[str, Any]] = []

    def add(inbox: str, relpath: str, reason: str, until: float | None) -> bool:
        rows.append({"inbox": inbox, "relpath": relpath, "reason": reason,
                     "until": round(until, 1) if until is not None else None})  # fmt: skip
        if reason == "over_budget":  # which budget, so that status can say so
            rows[-1]["budget"] = state.over_budget.get((inbox, relpath))
        return len(rows) >= limit

    paused = "paused" if state.paused is not None or state.state_full is not None else None
    for name, scanner in scanners.items():
        for relpath in scanner.candidates:
            reason, until = state.waiting.get((name, relpath), (paused or "queued", None))
            if state.output_full.get(name) is not None and reason == "queued":
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


class StatusReporter:
    """Publishes the status line when it changes, and the report when it changes or grows old.

    Each turn also sets the queue's gauges and keeps :attr:`live`, what the loop knows now, for the web
    page: built on the loop's thread and replaced whole, so the web thread reads it without locks.
    """

    def __init__(self, status_file: StatusFile, clock: Clock, metrics: ServiceMetrics | None = None) -> None:
        self.status_file = status_file
        self.clock = clock
        self.metrics = metrics
        self.last_status = ""
        self.last_snapshot = ""
        self.last_report_at = 0.0
        self.started_at = clock.time()
        self.live: dict[str, Any] = {}
        self._in_flight_since: dict[Key, float] = {}

    def publish(self, state: QueueState, scanners: Mapping[str, InboxScanner]) -> None:
        if state.state_full is not None:
            text = f"PAUSED (state disk full): {state.state_full}"
        elif state.paused is not None:
            text = f"PAUSED ({state.paused.get('code')}): {state.paused.get('message')}"
        else:
            stats = state.stats
            text = (f"{len(state.in_flight)} in flight, {stats['done']} done, "
                    f"{stats['failed']} failed, {stats['retried']} retries")  # fmt: skip
            if state.output_full:
                text += "; output full: " + "; ".join(b["message"] for b in state.output_full.values())
        inboxes = {
            name: {
                "available": s["available"], "problem": s["problem"],
                "waiting": s["settling"] + s["ready"], "held_rule_files": s["held"],
                "output_full": (state.output_full.get(name) or {}).get("message"),
            }
            for name, s in sorted(state.inbox_state.items())
        }  # fmt: skip
        report = {"text": text, "in_flight": len(state.in_flight), "inboxes": inboxes,
                  "state_full": state.state_full, "waiting": waiting_report(state, scanners),
                  "budgets": list(state.budgets),
                  # per backend: its pause, how long it has been failing, its last answer (failover)
                  "backends": state.health.detail() if state.health is not None else {},
                  "rates": RATES.snapshot()}  # fmt: skip
        self._publish_live(state, scanners, report)
        encoded = json.dumps(report)
        if text != self.last_status:
            systemd.notify(f"STATUS={text}")
            self.last_status = text
        now = self.clock.time()
        due = encoded != self.last_snapshot or now - self.last_report_at >= REPORT_EVERY_S
        if due and self.status_file.write({**report, "at": now, "pid": os.getpid()}):
            self.last_snapshot = encoded
            self.last_report_at = now

    def _publish_live(
        self, state: QueueState, scanners: Mapping[str, InboxScanner], report: dict[str, Any]
    ) -> None:
        mono, wall = self.clock.monotonic(), self.clock.time()
        since = {key: self._in_flight_since.get(key, wall) for key in list(state.in_flight)}
        self._in_flight_since = since
        inboxes: dict[str, dict[str, Any]] = {}
        gauges: dict[str, tuple[bool, dict[str, int], float]] = {}
        for name, scanner in scanners.items():
            inbox = state.inbox_state.get(name, {})
            counts, oldest_s = queue_counts(name, scanner, state, mono)
            up = bool(inbox.get("available", True))
            gauges[name] = (up, counts, oldest_s)
            inboxes[name] = {**counts, "available": up, "problem": inbox.get("problem"),
                             "output_full": (state.output_full.get(name) or {}).get("message"),
                             "oldest_waiting_s": round(oldest_s, 1)}  # fmt: skip
        if self.metrics is not None:
            self.metrics.meters.set_queue(
                gauges, paused=state.paused is not None or state.state_full is not None
            )
        self.live = {
            **report, "at": wall, "inboxes": inboxes,
            "in_flight": [{"inbox": k[0], "relpath": k[1], "since": at} for k, at in since.items()],
        }  # fmt: skip


def _chunks_total(staging_dir: Path, result_key: str | None, mode: object) -> int | None:
    if mode == "single":
        return 1
    if mode != "split" or not result_key:
        return None
    # where service.recognize stages a split file: one line per planned chunk, once planned
    try:
        return len((staging_dir / result_key[:32] / "spans.txt").read_text().splitlines())
    except (OSError, UnicodeDecodeError):
        return None


def status_document(
    journal: Journal, live: Mapping[str, Any], staging_dir: Path, now: float
) -> dict[str, Any]:
    """``/api/status``: the shape of ``dropscribe status --json``, from the journal and the loop's live
    view, plus per-inbox counts, chunk progress, recent done files and billed audio today and this month
    (UTC). Names and error messages only: no transcript text."""
    counts = journal.counts()
    paused = journal.get_meta("paused")
    working = journal.jobs_in("working", "finishing")
    jobs = {(j.inbox, j.relpath): j for j in working}
    at = live.get("at")
    service = {
        **{k: v for k, v in live.items() if k not in ("in_flight", "inboxes", "waiting", "budgets")},
        "in_flight": len(live.get("in_flight") or ()), "running": True, "pid": os.getpid(),
        "host": socket.gethostname(), "last_holder": None,
        "report_age_s": round(now - at, 3) if isinstance(at, int | float) else None,
    }  # fmt: skip
    waiting = []
    for entry in live.get("waiting") or ():
        job = jobs.get((entry.get("inbox"), entry.get("relpath")))
        waiting.append({**entry, "state": job.state if job else None, "attempts": job.attempts if job else 0,
                        "last_error": job.last_error if job else None})  # fmt: skip
    in_flight = []
    for item in live.get("in_flight") or ():
        job = jobs.get((item["inbox"], item["relpath"]))
        key = job.result_key if job else None
        mode = job.meta.get("mode") if job else None
        in_flight.append({
            "inbox": item["inbox"], "relpath": item["relpath"], "mode": mode,
            "chunks_done": len(journal.chunk_results(key)) if key and mode == "split" else 0,
            "chunks_total": _chunks_total(staging_dir, key, mode),
            "elapsed_s": round(max(now - item["since"], 0.0), 1),
        })  # fmt: skip
    day, month = utc_day_start(now), utc_month_start(now)
    return {
        "counts": counts,
        "paused": json.loads(paused) if paused else None,
        "state_full": live.get("state_full"),
        "budgets": live.get("budgets") or [],
        "service": service,
        "inboxes": live.get("inboxes") or {},
        "waiting": waiting,
        "in_flight": in_flight,
        "in_progress": [
            {"inbox": j.inbox, "relpath": j.relpath, "state": j.state, "attempts": j.attempts,
             "last_error": j.last_error, "retry_at": j.next_attempt_at if j.next_attempt_at > now else None}
            for j in working
        ],
        "recent_failures": [
            {"inbox": j.inbox, "relpath": j.relpath, "code": (j.error or {}).get("code"),
             "message": (j.error or {}).get("message"), "finished_at": j.finished_at}
            for j in journal.recent("failed", RECENT_LIMIT)
        ],
        "recent_done": [
            {"inbox": j.inbox, "relpath": j.relpath, "final_name": j.final_name, "finished_at": j.finished_at,
             "reused": bool(j.meta.get("reused"))}
            for j in journal.recent("done", RECENT_LIMIT)
        ],
        "usage_seconds_total": journal.usage_seconds_between(0.0, now + 86400),
        "billed": {
            "today_s": journal.usage_seconds_between(day, now + 86400), "day_start": day,
            "month_s": journal.usage_seconds_between(month, now + 86400), "month_start": month,
        },
    }  # fmt: skip
