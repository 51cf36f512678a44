"""``dropscribe explain``: one file's history from the journal, found by a path or a content hash.

A path may name the file in its inbox, or where it ended in ``done/`` or ``failed/`` (the source or
one of its sidecars); it is mapped back to the inbox and relpath the journal knows. The steps are put
in order by :mod:`dropscribe.core.history`; this module reads the journal, the folders and the
service's last status report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dropscribe.adapters.instance import probe
from dropscribe.adapters.statusfile import read_status
from dropscribe.config.model import InboxSettings, Settings
from dropscribe.core.history import Facts, Step, describe, looks_like_sha, timeline
from dropscribe.core.hosts_view import claim_of, claim_text
from dropscribe.core.jobs import Job
from dropscribe.core.naming import sidecar_name
from dropscribe.core.ports.journal import Journal
from dropscribe.service.hosts_view import read_hosts
from dropscribe.service.journal_opening import journal_label, journal_present, open_journal

DONE_SIDECARS = (".txt", ".json", ".srt", ".vtt")
FAILED_SIDECARS = (".error.json",)
SCHEMA_VERSION = 1


class NotFoundError(Exception):
    """Nothing in the journal matches; the message says where it looked."""


@dataclass(frozen=True)
class Target:
    """A file as the journal names it, and the inbox settings it falls under (None if no longer set)."""

    inbox: str
    relpath: str
    settings: InboxSettings | None


def explain(settings: Settings, query: str, cwd: Path) -> dict[str, Any]:
    """The explain document for ``query`` (a path or a SHA-256 or a prefix of ≥ 8 hex of one)."""
    if not journal_present(settings):
        raise NotFoundError(f"no journal at {settings.state.path}: the service has not run with this config")
    service, waiting = _service_state(settings.state.path)
    journal = open_journal(settings)
    try:
        hosts = read_hosts(settings, journal)
        if hosts is not None:  # a shared journal: "running" means any host is alive, not only this one
            service = {**service, "running": bool(service.get("running")) or hosts["running"], "hosts": hosts}
        path = Path(os.path.abspath(cwd / query))
        targets, found_by = _by_path(journal, settings, path), "path"
        if not targets and looks_like_sha(query) and not os.path.lexists(path):
            targets, found_by = _by_sha(journal, settings, query), "sha256"
        elif targets is None:
            raise NotFoundError(
                f"{query}: not inside an inbox, done/ or failed/ folder of {_places(settings)}"
            )
        elif not targets and os.path.lexists(path):
            in_inbox = _inbox_target(settings, path)  # there, but not taken yet
            targets = [in_inbox] if in_inbox is not None else []
        if not targets:
            looked = f"by SHA-256 among the jobs in {journal_label(settings)}" if found_by == "sha256" else (
                f"as {path} in the journal {journal_label(settings)}"
            )  # fmt: skip
            raise NotFoundError(f"{query}: no job found ({looked}; folders: {_places(settings)})")
        files = [_file(journal, t, waiting, service) for t in targets]
    finally:
        journal.close()
    return {"schema_version": SCHEMA_VERSION, "query": query, "found_by": found_by,
            "journal": journal_label(settings), "service": service, "files": files}  # fmt: skip


def _places(settings: Settings) -> str:
    return "; ".join(f"inbox {i.path}, done {i.done}, failed {i.failed}" for i in settings.inboxes)


def _inbox_target(settings: Settings, path: Path) -> Target | None:
    for inbox in settings.inboxes:
        if path.is_relative_to(inbox.path) and path != inbox.path:
            return Target(str(inbox.path), path.relative_to(inbox.path).as_posix(), inbox)
    return None


def _by_path(journal: Journal, settings: Settings, path: Path) -> list[Target] | None:
    """The files a path names; None if it lies in none of the configured folders."""
    in_inbox = _inbox_target(settings, path)
    if in_inbox is not None:
        return [in_inbox] if journal.jobs_of_file(in_inbox.inbox, in_inbox.relpath) else []
    for inbox in settings.inboxes:
        for root, suffixes in ((inbox.done, DONE_SIDECARS), (inbox.failed, FAILED_SIDECARS)):
            if not path.is_relative_to(root) or path == root:
                continue
            folder = path.parent.relative_to(root).as_posix()
            folder = "" if folder == "." else folder
            jobs = journal.jobs_finished_as(str(inbox.path), folder, path.name)
            if not jobs:  # a sidecar: the source is the file beside it whose sidecar has this name
                jobs = [j for name in _sources_of(path, suffixes)
                        for j in journal.jobs_finished_as(str(inbox.path), folder, name)]  # fmt: skip
            return _distinct(Target(j.inbox, j.relpath, inbox) for j in jobs)
    return None


def _sources_of(sidecar: Path, suffixes: Iterable[str]) -> list[str]:
    try:
        beside = [entry.name for entry in os.scandir(sidecar.parent)]
    except OSError:
        return []
    return [
        n for n in beside if n != sidecar.name and any(sidecar_name(n, s) == sidecar.name for s in suffixes)
    ]


def _by_sha(journal: Journal, settings: Settings, prefix: str) -> list[Target]:
    jobs = journal.jobs_with_sha(prefix)
    shas = sorted({j.sha256 for j in jobs if j.sha256})
    if len(shas) > 1:
        listed = ", ".join(s[:16] for s in shas[:5])
        raise NotFoundError(
            f"{prefix}: {len(shas)} different contents start with it ({listed}…); give more digits"
        )
    by_path = {str(i.path): i for i in settings.inboxes}
    return _distinct(Target(j.inbox, j.relpath, by_path.get(j.inbox)) for j in jobs)


def _distinct(targets: Iterable[Target]) -> list[Target]:
    seen: dict[tuple[str, str], Target] = {}
    for target in targets:
        seen.setdefault((target.inbox, target.relpath), target)
    return list(seen.values())


def _service_state(state_path: Path) -> tuple[dict[str, Any], dict[tuple[str, str], dict[str, Any]]]:
    """Whether a service runs, and its waiting report by (inbox, relpath) if its report is its own."""
    state = probe(state_path)
    report = read_status(state_path)
    live = state.holder if state.running else None
    if live is None or report is None or report.get("pid") not in (None, live.pid):
        report = None  # a report outlives its writer: only the running service's own counts
    at = (report or {}).get("at")
    service = {**state.as_dict(), "report_age_s": None}
    if report is not None and isinstance(at, int | float):
        service["report_age_s"] = round(time.time() - at, 3)
    waiting = {
        (str(w.get("inbox")), str(w.get("relpath"))): dict(w) for w in (report or {}).get("waiting", [])
    }
    return service, waiting


def _file(
    journal: Journal, target: Target, waiting: Mapping[tuple[str, str], dict[str, Any]],
    service: Mapping[str, Any],
) -> dict[str, Any]:  # fmt: skip
    jobs = journal.jobs_of_file(target.inbox, target.relpath)
    histories = [_job(journal, job, target.settings) for job in jobs]
    waits = waiting.get((target.inbox, target.relpath))
    newest = jobs[-1] if jobs else None
    in_inbox = os.path.lexists(Path(target.inbox) / target.relpath)
    if waits:
        state = "waiting"
    elif newest is not None and newest.state in ("working", "finishing"):
        state = "in_progress" if service.get("running") else "stopped"
    elif newest is None or in_inbox:  # a new file of that name, or one sent back by `retry`
        state = "not_taken"
    else:
        state = newest.state
    hosts = service.get("hosts")
    claim = claim_of(hosts, target.inbox, target.relpath) if hosts else None
    return {"inbox": target.inbox, "relpath": target.relpath, "state": state,
            "waiting": waits and {"reason": waits.get("reason"), "until": waits.get("until")},
            "in_inbox": in_inbox, "claim": claim, "jobs": histories}  # fmt: skip


def _job(journal: Journal, job: Job, inbox: InboxSettings | None) -> dict[str, Any]:
    final_path, sidecars = _where(job, inbox)
    key = job.result_key
    facts = Facts(
        calls=journal.calls_of(key) if key else (),
        result=journal.result(key) if key else None,
        result_stored_at=journal.result_stored_at(key) if key else None,
        chunks_stored_at=journal.chunks_stored_at(key) if key else {},
        final_path=final_path,
        sidecars=sidecars,
        notifications=_notifications(journal, job.id),
    )
    steps = timeline(job, facts)
    return {
        "job_id": job.id, "state": job.state, "sha256": job.sha256 or None, "size_bytes": job.size,
        "attempts": job.attempts, "last_error": job.last_error, "outcome": job.outcome,
        "final_path": final_path, "taken_at": job.created_at, "finished_at": job.finished_at,
        "steps": [{"step": s.kind, "at": s.at, **s.details} for s in steps],
    }  # fmt: skip


def _notifications(journal: Journal, job_id: int) -> list[Mapping[str, Any]]:
    """The outbox's entries for the job; their errors stay out, as they may quote a channel's URL."""
    entries: list[Mapping[str, Any]] = []
    for n in journal.notifications_for_job(job_id):
        state = "delivered" if n.delivered_at else "dropped" if n.dropped_at else "pending"
        entries.append({"event": n.event, "channel": n.channel, "at": n.created_at, "state": state,
                        "attempts": n.attempts, "delivered_at": n.delivered_at})  # fmt: skip
    return entries


def _where(job: Job, inbox: InboxSettings | None) -> tuple[str | None, list[str]]:
    """Where the job's file went, and which of its sidecars are there now."""
    if job.outcome is None or job.final_name is None or inbox is None:
        return None, []
    root, suffixes = (inbox.done, DONE_SIDECARS) if job.outcome == "done" else (inbox.failed, FAILED_SIDECARS)
    folder = root / job.relpath.rpartition("/")[0]
    final = folder / job.final_name
    if job.state not in ("done", "failed"):
        return str(final), []
    return str(final), [
        n for n in (sidecar_name(job.final_name, s) for s in suffixes) if (folder / n).exists()
    ]


def printable(value: Any) -> Any:
    """The document with names that are not UTF-8 written with backslash escapes, fit for JSON."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, Mapping):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(v) for v in value]
    return value


def render(
    document: Mapping[str, Any], *, shown: Callable[[str], str], clock: Callable[[float], str],
    why: Callable[[Mapping[str, Any]], str],
) -> str:  # fmt: skip
    """The human timeline: per file, each job's steps with their times, then its state now."""
    lines: list[str] = []
    service = document["service"]
    stamps = [
        s["at"] for f in document["files"] for j in f["jobs"] for s in j["steps"] if s["at"] is not None
    ]
    width = max((len(clock(at)) for at in stamps), default=0)
    for entry in document["files"]:
        lines.append(f"{shown(entry['relpath'])}  (inbox {shown(entry['inbox'])})")
        for job in entry["jobs"]:
            lines.append(f"  job {job['job_id']}: {job['state']}")
            for raw in job["steps"]:
                details = {k: v for k, v in raw.items() if k not in ("step", "at")}
                step = Step(raw["step"], raw["at"], details)
                at = clock(step.at) if step.at is not None else ""
                lines.append(f"    {at:>{width}}  {describe(step, shown, clock)}")
        lines.append(f"  now: {_now(entry, service, shown, why)}")
    return "\n".join(lines)


def _now(
    entry: Mapping[str, Any], service: Mapping[str, Any], shown: Callable[[str], str],
    why: Callable[[Mapping[str, Any]], str],
) -> str:  # fmt: skip
    state = entry["state"]
    jobs = entry["jobs"]
    claim = entry.get("claim")
    if claim and state not in ("done", "failed"):  # held by a host (maybe another one), or its lease ran out
        return claim_text(claim)
    if state == "waiting":
        return f"waiting in its inbox: {why(entry['waiting'])}"
    if state == "in_progress":
        return "being processed"
    if state == "stopped":
        return "unfinished; the service is not running, it resumes this file when it starts"
    if state == "not_taken":
        running = "the service is running" if service.get("running") else "the service is not running"
        return f"in its inbox, not taken yet ({running})"
    final = jobs[-1].get("final_path")
    where = f" ({shown(final)})" if final and state in ("done", "failed") else ""
    return f"{state}{where}"
