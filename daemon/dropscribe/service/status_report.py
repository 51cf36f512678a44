"""What the service says about itself: the systemd status line, the report for ``dropscribe status``,
and the numbers behind ``/metrics`` and ``/healthz``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from dropscribe.adapters import systemd
from dropscribe.adapters.metrics import Snapshot
from dropscribe.adapters.statusfile import StatusFile
from dropscribe.core.ports.clock import Clock
from dropscribe.service.queue_state import QueueState
from dropscribe.service.scanner import InboxScanner

REPORT_EVERY_S = 10.0  # the report is rewritten at least this often, so its age means "alive"


def snapshot(state: QueueState) -> Snapshot:
    """What /metrics and /healthz report; read from another thread, so only copies are taken."""
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
    by_inbox = {f'inbox="{name}"': s for name, s in states.items()}
    stats = state.stats
    return Snapshot(
        gauges={
            "dropscribe_files_done": ("Files finished since start.", stats["done"]),
            "dropscribe_files_failed": ("Files rejected since start.", stats["failed"]),
            "dropscribe_retries": ("Transient-error deferrals since start.", stats["retried"]),
            "dropscribe_in_flight": ("Files being processed now.", len(state.in_flight)),
            "dropscribe_paused": ("1 while an account problem or a full journal disk pauses the queue.",
                                  1 if paused is not None or state.state_full else 0),
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


def waiting_report(
    state: QueueState, scanners: Mapping[str, InboxScanner], limit: int = 200
) -> list[dict[str, Any]]:
    """Why known files are not being processed, at most ``limit`` of them (cheap on a big backlog)."""
    rows: list[dict[str, Any]] = []

    def add(inbox: str, relpath: str, reason: str, until: float | None) -> bool:
        rows.append({"inbox": inbox, "relpath": relpath, "reason": reason,
                     "until": round(until, 1) if until is not None else None})  # fmt: skip
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
    """Publishes the status line when it changes, and the report when it changes or grows old."""

    def __init__(self, status_file: StatusFile, clock: Clock) -> None:
        self.status_file = status_file
        self.clock = clock
        self.last_status = ""
        self.last_snapshot = ""
        self.last_report_at = 0.0

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
                  "state_full": state.state_full, "waiting": waiting_report(state, scanners)}  # fmt: skip
        encoded = json.dumps(report)
        if text != self.last_status:
            systemd.notify(f"STATUS={text}")
            self.last_status = text
        now = self.clock.time()
        due = encoded != self.last_snapshot or now - self.last_report_at >= REPORT_EVERY_S
        if due and self.status_file.write({**report, "at": now, "pid": os.getpid()}):
            self.last_snapshot = encoded
            self.last_report_at = now
