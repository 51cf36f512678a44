"""File transcription: submitting a task, looking at it, and downloading its result file."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from dropscribe.adapters.dashscope.connection import ApiConnection, resolve_header
from dropscribe.adapters.dashscope.failures import map_transport_errors, parse_or_raise
from dropscribe.adapters.ratelimit import Limiter, RateLimiter
from dropscribe.core.dashscope_wire import (
    TASKS_PATH,
    TRANSCRIPTION_PATH,
    make_filetrans_body,
    parse_submit,
    parse_task,
    parse_transcription,
)
from dropscribe.core.errors import AsrUnavailableError
from dropscribe.core.recognition import AsrOptions, AsrResult, ResultExpiredError, TaskState

# Half of the account-wide 20 QPS for task queries (docs/dashscope.md, "Rate limits"), so other
# tools of the account keep some.
_TASK_POLLS_PER_MINUTE = 600
_EXPIRED_RESULT_STATUSES = frozenset({403, 404, 410})


class FileTranscriptions:
    """Task calls over ``connection``.

    Submits wait on ``submits``, the limiter sync calls use too (they share the model's RPM quota);
    polls have their own pace.
    """

    def __init__(self, connection: ApiConnection, submits: Limiter) -> None:
        self._api = connection
        self._submits = submits
        self._polls = RateLimiter(_TASK_POLLS_PER_MINUTE)

    def submit(
        self, model: str, file_url: str, options: AsrOptions, *, oss_resolve: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> tuple[str, str | None]:  # fmt: skip
        """Start a task; returns ``(task_id, request_id)``. Every call that reaches the server is billed."""
        headers = {"X-DashScope-Async": "enable", **resolve_header(oss_resolve)}
        payload = self._api.call(
            "POST",
            TRANSCRIPTION_PATH,
            what="filetrans submit",
            body=make_filetrans_body(model, file_url, options),
            headers=headers,
            limiter=self._submits,
            before_send=before_send,
        )
        return parse_or_raise(parse_submit, payload, what="filetrans submit")

    def poll(self, task_id: str) -> TaskState:
        """One look at a task. A FAILED task is a normal answer: its code and message are in it."""
        if not task_id:
            raise ValueError("task_id must not be empty")
        payload = self._api.call(
            "GET",
            f"{TASKS_PATH}/{quote(task_id, safe='')}",
            what="task poll",
            limiter=self._polls,
        )
        return parse_or_raise(lambda body: parse_task(task_id, body), payload, what="task poll")

    def fetch_result(self, url: str) -> AsrResult:
        """Download and parse a finished task's result file (docs/dashscope.md, "File transcription").

        The URL is presigned, so it goes out without our Authorization header.
        Raises ``ResultExpiredError`` when the file is gone, ``AsrUnavailableError`` otherwise.
        """
        what = "transcription result"
        with map_transport_errors(what):
            response = self._api.get(url)
        if response.status_code in _EXPIRED_RESULT_STATUSES:
            raise ResultExpiredError(
                f"{what}: HTTP {response.status_code}: the result file is gone; resubmit the audio",
                remote_code=f"HTTP{response.status_code}",
            )
        if response.status_code != 200:
            # whatever went wrong, it is not about the audio: never let it fail the file
            raise AsrUnavailableError(
                f"{what}: HTTP {response.status_code}", remote_code=f"HTTP{response.status_code}"
            )
        try:
            payload = response.json()
        except ValueError as exc:
            raise AsrUnavailableError(f"{what}: not JSON", remote_code="Unknown") from exc
        return parse_or_raise(parse_transcription, payload, what=what)
