"""File transcription: one task for the whole recording, submitted once and waited for.

The task id is journaled as soon as it is known, so a restart waits for the same task instead of paying
for a second one.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import BinaryIO

from dropscribe.adapters import audio
from dropscribe.core.errors import AsrUnavailableError, RemoteRejectedError
from dropscribe.core.formats import FILETRANS, FormatPolicy, policy_for
from dropscribe.core.ports.journal import Journal
from dropscribe.core.ports.recognizer import Recognizer
from dropscribe.core.ports.storage import Storage
from dropscribe.core.recognition import AsrOptions, AsrResult, ResultExpiredError
from dropscribe.core.result_checks import TRUNCATED_OUTCOME, refusal, truncated_answers, truncation
from dropscribe.logs import get_logger
from dropscribe.service.crashpoints import crash_point
from dropscribe.service.format_retry import earns_reencoding, refused_again, staged_whole, takes_as_is
from dropscribe.service.objects import SourceObjects, Staged
from dropscribe.service.outcomes import ParkedError, park_if_stopping
from dropscribe.service.paid_answers import record_paid

POLL_FIRST_S, POLL_FACTOR, POLL_MAX_S = 2.0, 1.5, 30.0

log = get_logger()


class FiletransRecognition:
    def __init__(
        self, *, journal: Journal, client: Recognizer, storage: Storage, objects: SourceObjects,
        formats: FormatPolicy, stopping: threading.Event,
    ) -> None:  # fmt: skip
        self.journal = journal
        self.client = client
        self.storage = storage
        self.objects = objects
        # file transcription documents its own list of formats taken as they are
        self.formats = policy_for(formats, FILETRANS)
        self.stopping = stopping

    def run(
        self, key: str, sha: str, handle: BinaryIO, probe: audio.Probe, model: str, options: AsrOptions,
        staging: Path,
    ) -> AsrResult:  # fmt: skip
        try:
            return self._once(key, sha, handle, probe, model, options, staging)
        except RemoteRejectedError as exc:
            # a staged re-encoding of a file the policy takes as it is exists only after a refusal
            fallback = takes_as_is(self.formats, probe) and self._whole(staging).path.exists()
            if fallback:
                raise refused_again(None, exc, self.formats.transcode_to) from exc
            if not earns_reencoding(exc, sent_as_is=takes_as_is(self.formats, probe), chunk=0):
                raise
            first = exc
            staged_whole(handle, staging, self.formats)
        try:
            return self._once(key, sha, handle, probe, model, options, staging)
        except RemoteRejectedError as again:
            raise refused_again(first, again, self.formats.transcode_to) from again

    def sent_as(self, probe: audio.Probe, staging: Path) -> str | None:
        """The re-encoding the task fell back to after a format refusal; None when it did not."""
        if takes_as_is(self.formats, probe) and self._whole(staging).path.exists():
            return self.formats.transcode_to.container
        return None

    def _whole(self, staging: Path) -> Staged:
        return Staged.whole(staging, self.formats.transcode_to)

    def _once(
        self, key: str, sha: str, handle: BinaryIO, probe: audio.Probe, model: str, options: AsrOptions,
        staging: Path,
    ) -> AsrResult:  # fmt: skip
        task = self.journal.task(key)
        if task is None or task[0] is None:
            # no task id recorded: either never submitted, or the process died inside the submit
            # round trip; the latter is the one window where a second submission can happen
            task_id = self._submit(key, sha, handle, probe, model, options, staging)
        else:
            task_id = task[0]
        return self._checked(key, self._wait(key, task_id), probe.duration_s)

    def _submit(
        self, key: str, sha: str, handle: BinaryIO, probe: audio.Probe, model: str, options: AsrOptions,
        staging: Path,
    ) -> str:  # fmt: skip
        encoded = None
        if not takes_as_is(self.formats, probe) or self._whole(staging).path.exists():
            encoded = staged_whole(handle, staging, self.formats)
        url = self.objects.stored(sha, model, handle, probe, encoded)
        self.journal.task_submitting(key)
        crash_point("before_submit")
        call_id = self.journal.call_started(key, 0, "submit")
        try:
            task_id, request_id = self.client.submit_filetrans(
                model, url, options, oss_resolve=self.storage.oss_resolve,
                before_send=lambda: park_if_stopping(self.stopping),
            )  # fmt: skip
        except ParkedError:
            self.journal.forget_task(key)  # never sent: nothing to look for after the restart
            self.journal.call_ended(call_id, "parked", None)
            raise
        except RemoteRejectedError as exc:  # refused at the door: no task to wait for, nothing paid
            self.journal.forget_task(key)
            self.journal.call_ended(call_id, type(exc).__name__, exc.request_id)
            raise
        crash_point("after_submit")
        record_paid(
            lambda: self.journal.task_submitted(key, task_id, request_id, call_id=call_id),
            self.stopping, task_id=task_id, request_id=request_id,
        )  # fmt: skip
        log.info("task_submitted", task_id=task_id, request_id=request_id)
        crash_point("after_task_stored")
        return task_id

    def _checked(self, key: str, answer: AsrResult, sent_s: float) -> AsrResult:
        """The task's answer, unless it covers less audio than was sent: then the next try submits anew."""
        # a backend without a seconds report gives 0 here: nothing to hold the answer against
        short = truncation(sent_s, answer.usage_seconds or None)
        if short is None:
            return answer
        self.journal.forget_task(key)
        calls = self.journal.calls_of(key)
        submit = next((c for c in reversed(calls) if c.kind == "submit" and c.outcome == "submitted"), None)
        if submit is not None:  # the submission is where the call history shows what its answer was worth
            self.journal.call_ended(submit.id, TRUNCATED_OUTCOME, submit.request_id)
            calls = self.journal.calls_of(key)
        log.warning("answer_truncated", chunk=0, request_id=answer.request_id, sent_s=round(sent_s, 3),
                    usage_seconds=answer.usage_seconds)  # fmt: skip
        raise refusal(short, truncated_answers(calls, 0), answer.request_id)

    def _wait(self, key: str, task_id: str) -> AsrResult:
        delay = POLL_FIRST_S
        while True:
            park_if_stopping(self.stopping)
            state = self.client.poll_task(task_id)
            if state.status == "SUCCEEDED" and state.transcription_url:
                try:
                    result = self.client.fetch_transcription(state.transcription_url)
                except ResultExpiredError:
                    self.journal.forget_task(key)
                    raise
                return AsrResult(
                    text=result.text, language=result.language, emotion=result.emotion,
                    request_id=state.request_id or result.request_id,
                    usage_seconds=state.usage_seconds or result.usage_seconds,
                    sentences=result.sentences,
                )  # fmt: skip
            if state.status in ("FAILED", "CANCELED", "UNKNOWN"):
                self.journal.forget_task(key)
                if state.status == "FAILED" and state.code not in ("FILE_DOWNLOAD_FAILED", None):
                    raise RemoteRejectedError(state.code or "FAILED", state.message or "", state.request_id)
                raise AsrUnavailableError(
                    f"task {state.status.lower()}: {state.code or ''} {state.message or ''}".strip(),
                    remote_code=state.code,
                )
            if self.stopping.wait(delay):
                raise ParkedError()
            delay = min(POLL_MAX_S, delay * POLL_FACTOR)
