"""What the status page shows, decided from the status document (the JSON of ``/api/status``).

Pure: plain values in, a :class:`StatusView` out. Rendering it to HTML is the service's business; what
is worth a person's attention, in what order and in which words, is decided here.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

RECENT_LIMIT = 10


@dataclass(frozen=True)
class InboxLine:
    name: str
    waiting: int
    settling: int
    held: int  # files held by an invalid rule file
    over_budget: int
    in_flight: int
    unreachable: str | None  # why, when the inbox cannot be scanned
    output_full: str | None


@dataclass(frozen=True)
class InFlightLine:
    inbox: str
    relpath: str
    progress: str  # "3 of 7 chunks", "1 request", "file transcription"
    elapsed: str


@dataclass(frozen=True)
class FinishedLine:
    relpath: str
    inbox: str
    when: str
    code: str | None  # failures only
    message: str | None


@dataclass(frozen=True)
class BudgetLine:
    scope: str  # "defaults", "inbox:<path>", "rules:<inbox>/<folder>"
    period: str  # "day" or "month"
    used: str  # billed and reserved audio, as a duration
    limit: str
    resets: str  # when the period starts again, UTC
    waiting: int  # files that do not fit in what is left: they wait as over_budget


@dataclass(frozen=True)
class StatusView:
    headline: str  # one line: running, paused, or what is wrong
    level: str  # "ok", "warning" or "error": the colour of the headline
    banner: str | None  # the paused reason, shown above everything
    inboxes: tuple[InboxLine, ...]
    in_flight: tuple[InFlightLine, ...]
    recent_done: tuple[FinishedLine, ...]
    recent_failed: tuple[FinishedLine, ...]
    billed_today: str
    billed_month: str
    counts: tuple[tuple[str, int], ...]
    refresh_s: int
    budgets: tuple[BudgetLine, ...] = ()


def utc_day_start(now: float) -> float:
    """Midnight UTC of the day ``now`` falls in, as epoch seconds."""
    return float(int(now // 86400) * 86400)


def utc_month_start(now: float) -> float:
    """The first instant of the UTC month ``now`` falls in, as epoch seconds."""
    t = time.gmtime(now)
    return float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0, 0, 0, 0)))


def audio_duration(seconds: float) -> str:
    """Billed audio as a person reads it: ``0 s``, ``42 s``, ``12 min 05 s``, ``3 h 07 min``."""
    whole = max(round(seconds), 0)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def elapsed(seconds: float) -> str:
    """How long something has been going on: ``5 s``, ``3 min 20 s``, ``2 h 05 min``."""
    return audio_duration(seconds)


def ago(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def progress(chunks_done: object, chunks_total: object, mode: object) -> str:
    if mode == "filetrans":
        return "file transcription task"
    if isinstance(chunks_total, int) and chunks_total > 1:
        done = chunks_done if isinstance(chunks_done, int) else 0
        return f"{min(done, chunks_total)} of {chunks_total} chunks"
    if isinstance(chunks_total, int) and chunks_total == 1:
        return "1 request"
    return "preparing"


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _count(value: object) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _inbox_lines(inboxes: object) -> tuple[InboxLine, ...]:
    if not isinstance(inboxes, Mapping):
        return ()
    lines = []
    for name, item in sorted(inboxes.items()):
        if not isinstance(item, Mapping):
            continue
        available = item.get("available", True) is not False
        lines.append(InboxLine(
            name=str(name), waiting=_count(item.get("waiting")), settling=_count(item.get("settling")),
            held=_count(item.get("held")), over_budget=_count(item.get("over_budget")),
            in_flight=_count(item.get("in_flight")),
            unreachable=None if available else (_text(item.get("problem")) or "not reachable"),
            output_full=_text(item.get("output_full")),
        ))  # fmt: skip
    return tuple(lines)


def _finished(items: object, now: float, *, failures: bool) -> tuple[FinishedLine, ...]:
    if not isinstance(items, Sequence):
        return ()
    lines = []
    for item in list(items)[:RECENT_LIMIT]:
        if not isinstance(item, Mapping):
            continue
        at = item.get("finished_at")
        lines.append(FinishedLine(
            relpath=str(item.get("relpath", "")), inbox=str(item.get("inbox") or ""),
            when=ago(now - at) if isinstance(at, int | float) else "",
            code=_text(item.get("code")) if failures else None,
            message=_text(item.get("message")) if failures else None,
        ))  # fmt: skip
    return tuple(lines)


def _budget_lines(rows: object, waiting: object) -> tuple[BudgetLine, ...]:
    held: dict[tuple[str, str], int] = {}
    for item in waiting if isinstance(waiting, list) else ():
        budget = item.get("budget") if isinstance(item, Mapping) else None
        if isinstance(budget, Mapping) and item.get("reason") == "over_budget":
            key = (str(budget.get("scope", "")), str(budget.get("period", "")))
            held[key] = held.get(key, 0) + 1
    lines = []
    for row in rows if isinstance(rows, list) else ():
        if not isinstance(row, Mapping):
            continue
        scope, period = str(row.get("scope", "")), str(row.get("period", ""))
        resets = row.get("resets_at")
        lines.append(BudgetLine(
            scope=scope, period=period,
            used=audio_duration(_number(row.get("used_s")) + _number(row.get("reserved_s"))),
            limit=audio_duration(_number(row.get("limit_s"))),
            resets=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(resets))
            if isinstance(resets, int | float) else "",
            waiting=held.get((scope, period), 0),
        ))  # fmt: skip
    return tuple(lines)


def _headline(doc: Mapping[str, Any], inboxes: Sequence[InboxLine]) -> tuple[str, str, str | None]:
    """The headline, its level, and the banner for a paused queue."""
    paused = doc.get("paused")
    state_full = _text(doc.get("state_full"))
    banner = None
    if isinstance(paused, Mapping):
        code = _text(paused.get("code")) or "paused"
        message = (_text(paused.get("message")) or "").rstrip(". ")
        backend = _text(paused.get("backend"))
        banner = (f"Paused ({code}): {message}. Every file stays in its inbox; fix the key or account, "
                  "then reload the service.") if backend is None else (
                  f"Backend {backend} paused ({code}): {message}. Its files stay in their inboxes (or go "
                  "to their fallback_backend); fix the key or account, then reload the service.")  # fmt: skip
    elif state_full is not None:
        banner = f"Paused: the journal's disk is full ({state_full}). Nothing is taken until there is room."
    if banner is not None:
        return "Paused", "error", banner
    down = [line.name for line in inboxes if line.unreachable]
    if down:
        return f"Running, {len(down)} inbox(es) unreachable", "warning", None
    if any(line.output_full for line in inboxes):
        return "Running, an output folder is full", "warning", None
    if any(line.held for line in inboxes):
        return "Running, files held by an invalid rule file", "warning", None
    return "Running", "ok", None


def build_view(doc: Mapping[str, Any], now: float, refresh_s: int = 5) -> StatusView:
    """The page for ``doc`` at ``now`` (epoch seconds); missing or odd fields show as empty, never fail."""
    inboxes = _inbox_lines(doc.get("inboxes"))
    headline, level, banner = _headline(doc, inboxes)
    in_flight = []
    for item in doc.get("in_flight") or ():
        if isinstance(item, Mapping):
            in_flight.append(InFlightLine(
                inbox=str(item.get("inbox", "")), relpath=str(item.get("relpath", "")),
                progress=progress(item.get("chunks_done"), item.get("chunks_total"), item.get("mode")),
                elapsed=elapsed(_number(item.get("elapsed_s"))),
            ))  # fmt: skip
    billed = doc.get("billed")
    billed = billed if isinstance(billed, Mapping) else {}
    counts = doc.get("counts")
    counts = counts if isinstance(counts, Mapping) else {}
    return StatusView(
        headline=headline, level=level, banner=banner, inboxes=inboxes, in_flight=tuple(in_flight),
        recent_done=_finished(doc.get("recent_done"), now, failures=False),
        recent_failed=_finished(doc.get("recent_failures"), now, failures=True),
        billed_today=audio_duration(_number(billed.get("today_s"))),
        billed_month=audio_duration(_number(billed.get("month_s"))),
        counts=tuple(sorted((str(k), _count(v)) for k, v in counts.items())),
        budgets=_budget_lines(doc.get("budgets"), doc.get("waiting")),
        refresh_s=refresh_s,
    )  # fmt: skip
