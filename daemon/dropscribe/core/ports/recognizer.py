"""The recognizer port: what the pipeline asks of a speech-recognition backend.

Sync recognition of one clip, and file transcription as a task that is submitted once, polled, and
whose result is fetched when it succeeded. ``DashScopeClient`` is the implementation today.

Contract for every implementation:

* no call retries; a failure raises one of :mod:`dropscribe.core.errors`: a ``TransientError``
  (try again later), ``RemoteRejectedError`` (this input is refused for good) or ``AccountError``
  (no input can succeed until someone acts);
* ``before_send`` runs once the call may go out (concurrency and rate limits granted), right before
  the request leaves: raising there sends, and bills, nothing;
* a submit that reaches the server is a new, billed task, so it is never repeated silently;
* a result that can no longer be fetched raises
  :class:`~dropscribe.core.recognition.ResultExpiredError`: the task id is useless now.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from dropscribe.core.recognition import AsrOptions, AsrResult, InlineAudio, TaskState


class Recognizer(Protocol):
    def recognize(
        self, model: str, audio: str | InlineAudio, options: AsrOptions, *, oss_resolve: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> AsrResult:  # fmt: skip
        """Transcribe one clip given as a URL the backend reads (https, ``oss://`` or ``data:``), or as a
        file whose bytes go inside the request (read as it is sent).

        ``oss_resolve`` says the URL is a temporary ``oss://`` one that needs resolving.
        """
        ...

    def submit_filetrans(
        self, model: str, file_url: str, options: AsrOptions, *, oss_resolve: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> tuple[str, str | None]:  # fmt: skip
        """Start a file-transcription task; returns ``(task_id, request_id)``."""
        ...

    def poll_task(self, task_id: str) -> TaskState:
        """One look at a task; a failed task is a normal answer carrying its code and message."""
        ...

    def fetch_transcription(self, url: str) -> AsrResult:
        """The result of a succeeded task, from the URL its ``TaskState`` gave (no request id, no usage)."""
        ...
