"""The file-transcription endpoints: submit a task, query it, cancel it.

A task's audio is fetched and measured at submit time; what is wrong with it becomes the failure the
task ends with once its run time has passed, as the real service reports it.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime
from typing import Any

from dropscribe.emulator import validation
from dropscribe.emulator.audio import (
    Blob,
    FetchError,
    TooLargeError,
    UndecodableAudioError,
    fetch_url,
    probe_audio,
)
from dropscribe.emulator.auth import authorize
from dropscribe.emulator.config import EmulatorConfig
from dropscribe.emulator.faults import TASK_KINDS, FaultBook
from dropscribe.emulator.http_messages import HttpRequest, Reply, json_reply
from dropscribe.emulator.media_formats import model_accepts
from dropscribe.emulator.object_store import ObjectStore
from dropscribe.emulator.protocol import ApiError, new_request_id
from dropscribe.emulator.rate_limits import RateLimits
from dropscribe.emulator.request_log import Trace
from dropscribe.emulator.result_files import ResultFiles
from dropscribe.emulator.tasks import Task, TaskStore, format_task_time
from dropscribe.emulator.transcripts import Transcriber, billed_seconds

_TASK_FAILURES = {
    "FILE_DOWNLOAD_FAILED": "The audio file cannot be downloaded.",
    "FILE_CHECK_FAILED": "The audio file format is not supported or the file is damaged.",
    "FILE_TOO_LARGE": "The audio file is too large.",
    "FILE_TOO_LONG": "The audio file is too long.",
    "SUCCESS_WITH_NO_VALID_FRAGMENT": "No valid speech was found in the audio.",
}


def _failure(code: str) -> tuple[str, str]:
    return (code, _TASK_FAILURES[code])


class FileTranscription:
    """``POST /services/audio/asr/transcription``, ``GET /tasks/{id}``, ``POST /tasks/{id}/cancel``."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        objects: ObjectStore,
        tasks: TaskStore,
        results: ResultFiles,
        limits: RateLimits,
        faults: FaultBook,
        transcriber: Transcriber | None = None,
    ) -> None:
        self._config = config
        self._objects = objects
        self._tasks = tasks
        self._results = results
        self._limits = limits
        self._faults = faults
        self._transcriber = transcriber or Transcriber()

    def submit(self, request: HttpRequest, trace: Trace) -> Reply:
        key_id = authorize(request, self._config.api_keys)
        if not request.header_enabled("X-DashScope-Async"):
            raise ApiError(400, "InvalidParameter", "current user api does not support synchronous calls")
        body = request.json
        model = validation.filetrans_model(body)
        trace.model = model
        self._limits.count_recognition(key_id, model)
        job = validation.parse_filetrans(body, model)
        trace.parameters = job.parameters
        trace.audio_kind = "oss" if job.file_url.startswith("oss://") else "http"
        task = Task(
            task_id=new_request_id(),
            model=model,
            file_url=job.file_url,
            options=job.options,
            submitted_at=datetime.now(UTC),
            submitted_mono=self._tasks.clock(),
            run_s=self._config.task_run_s,
            account=key_id,
        )
        trace.task_id = task.task_id
        self._load_audio(request, task, trace)
        if trace.fault == "truncate" and task.audio is not None:
            # the router consumed the fault and noted its kind: the task hears only the first half
            task.audio = dataclasses.replace(task.audio, duration_s=task.audio.duration_s / 2)
        fault = self._faults.take(request.path, lambda: model, lambda f: f.kind in TASK_KINDS)
        if fault is not None:
            trace.fault = fault.kind
            if fault.kind == "task_fail":
                code = fault.code or "FILE_DOWNLOAD_FAILED"
                message = fault.message or _TASK_FAILURES.get(code, "The task failed (emulated).")
                task.failure = (code, message)
            else:
                task.stuck = True
        self._tasks.add(task)
        payload = {
            "request_id": trace.reply_id(),
            "output": {"task_id": task.task_id, "task_status": "PENDING"},
        }
        reply = json_reply(200, payload)
        if fault is not None:
            reply.delay_s = fault.delay_s
        return reply

    def _load_audio(self, request: HttpRequest, task: Task, trace: Trace) -> None:
        """Fetch and measure the task's file now; problems become the task's eventual failure."""
        url = task.file_url
        blob: Blob
        if url.startswith("oss://"):
            obj = self._objects.get(url.removeprefix("oss://"))
            usable = obj is not None and obj.usable_by(task.model, task.account, time.time())
            # Without the resolve header the service cannot reach temporary storage
            # (docs/dashscope.md, "File transcription").
            if obj is None or not usable or not request.header_enabled("X-DashScope-OssResourceResolve"):
                task.failure = _failure("FILE_DOWNLOAD_FAILED")
                return
            blob = Blob.from_bytes(obj.data)
        else:
            try:
                blob = fetch_url(
                    url, limit=self._config.max_filetrans_bytes, timeout_s=self._config.fetch_timeout_s
                )
            except TooLargeError:
                task.failure = _failure("FILE_TOO_LARGE")
                return
            except FetchError:
                task.failure = _failure("FILE_DOWNLOAD_FAILED")
                return
        try:
            trace.audio_sha256 = blob.sha256
            trace.audio_bytes = blob.size
            info = probe_audio(blob.file, full_decode=False)
            if info.duration_s <= self._config.max_filetrans_duration_s:
                self._transcriber.listen(blob.file, blob.sha256)
        except UndecodableAudioError:
            task.failure = _failure("FILE_CHECK_FAILED")
            return
        finally:
            blob.close()
        trace.duration_s = round(info.duration_s, 3)
        if not model_accepts(task.model, info.format):
            # Outside the model's documented list: the task fails as for a file it cannot read.
            task.failure = _failure("FILE_CHECK_FAILED")
            return
        if info.duration_s > self._config.max_filetrans_duration_s:
            task.failure = _failure("FILE_TOO_LONG")
            return
        task.audio = info
        task.sha256 = blob.sha256

    def query(self, request: HttpRequest, trace: Trace, task_id: str) -> Reply:
        key_id = authorize(request, self._config.api_keys)
        self._limits.count_task_query(key_id)
        trace.task_id = task_id
        rid = trace.reply_id()
        task = self._tasks.get(task_id)
        if task is not None and task.account != key_id:
            task = None  # another account's task is invisible, as an unknown one
        if task is None:
            return json_reply(
                200, {"request_id": rid, "output": {"task_id": task_id, "task_status": "UNKNOWN"}}
            )
        trace.model = task.model
        status = task.status(self._tasks.clock())
        output: dict[str, Any] = {
            "task_id": task_id,
            "task_status": status,
            "submit_time": format_task_time(task.submitted_at),
        }
        payload: dict[str, Any] = {"request_id": rid, "output": output}
        if status in ("RUNNING", "SUCCEEDED", "FAILED"):
            output["scheduled_time"] = format_task_time(task.scheduled_at())
        if status in ("SUCCEEDED", "FAILED", "CANCELED"):
            output["end_time"] = format_task_time(task.ended_at())
        if status == "FAILED" and task.failure is not None:
            output["code"], output["message"] = task.failure
        if status == "SUCCEEDED" and task.audio is not None:
            output["result"] = {"transcription_url": self._results.url_for(request.origin, task)}
            channels = len(task.options.channel_ids)
            payload["usage"] = {"seconds": billed_seconds(task.audio.duration_s) * channels}
        return json_reply(200, payload)

    def cancel(self, request: HttpRequest, trace: Trace, task_id: str) -> Reply:
        key_id = authorize(request, self._config.api_keys)
        self._limits.count_task_query(key_id)
        trace.task_id = task_id
        task = self._tasks.get(task_id)
        if task is not None and task.account != key_id:
            task = None
        if task is not None:
            trace.model = task.model
        if task is None or not self._tasks.cancel(task_id):
            state = task.status(self._tasks.clock()) if task else "UNKNOWN"
            raise ApiError(
                400,
                "UnsupportedOperation",
                f"Only PENDING tasks can be canceled; task {task_id} is {state}.",
            )
        return json_reply(
            200,
            {
                "request_id": trace.reply_id(),
                "output": {"task_id": task_id, "task_status": "CANCELED"},
            },
        )
