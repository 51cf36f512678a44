"""``DashScopeClient``: Qwen3-ASR sync calls, file-transcription tasks and the temporary upload.

The client does not retry: every failure becomes one of the errors of ``core.errors``, chosen by
``core.retry.classify``, and the service decides when to try again. It is meant to be shared by
the threads of a worker pool: one connection pool, one concurrency cap and one requests-per-minute
limiter for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx

from dropscribe.adapters.dashscope.connection import ApiConnection, resolve_header
from dropscribe.adapters.dashscope.failures import parse_or_raise
from dropscribe.adapters.dashscope.filetrans import FileTranscriptions
from dropscribe.adapters.dashscope.inline_body import InlineBody
from dropscribe.adapters.dashscope.upload import TemporaryUploads
from dropscribe.adapters.ratelimit import Limiter, RateLimiter
from dropscribe.core.dashscope_wire import (
    GENERATION_PATH,
    UploadPolicy,
    generation_body_around,
    make_generation_body,
    parse_generation,
)
from dropscribe.core.recognition import AsrOptions, AsrResult, InlineAudio, TaskState

if TYPE_CHECKING:
    from dropscribe.core.ports.recognizer import Recognizer


class DashScopeClient:
    """Synchronous DashScope client, safe to share between threads.

    ``concurrency`` caps simultaneous API calls; ``requests_per_minute`` (0 = unlimited) spaces
    recognition requests (sync calls and task submits, which share the model's RPM quota). Task
    polls have their own pace, half the account's 20 QPS. ``on_request(seconds, model)`` is told
    how long each recognition request took (for the latency histogram). ``transport`` is for tests.
    ``limiter`` replaces ``requests_per_minute`` (an ``auto`` rate).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 300.0,
        requests_per_minute: int = 0,
        concurrency: int = 4,
        transport: httpx.BaseTransport | None = None,
        on_request: Callable[[float, str], None] | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        self._on_request = on_request
        self._api = ApiConnection(
            base_url, api_key, timeout_s=timeout_s, concurrency=concurrency, transport=transport
        )
        self.base_url = self._api.base_url
        self._rpm: Limiter = limiter if limiter is not None else RateLimiter(requests_per_minute)
        self._tasks = FileTranscriptions(self._api, self._rpm)
        self._uploads = TemporaryUploads(self._api)

    def __repr__(self) -> str:
        return f"DashScopeClient(base_url={self.base_url!r})"

    def rate_status(self) -> dict[str, object]:
        """The recognition rate: configured, or found (``auto``)."""
        return self._rpm.snapshot()

    def __enter__(self) -> DashScopeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._api.close()

    # -- sync recognition ------------------------------------------------------------------

    def recognize(
        self, model: str, audio: str | InlineAudio, options: AsrOptions, *, oss_resolve: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> AsrResult:  # fmt: skip
        """Transcribe one clip (an https, ``oss://`` or ``data:`` URL, or a file sent as a ``data:`` URL
        read while the request goes out) with a sync model.

        ``oss_resolve`` must be True for ``oss://`` temporary URLs. Raises ``AsrUnavailableError``
        (retry), ``RemoteRejectedError`` (the input is refused for good) or ``AccountError``.
        ``before_send`` runs after the concurrency slot and the rate limit are granted, right before
        the request leaves: the last moment to decide not to send (and pay) at all, by raising.
        """
        on_request = self._on_request
        if isinstance(audio, InlineAudio):
            before, after = generation_body_around(model, audio, options)
            body: dict[str, Any] | InlineBody = InlineBody(before, audio, after)
        else:
            body = make_generation_body(model, audio, options)
        payload = self._api.call(
            "POST",
            GENERATION_PATH,
            what="recognition",
            body=body,
            headers=resolve_header(oss_resolve),
            limiter=self._rpm,
            before_send=before_send,
            on_elapsed=None if on_request is None else lambda seconds: on_request(seconds, model),
        )
        return parse_or_raise(parse_generation, payload, what="recognition")

    # -- file transcription ----------------------------------------------------------------

    def submit_filetrans(
        self, model: str, file_url: str, options: AsrOptions, *, oss_resolve: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> tuple[str, str | None]:  # fmt: skip
        """Start a file-transcription task; returns ``(task_id, request_id)``.

        Not idempotent: every call that reaches the server is a new, billed task. The caller must
        record the task id before anything else and must not call again after a lost answer
        without first looking for the task it may have created.
        """
        return self._tasks.submit(model, file_url, options, oss_resolve=oss_resolve, before_send=before_send)

    def poll_task(self, task_id: str) -> TaskState:
        """One look at a task. A FAILED task is a normal answer: its code and message are in it."""
        return self._tasks.poll(task_id)

    def fetch_transcription(self, url: str) -> AsrResult:
        """Download and parse a finished task's result file.

        The result has no request id or usage: take those from the ``TaskState`` that gave the URL.
        Raises ``ResultExpiredError`` when the file is gone, ``AsrUnavailableError`` otherwise.
        """
        return self._tasks.fetch_result(url)

    # -- temporary upload ------------------------------------------------------------------

    def get_upload_policy(self, model: str) -> UploadPolicy:
        """The upload certificate for ``model``, from cache while it has 30 s or more to live.

        Raises ``StorageUnavailableError`` (retry) or ``AccountError``.
        """
        return self._uploads.policy(model)

    def upload_temp(
        self,
        model: str,
        name: str,
        data: BinaryIO | bytes,
        *,
        content_type: str | None = None,
    ) -> str:
        """Upload to DashScope's temporary storage for ``model``; returns the ``oss://`` URL.

        ``name`` must be ASCII-safe (letters, digits, ``._-``, ``/`` between segments) and derived
        from the content, so a repeated upload hits the same key: the store forbids overwrites and
        answers "already exists", which is then success. A stream is sent whole, from its start.
        The URL works for 48 h, only for ``model`` and only with ``oss_resolve=True``.
        Raises ``StorageUnavailableError``, ``AccountError`` or, when the file is larger than the
        certificate allows, ``InputRejectedError("too_large")``.
        """
        return self._uploads.upload(model, name, data, content_type=content_type)


if TYPE_CHECKING:
    # mypy proves here, on every run, that the client is what the pipeline's port asks for
    _IS_A_RECOGNIZER: type[Recognizer] = DashScopeClient
