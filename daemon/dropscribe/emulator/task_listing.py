"""``GET /tasks``: an account's file-transcription tasks, filtered and paged.

Query parameters as the notes list them (docs/dashscope.md, "File transcription"; the SDK's
``Tasks.list``): ``start_time``/``end_time`` as ``YYYYMMDDhhmmss`` (read as UTC here; the window may
span at most 24 h and defaults to the last 24 h), ``model_name``, ``status``, ``page_no`` (from 1)
and ``page_size`` (1 to 100, default 10). Other parameters the SDK may send (``api_key_id``,
``region``) are accepted and ignored. Only the caller's own account's tasks are listed.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from dropscribe.emulator.auth import authorize
from dropscribe.emulator.config import EmulatorConfig
from dropscribe.emulator.http_messages import HttpRequest, Reply, json_reply
from dropscribe.emulator.protocol import ApiError
from dropscribe.emulator.rate_limits import RateLimits
from dropscribe.emulator.request_log import Trace
from dropscribe.emulator.tasks import Task, TaskStore

_WINDOW = timedelta(hours=24)
_STATUSES = frozenset({"PENDING", "RUNNING", "SUSPENDED", "SUCCEEDED", "FAILED", "CANCELED"})
_MAX_PAGE_SIZE = 100


class TaskListing:
    """``GET /api/v1/tasks``."""

    def __init__(self, config: EmulatorConfig, tasks: TaskStore, limits: RateLimits) -> None:
        self._config = config
        self._tasks = tasks
        self._limits = limits

    def list(self, request: HttpRequest, trace: Trace) -> Reply:
        key_id = authorize(request, self._config.api_keys)
        self._limits.count_task_query(key_id)
        start, end = _window(request.query_value("start_time"), request.query_value("end_time"))
        model = request.query_value("model_name") or None
        status = request.query_value("status") or None
        if status is not None and status not in _STATUSES:
            raise _invalid(f"Parameter 'status' must be one of {', '.join(sorted(_STATUSES))}.")
        page_no = _int(request.query_value("page_no"), "page_no", default=1, low=1, high=None)
        page_size = _int(
            request.query_value("page_size"), "page_size", default=10, low=1, high=_MAX_PAGE_SIZE
        )
        trace.model = model

        now = self._tasks.clock()
        rows = [
            _row(task, task.status(now))
            for task in self._tasks.of_account(key_id)
            if start <= task.submitted_at <= end
            and (model is None or task.model == model)
            and (status is None or task.status(now) == status)
        ]
        rows.reverse()  # newest first
        first = (page_no - 1) * page_size
        payload = {
            "request_id": trace.reply_id(),
            "data": rows[first : first + page_size],
            "total": len(rows),
            "total_page": math.ceil(len(rows) / page_size),
            "page_no": page_no,
            "page_size": page_size,
        }
        return json_reply(200, payload)


def _row(task: Task, status: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "task_id": task.task_id,
        "model_name": task.model,
        "status": status,
        "gmt_create": _millis(task.submitted_at),
    }
    if status in ("SUCCEEDED", "FAILED", "CANCELED"):
        row["end_time"] = _millis(task.ended_at())
    return row


def _millis(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _invalid(message: str) -> ApiError:
    return ApiError(400, "InvalidParameter", message)


def _time(value: str, name: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise _invalid(f"Parameter '{name}' must be a time as YYYYMMDDhhmmss, not {value!r}.") from None


def _window(start_raw: str | None, end_raw: str | None) -> tuple[datetime, datetime]:
    end = _time(end_raw, "end_time") if end_raw else None
    start = _time(start_raw, "start_time") if start_raw else None
    if end is None:
        end = start + _WINDOW if start is not None else datetime.now(UTC)
    if start is None:
        start = end - _WINDOW
    if start > end:
        raise _invalid("Parameter 'start_time' must not be after 'end_time'.")
    if end - start > _WINDOW:
        raise _invalid("The time window from 'start_time' to 'end_time' may span at most 24 hours.")
    # The times have whole seconds; a task submitted during the end second still belongs to the window.
    return start, end + timedelta(seconds=1)


def _int(raw: str | None, name: str, *, default: int, low: int, high: int | None) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid(f"Parameter '{name}' must be a whole number, not {raw!r}.") from None
    if value < low or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"from {low} to {high}"
        raise _invalid(f"Parameter '{name}' must be {bounds}.")
    return value
