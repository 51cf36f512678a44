"""A file's history for ``dropscribe explain``: journal rows as plain values in, ordered steps out.

The journal keeps a job's row (taken, routed, attempts, decision, move), the calls made for a result
key, and the stored result with the job that paid for it. Calls belong to a result key, not to a job:
a job is shown the calls of its key made while it was open, and none when it reused another job's
result (those calls are the paying job's, shown there).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dropscribe.core.jobs import Job

# a job may be refreshed or decided within the same clock tick as a call it made
_SLACK_S = 1.0
_SHA_PREFIX = re.compile(r"[0-9a-fA-F]{8,64}")

ENDED_STATES = ("done", "failed", "gone", "reopened", "retried")


@dataclass(frozen=True)
class CallRecord:
    """One request as the journal noted it: started, and (unless it never came back) how it ended."""

    id: int
    result_key: str
    chunk: int
    kind: str  # sync | submit
    started_at: float
    ended_at: float | None
    outcome: str | None  # ok | submitted | parked | the error's class name
    request_id: str | None


@dataclass(frozen=True)
class Step:
    """One thing that happened to a job; ``at`` is None when the journal keeps no time for it."""

    kind: str
    at: float | None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Facts:
    """What the journal and the folders say about one job, beyond its row."""

    calls: Sequence[CallRecord] = ()
    result: Mapping[str, Any] | None = None
    result_stored_at: float | None = None
    chunks_stored_at: Mapping[int, float] = field(default_factory=dict)
    final_path: str | None = None  # where the file was moved (done/ or failed/), if known
    sidecars: Sequence[str] = ()  # sidecar names found beside ``final_path``
    notifications: Sequence[Mapping[str, Any]] = ()


def looks_like_sha(text: str) -> bool:
    """A full SHA-256, or a prefix of at least 8 hex digits of one."""
    return _SHA_PREFIX.fullmatch(text) is not None


def reused_from(job: Job, result: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The payer of a result this job took without paying, or None if it paid (or has none)."""
    if not job.meta.get("reused") or result is None:
        return None
    paid_by = result.get("paid_by")
    return paid_by if isinstance(paid_by, Mapping) else {}


def own_calls(job: Job, calls: Iterable[CallRecord], result: Mapping[str, Any] | None) -> list[CallRecord]:
    """The calls this job made: of its result key, while it was open; none if it reused a result."""
    if job.result_key is None or reused_from(job, result) is not None:
        return []
    end = job.finished_at + _SLACK_S if job.finished_at is not None else float("inf")
    return sorted(
        (
            c
            for c in calls
            if c.result_key == job.result_key and job.created_at - _SLACK_S <= c.started_at <= end
        ),
        key=lambda c: (c.started_at, c.id),
    )


def timeline(job: Job, facts: Facts) -> list[Step]:
    """The job's steps, oldest first; steps without a time stay after the step they follow."""
    steps = [Step("taken", job.created_at, {"sha256": job.sha256 or None, "size_bytes": job.size})]
    meta = job.meta
    if "duration_s" in meta or "format" in meta:
        steps.append(
            Step("probed", None, {"duration_s": meta.get("duration_s"), "format": meta.get("format")})
        )
    if "mode" in meta or "model" in meta:
        steps.append(Step("routed", None, {"mode": meta.get("mode"), "model": meta.get("model")}))
    steps.extend(_recognition(job, facts))
    steps.extend(_ending(job, facts))
    steps.extend(
        Step("notification", _number(n.get("at", n.get("created_at"))), _notification(n))
        for n in facts.notifications
    )
    return _ordered(steps)


def _recognition(job: Job, facts: Facts) -> list[Step]:
    steps: list[Step] = []
    calls = own_calls(job, facts.calls, facts.result)
    for call in calls:
        steps.append(Step("call", call.started_at, {
            "chunk": call.chunk, "kind": call.kind, "outcome": call.outcome or "no answer recorded",
            "ended_at": call.ended_at, "request_id": call.request_id,
        }))  # fmt: skip
        stored_at = facts.chunks_stored_at.get(call.chunk)
        if call.outcome == "ok" and stored_at is not None and stored_at >= call.started_at:
            steps.append(Step("chunk_stored", stored_at, {"chunk": call.chunk}))
    if job.attempts or (job.last_error and job.state in ("working", "finishing")):
        failed = [c for c in calls if c.outcome not in ("ok", "submitted", "parked", None)]
        after = failed[-1].ended_at if failed and failed[-1].ended_at is not None else None
        waiting = job.state in ("working", "finishing") and job.next_attempt_at > 0
        steps.append(Step("retry", after, {
            "attempts": job.attempts, "last_error": job.last_error,
            "failed_calls": len(failed),
            "next_attempt_at": job.next_attempt_at if waiting else None,
        }))  # fmt: skip
    payer = reused_from(job, facts.result)
    if payer is not None:
        steps.append(Step("result_reused", None, {
            "paid_by_job": payer.get("job_id"), "paid_by_name": payer.get("name"),
            "paid_by_sha256": payer.get("sha256"),
            "usage_seconds": (facts.result or {}).get("usage_seconds"),
        }))  # fmt: skip
    elif facts.result is not None and facts.result_stored_at is not None and job.result_key is not None:
        stored_at = facts.result_stored_at
        end = job.finished_at + _SLACK_S if job.finished_at is not None else float("inf")
        if job.created_at - _SLACK_S <= stored_at <= end:
            steps.append(Step("result_stored", stored_at, {
                "usage_seconds": facts.result.get("usage_seconds"),
                "request_ids": list(facts.result.get("request_ids") or []),
                "mode": facts.result.get("mode"), "model": facts.result.get("model"),
            }))  # fmt: skip
    return steps


def _ending(job: Job, facts: Facts) -> list[Step]:
    steps: list[Step] = []
    if job.outcome is not None and job.final_name is not None:
        error = job.error or {}
        steps.append(Step("decided", None, {
            "outcome": job.outcome, "final_name": job.final_name,
            "code": error.get("code"), "message": error.get("message"),
            "remote_code": error.get("remote_code"),
        }))  # fmt: skip
        if facts.sidecars:
            steps.append(Step("sidecars", None, {"names": list(facts.sidecars)}))
    moved = job.state in ("done", "failed") or (job.state in ("reopened", "retried") and job.outcome)
    if moved and job.finished_at is not None:
        steps.append(Step("moved", job.finished_at, {"to": facts.final_path or job.final_name,
                                                     "outcome": job.outcome}))  # fmt: skip
    if job.state == "gone":
        steps.append(Step("gone", job.finished_at, {"reason": job.last_error}))
    elif job.state == "reopened":
        steps.append(Step("reopened", None, {"reason": job.last_error}))
    elif job.state == "retried":
        steps.append(Step("sent_back", None, {}))
    return steps


def _notification(n: Mapping[str, Any]) -> dict[str, Any]:
    wanted = ("event", "channel", "state", "attempts", "delivered_at")
    return {k: n[k] for k in wanted if k in n}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _ordered(steps: list[Step]) -> list[Step]:
    """By time, stably; an untimed step sorts with the last timed step before it."""
    keyed, last = [], float("-inf")
    for index, step in enumerate(steps):
        if step.at is not None:
            last = max(last, step.at)
        keyed.append(((step.at if step.at is not None else last), index, step))
    return [step for _, _, step in sorted(keyed, key=lambda k: (k[0], k[1]))]


def describe(step: Step, shown: Callable[[str], str], clock: Callable[[float], str]) -> str:
    """One line of the human timeline. ``shown`` escapes names, ``clock`` formats a time."""
    d = step.details
    kind = step.kind
    if kind == "taken":
        sha = f", sha256 {d['sha256'][:12]}…" if d.get("sha256") else ""
        size = f"{d['size_bytes']} bytes" if d.get("size_bytes") is not None else "size unknown"
        return f"taken: {size}{sha}"
    if kind == "probed":
        duration = f"{d['duration_s']:.2f} s" if isinstance(d.get("duration_s"), int | float) else "?"
        return f"probed: {duration}, {d.get('format') or 'unknown format'}"
    if kind == "routed":
        how = {"single": "one request", "split": "split into chunks", "filetrans": "file transcription task"}
        return f"routed: {how.get(str(d.get('mode')), str(d.get('mode')))} to {d.get('model')}"
    if kind == "call":
        what = "task submitted" if d["kind"] == "submit" else f"chunk {d['chunk']} request"
        rid = f" (request id {d['request_id']})" if d.get("request_id") else ""
        return f"{what}: {d['outcome']}{rid}"
    if kind == "chunk_stored":
        return f"chunk {d['chunk']} answer stored"
    if kind == "retry":
        return _describe_retry(d, clock)
    if kind == "result_stored":
        ids = ", ".join(d["request_ids"]) or "none"
        return f"result stored: {_seconds(d.get('usage_seconds'))} billed; request ids {ids}"
    if kind == "result_reused":
        name = f" ({shown(str(d['paid_by_name']))})" if d.get("paid_by_name") else ""
        return f"result reused: paid by job {d.get('paid_by_job')}{name}; nothing billed for this file"
    if kind == "decided":
        if d["outcome"] == "failed":
            remote = f" ({d['remote_code']})" if d.get("remote_code") else ""
            return f"decided: failed as {shown(d['final_name'])}: {d.get('code')}{remote}: {d.get('message')}"
        return f"decided: done as {shown(d['final_name'])}"
    if kind == "sidecars":
        return "sidecars: " + ", ".join(shown(n) for n in d["names"])
    if kind == "moved":
        return f"moved to {shown(str(d['to']))}"
    if kind == "gone":
        return f"gone: {d.get('reason')}"
    if kind == "reopened":
        return f"reopened: {d.get('reason')}; taken again as a new job"
    if kind == "sent_back":
        return "sent back to its inbox by `dropscribe retry`"
    if kind == "notification":
        parts = [str(d[k]) for k in ("channel", "state") if d.get(k) is not None]
        return f"notification {d.get('event')}" + (f": {', '.join(parts)}" if parts else "")
    return kind


def _describe_retry(d: Mapping[str, Any], clock: Callable[[float], str]) -> str:
    times = "attempt" if d["attempts"] == 1 else "attempts"
    text = f"retried: {d['attempts']} failed {times}"
    if d.get("last_error"):
        text += f", last: {d['last_error']}"
    if d.get("next_attempt_at"):
        text += f"; next attempt at {clock(d['next_attempt_at'])}"
    return text


def _seconds(value: Any) -> str:
    return f"{value:g} s" if isinstance(value, int | float) else "unknown seconds"
