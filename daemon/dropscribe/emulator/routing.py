"""One request in, one :class:`Reply` and its :class:`Trace` out: faults first, then the endpoint.

:class:`Router` also builds the endpoints and the stores they share, one set per emulator.
"""

from __future__ import annotations

import traceback
from datetime import UTC, datetime
from pathlib import Path

import structlog

from dropscribe.emulator.admin import Admin
from dropscribe.emulator.config import EmulatorConfig
from dropscribe.emulator.fault_replies import fault_reply
from dropscribe.emulator.faults import STREAM_KINDS, TASK_KINDS, Fault, FaultBook
from dropscribe.emulator.file_transcription import FileTranscription
from dropscribe.emulator.http_messages import HttpRequest, Reply, error_reply, json_error
from dropscribe.emulator.object_store import ObjectStore, UploadPolicy
from dropscribe.emulator.openai_transcription import OpenAITranscription, openai_fault_reply, openai_model_of
from dropscribe.emulator.paths import (
    ADMIN_PREFIX,
    CANCEL_RE,
    GENERATION_PATH,
    OSS_PATH,
    RESULT_RE,
    TASK_RE,
    TASKS_PATH,
    TRANSCRIPTION_PATH,
    UPLOADS_PATH,
    is_openai,
    is_oss_like,
    task_id_in,
)
from dropscribe.emulator.protocol import ApiError, OssError, new_request_id
from dropscribe.emulator.rate_limits import RateLimits
from dropscribe.emulator.request_log import RequestLog, Trace, redact_headers
from dropscribe.emulator.result_files import ResultFiles
from dropscribe.emulator.signing import Signer
from dropscribe.emulator.sync_recognition import SyncRecognition, wants_stream
from dropscribe.emulator.task_listing import TaskListing
from dropscribe.emulator.tasks import TaskStore
from dropscribe.emulator.temporary_upload import TemporaryUpload
from dropscribe.emulator.transcripts import Transcriber

log = structlog.get_logger()


class Router:
    """All endpoints behind one entry point, and the state they share."""

    def __init__(self, config: EmulatorConfig, transcriber: Transcriber | None = None) -> None:
        transcriber = transcriber or Transcriber()
        self.faults = FaultBook()
        self.request_log = RequestLog(Path(config.log_path) if config.log_path else None)
        self._tasks = TaskStore()
        self._limits = RateLimits(config.requests_per_minute, config.task_qps, config.policy_qps)
        objects = ObjectStore()
        signer = Signer()
        self._results = ResultFiles(self._tasks, signer, transcriber)
        self._sync = SyncRecognition(config, objects, self._limits, transcriber)
        self._filetrans = FileTranscription(
            config,
            objects=objects,
            tasks=self._tasks,
            results=self._results,
            limits=self._limits,
            faults=self.faults,
            transcriber=transcriber,
        )
        self._uploads = TemporaryUpload(config, objects, signer, self._limits)
        self._listing = TaskListing(config, self._tasks, self._limits)
        self._admin = Admin(self.request_log, self.faults, self.reset)
        self._openai = OpenAITranscription(config, transcriber)

    def refuse(self, request: HttpRequest, error: ApiError) -> tuple[Reply, Trace]:
        """Answer a request whose body could not even be read."""
        trace = _trace(request)
        reply = error_reply(error, trace.reply_id())
        trace.status, trace.code = reply.status, reply.error_code
        return reply, trace

    def handle(self, request: HttpRequest) -> tuple[Reply, Trace]:
        trace = _trace(request)
        try:
            reply = self._route(request, trace)
        except (ApiError, OssError) as exc:
            reply = error_reply(exc, trace.reply_id())
        except Exception as exc:  # noqa: BLE001 - an emulator bug must still answer like the service
            # A plain traceback, never one with local variables: those may hold the API key.
            log.error(
                "emulator.internal_error",
                method=request.method,
                path=request.path,
                traceback="".join(traceback.format_exception(exc)),
            )
            reply = json_error(500, "InternalError", "Emulator internal error.", trace.reply_id())
        trace.status = None if reply.reset else reply.status
        trace.code = reply.error_code
        return reply, trace

    def record(self, trace: Trace) -> None:
        # A reset empties the in-memory log, itself included; the JSONL file keeps everything.
        keep = not (trace.path == "/_emulator/reset" and trace.status == 200)
        self.request_log.append(trace.to_dict(), keep_in_memory=keep)
        log.debug(
            "emulator.request",
            method=trace.method,
            path=trace.path,
            status=trace.status,
            code=trace.code,
            request_id=trace.request_id,
            fault=trace.fault,
        )

    def reset(self) -> None:
        """Forget the request log, the faults and the rate-limit windows (tasks and uploads stay)."""
        self.request_log.clear()
        self.faults.clear()
        self._limits.clear()

    def _route(self, request: HttpRequest, trace: Trace) -> Reply:
        path = request.path
        if path.startswith(ADMIN_PREFIX) and not is_oss_like(path):
            return self._admin.handle(request)
        fault = self.faults.take(
            path,
            lambda: self._peek_model(request),
            lambda f: f.kind not in TASK_KINDS and (f.kind not in STREAM_KINDS or wants_stream(request)),
        )
        stream_fault: Fault | None = None
        if fault is not None:
            trace.fault = fault.kind
            trace.model = self._peek_model(request)
            openai_reply = openai_fault_reply(fault, trace.reply_id()) if is_openai(path) else None
            reply = openai_reply or fault_reply(fault, trace.reply_id(), oss_like=is_oss_like(path))
            if reply is not None:
                reply.delay_s = fault.delay_s
                return reply
            if fault.kind in STREAM_KINDS:
                stream_fault = fault
        try:
            reply = self._dispatch(request, trace, stream_fault)
        except (ApiError, OssError) as exc:
            # Caught here rather than in handle() so that a delay fault also slows error answers.
            reply = error_reply(exc, trace.reply_id())
        if fault is not None:
            reply.delay_s = max(reply.delay_s, fault.delay_s)
        return reply

    def _dispatch(self, request: HttpRequest, trace: Trace, stream_fault: Fault | None) -> Reply:
        path, method = request.path, request.method
        if is_openai(path):
            return self._openai.handle(request, trace)
        if path == GENERATION_PATH:
            _require_method(method, "POST")
            return self._sync.generation(request, trace, stream_fault)
        if path == TRANSCRIPTION_PATH:
            _require_method(method, "POST")
            return self._filetrans.submit(request, trace)
        if path == UPLOADS_PATH:
            _require_method(method, "GET")
            return self._uploads.policy(request, trace)
        if path == OSS_PATH or path.startswith(OSS_PATH + "/"):
            _require_oss_method(method, "POST")
            return self._uploads.post_object(request, trace)
        if path == TASKS_PATH:
            _require_method(method, "GET")
            return self._listing.list(request, trace)
        if match := CANCEL_RE.fullmatch(path):
            _require_method(method, "POST")
            return self._filetrans.cancel(request, trace, match.group(1))
        if match := TASK_RE.fullmatch(path):
            _require_method(method, "GET")
            return self._filetrans.query(request, trace, match.group(1))
        if match := RESULT_RE.fullmatch(path):
            _require_oss_method(method, "GET")
            return self._results.serve(request, trace, match.group(1))
        raise ApiError(404, "InvalidURL", f"No such endpoint: {method} {path}")

    def _peek_model(self, request: HttpRequest) -> str | None:
        """The model a request is about, for fault matching and the log, without validating it."""
        path = request.path
        try:
            if path == UPLOADS_PATH:
                return request.query_value("model")
            task_id = task_id_in(path)
            if task_id is not None:
                task = self._tasks.get(task_id)
                return task.model if task else None
            if is_openai(path):
                return openai_model_of(request)
            if is_oss_like(path):
                policy = next((f.text for f in request.form if f.name == "policy"), None)
                return UploadPolicy.decode(policy).model if policy else None
            body = request.json
        except (ApiError, OssError, ValueError):
            return None
        model = body.get("model") if isinstance(body, dict) else None
        return model if isinstance(model, str) else None


def _trace(request: HttpRequest) -> Trace:
    return Trace(
        time=datetime.now(UTC).isoformat(timespec="milliseconds"),
        method=request.method,
        path=request.path,
        headers=redact_headers(request.headers),
        request_id=new_request_id(),
    )


def _require_method(method: str, wanted: str) -> None:
    if method != wanted:
        raise ApiError(405, "MethodNotAllowed", f"Use {wanted} for this endpoint.")


def _require_oss_method(method: str, wanted: str) -> None:
    if method != wanted:
        raise OssError(405, "MethodNotAllowed", "The specified method is not allowed.")
