"""The emulated endpoints: one :class:`HttpRequest` in, one :class:`Reply` and its :class:`Trace` out.

No sockets here; :mod:`dropscribe.emulator.server` moves bytes, this module decides what they say.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from datetime import timedelta
from html import escape
from http import HTTPStatus
from pathlib import Path
from typing import Any

import structlog

from dropscribe.emulator import validation
from dropscribe.emulator.audio import (
    AudioInfo,
    Blob,
    FetchError,
    TooLargeError,
    UndecodableAudioError,
    decode_data_url,
    fetch_url,
    probe_audio,
)
from dropscribe.emulator.config import EmulatorConfig
from dropscribe.emulator.faults import STREAM_KINDS, TASK_KINDS, Fault, FaultBook, faults_from_json
from dropscribe.emulator.multipart import FormField, parse_form
from dropscribe.emulator.protocol import (
    AUDIO_TOKENS_PER_SECOND,
    ApiError,
    OssError,
    is_qwen_audio_asr,
    new_request_id,
)
from dropscribe.emulator.state import (
    ObjectStore,
    RateLimiter,
    RequestLog,
    Signer,
    StoredObject,
    Task,
    TaskStore,
    Trace,
    UploadPolicy,
    format_task_time,
    redact_headers,
    utc_now,
)
from dropscribe.emulator.transcripts import (
    approx_tokens,
    billed_seconds,
    emulated_text,
    sentences,
    split_for_stream,
)

log = structlog.get_logger()

API = "/api/v1"
GENERATION_PATH = f"{API}/services/aigc/multimodal-generation/generation"
TRANSCRIPTION_PATH = f"{API}/services/audio/asr/transcription"
UPLOADS_PATH = f"{API}/uploads"
OSS_PATH = "/_emulator/oss"
RESULTS_PREFIX = "/_emulator/results/"
_TASK_RE = re.compile(re.escape(API) + r"/tasks/([^/]+)")
_CANCEL_RE = re.compile(re.escape(API) + r"/tasks/([^/]+)/cancel")
_RESULT_RE = re.compile(re.escape(RESULTS_PREFIX) + r"([^/]+)\.json")

JSON_TYPE = "application/json"
OSS_ACCESS_KEY_ID = "LTAI5tEmulatorNotARealKey"
_UPLOAD_FIELDS = (
    "OSSAccessKeyId",
    "Signature",
    "policy",
    "key",
    "x-oss-object-acl",
    "x-oss-forbid-overwrite",
    "success_action_status",
    "file",
)
_TASK_FAILURES = {
    "FILE_DOWNLOAD_FAILED": "The audio file cannot be downloaded.",
    "FILE_CHECK_FAILED": "The audio file format is not supported or the file is damaged.",
    "FILE_TOO_LARGE": "The audio file is too large.",
    "FILE_TOO_LONG": "The audio file is too long.",
    "SUCCESS_WITH_NO_VALID_FRAGMENT": "No valid speech was found in the audio.",
}


class HttpRequest:
    """A received request, with its body parsed lazily (and once) as JSON or as a form."""

    def __init__(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        origin: str,
    ) -> None:
        split = urllib.parse.urlsplit(target)
        self.method = method
        self.path = split.path
        self.query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        self.headers = headers
        self.body = body
        self.origin = origin

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def header_enabled(self, name: str) -> bool:
        return (self.header(name) or "").strip().lower() == "enable"

    @functools.cached_property
    def json(self) -> Any:
        """The body as JSON; raises ApiError when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "InvalidParameter", "The request body is not valid JSON.") from exc

    @functools.cached_property
    def form(self) -> list[FormField]:
        """The body as multipart/form-data; raises OssError when it is not."""
        try:
            return parse_form(self.header("Content-Type") or "", self.body)
        except ValueError as exc:
            raise OssError(400, "InvalidArgument", f"The form cannot be parsed: {exc}") from exc


@dataclass
class Reply:
    """What to send back. ``events`` makes it a server-sent-event stream, ``reset`` a dropped connection."""

    status: int
    body: bytes = b""
    content_type: str | None = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    events: list[bytes] | None = None
    reset: bool = False
    delay_s: float = 0.0
    error_code: str | None = None


def json_reply(status: int, payload: Any, error_code: str | None = None) -> Reply:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Reply(status, body, error_code=error_code)


def json_error(status: int, code: str, message: str, request_id: str) -> Reply:
    payload = {"request_id": request_id, "code": code, "message": message}
    return json_reply(status, payload, error_code=code)


def xml_error(status: int, code: str, message: str, request_id: str) -> Reply:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
        f"  <Code>{escape(code)}</Code>\n  <Message>{escape(message)}</Message>\n"
        f"  <RequestId>{request_id}</RequestId>\n  <HostId>dashscope-instant.emulator</HostId>\n"
        "</Error>\n"
    ).encode()
    return Reply(
        status,
        body,
        content_type="application/xml",
        headers={"x-oss-request-id": request_id},
        error_code=code,
    )


def error_reply(error: ApiError | OssError, request_id: str) -> Reply:
    if isinstance(error, OssError):
        return xml_error(error.status, error.code, error.message, request_id)
    return json_error(error.status, error.code, error.message, request_id)


def sse_event(number: int, event: str, status: int, payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, ensure_ascii=False)
    return f"id:{number}\nevent:{event}\n:HTTP_STATUS/{status}\ndata:{data}\n\n".encode()


def _key_id(key: str) -> str:
    # Rate windows are keyed by a digest so no structure holds the key itself.
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class _Audio:
    info: AudioInfo
    sha256: str


class Api:
    """All endpoints and the state behind them."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.faults = FaultBook()
        self.request_log = RequestLog(Path(config.log_path) if config.log_path else None)
        self.objects = ObjectStore()
        self.tasks = TaskStore()
        self.signer = Signer()
        self.rpm = RateLimiter(config.requests_per_minute, 60.0)
        self.task_rate = RateLimiter(config.task_qps, 1.0)
        self.policy_rate = RateLimiter(config.policy_qps, 1.0)

    @staticmethod
    def _trace(request: HttpRequest) -> Trace:
        return Trace(
            time=utc_now().isoformat(timespec="milliseconds"),
            method=request.method,
            path=request.path,
            headers=redact_headers(request.headers),
            request_id=new_request_id(),
        )

    def refuse(self, request: HttpRequest, error: ApiError) -> tuple[Reply, Trace]:
        """Answer a request whose body could not even be read."""
        trace = self._trace(request)
        reply = error_reply(error, self._rid(trace))
        trace.status, trace.code = reply.status, reply.error_code
        return reply, trace

    def handle(self, request: HttpRequest) -> tuple[Reply, Trace]:
        trace = self._trace(request)
        try:
            reply = self._route(request, trace)
        except (ApiError, OssError) as exc:
            reply = error_reply(exc, self._rid(trace))
        except Exception as exc:  # noqa: BLE001 - an emulator bug must still answer like the service
            # A plain traceback, never one with local variables: those may hold the API key.
            log.error(
                "emulator.internal_error",
                method=request.method,
                path=request.path,
                traceback="".join(traceback.format_exception(exc)),
            )
            reply = json_error(500, "InternalError", "Emulator internal error.", self._rid(trace))
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
        self.request_log.clear()
        self.faults.clear()
        self.rpm.clear()
        self.task_rate.clear()
        self.policy_rate.clear()

    @staticmethod
    def _rid(trace: Trace) -> str:
        return trace.request_id or new_request_id()

    def _route(self, request: HttpRequest, trace: Trace) -> Reply:
        path = request.path
        if path.startswith("/_emulator/") and not self._is_oss_like(path):
            return self._admin(request)
        fault = self.faults.take(
            path,
            lambda: self._peek_model(request),
            lambda f: f.kind not in TASK_KINDS and (f.kind not in STREAM_KINDS or self._is_stream(request)),
        )
        stream_fault: Fault | None = None
        if fault is not None:
            trace.fault = fault.kind
            trace.model = self._peek_model(request)
            reply = self._fault_reply(fault, request, trace)
            if reply is not None:
                reply.delay_s = fault.delay_s
                return reply
            if fault.kind in STREAM_KINDS:
                stream_fault = fault
        try:
            reply = self._dispatch(request, trace, stream_fault)
        except (ApiError, OssError) as exc:
            # Caught here rather than in handle() so that a delay fault also slows error answers.
            reply = error_reply(exc, self._rid(trace))
        if fault is not None:
            reply.delay_s = max(reply.delay_s, fault.delay_s)
        return reply

    def _dispatch(self, request: HttpRequest, trace: Trace, stream_fault: Fault | None) -> Reply:
        path, method = request.path, request.method
        if path == GENERATION_PATH:
            self._require_method(method, "POST")
            return self._generation(request, trace, stream_fault)
        if path == TRANSCRIPTION_PATH:
            self._require_method(method, "POST")
            return self._submit(request, trace)
        if path == UPLOADS_PATH:
            self._require_method(method, "GET")
            return self._policy(request, trace)
        if path == OSS_PATH or path.startswith(OSS_PATH + "/"):
            if method != "POST":
                raise OssError(405, "MethodNotAllowed", "The specified method is not allowed.")
            return self._upload(request, trace)
        if match := _CANCEL_RE.fullmatch(path):
            self._require_method(method, "POST")
            return self._cancel(request, trace, match.group(1))
        if match := _TASK_RE.fullmatch(path):
            self._require_method(method, "GET")
            return self._task(request, trace, match.group(1))
        if match := _RESULT_RE.fullmatch(path):
            if method != "GET":
                raise OssError(405, "MethodNotAllowed", "The specified method is not allowed.")
            return self._result(request, trace, match.group(1))
        raise ApiError(404, "InvalidURL", f"No such endpoint: {method} {path}")

    @staticmethod
    def _require_method(method: str, wanted: str) -> None:
        if method != wanted:
            raise ApiError(405, "MethodNotAllowed", f"Use {wanted} for this endpoint.")

    @staticmethod
    def _is_oss_like(path: str) -> bool:
        return path == OSS_PATH or path.startswith((OSS_PATH + "/", RESULTS_PREFIX))

    @staticmethod
    def _is_stream(request: HttpRequest) -> bool:
        return request.path == GENERATION_PATH and request.header_enabled("X-DashScope-SSE")

    def _peek_model(self, request: HttpRequest) -> str | None:
        """The model a request is about, for fault matching and the log, without validating it."""
        path = request.path
        try:
            if path == UPLOADS_PATH:
                return request.query_value("model")
            match = _TASK_RE.fullmatch(path) or _CANCEL_RE.fullmatch(path) or _RESULT_RE.fullmatch(path)
            if match:
                task = self.tasks.get(match.group(1))
                return task.model if task else None
            if self._is_oss_like(path):
                policy = next((f.text for f in request.form if f.name == "policy"), None)
                return UploadPolicy.decode(policy).model if policy else None
            body = request.json
        except (ApiError, OssError, ValueError):
            return None
        model = body.get("model") if isinstance(body, dict) else None
        return model if isinstance(model, str) else None

    def _fault_reply(self, fault: Fault, request: HttpRequest, trace: Trace) -> Reply | None:
        rid = self._rid(trace)
        kind = fault.kind
        reply: Reply
        if kind == "status":
            code = fault.error_code()
            status = fault.error_status(500)
            message = fault.error_message(code)
            if self._is_oss_like(request.path):
                reply = xml_error(status, code, message, rid)
            else:
                reply = json_error(status, code, message, rid)
        elif kind == "html":
            status = fault.status or 502
            try:
                title = f"{status} {HTTPStatus(status).phrase}"
            except ValueError:
                title = f"{status} Error"
            page = (
                f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
                f"<center><h1>{title}</h1></center>\r\n"
                "<hr><center>Tengine</center>\r\n</body>\r\n</html>\r\n"
            )
            reply = Reply(status, page.encode(), content_type="text/html")
        elif kind == "ok_error":
            code = fault.error_code("InternalError")
            payload = {"code": code, "message": fault.error_message(code), "request_id": rid}
            reply = json_reply(200, payload, error_code=code)
        elif kind == "malformed":
            text = json.dumps({"request_id": rid, "output": {"choices": [{"finish_reason": "stop"}]}})
            reply = Reply(200, text[: len(text) // 2].encode())
        elif kind == "reset":
            reply = Reply(0, reset=True)
        else:
            return None
        if fault.retry_after is not None:
            seconds = float(fault.retry_after)
            reply.headers["Retry-After"] = str(int(seconds)) if seconds.is_integer() else str(seconds)
        return reply

    def _admin(self, request: HttpRequest) -> Reply:
        path, method = request.path, request.method
        if path == "/_emulator/requests" and method == "GET":
            return json_reply(200, self.request_log.snapshot())
        if path == "/_emulator/faults" and method == "GET":
            return json_reply(200, [fault.to_dict() for fault in self.faults.active()])
        if path == "/_emulator/faults" and method == "POST":
            try:
                added = faults_from_json(request.json)
            except (ValueError, TypeError) as exc:
                raise ApiError(400, "InvalidParameter", f"Bad fault: {exc}") from exc
            for fault in added:
                self.faults.add(fault)
            return json_reply(200, {"added": [fault.to_dict() for fault in added]})
        if path == "/_emulator/faults" and method == "DELETE":
            self.faults.clear()
            return json_reply(200, {"cleared": True})
        if path == "/_emulator/reset" and method == "POST":
            self.reset()
            return json_reply(200, {"reset": True})
        raise ApiError(404, "InvalidURL", f"No such emulator endpoint: {method} {path}")

    def _authorize(self, request: HttpRequest) -> str:
        scheme, _, key = (request.header("Authorization") or "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(401, "InvalidApiKey")
        if self.config.api_keys is not None and key not in self.config.api_keys:
            raise ApiError(401, "InvalidApiKey")
        return _key_id(key)

    def _limit_rpm(self, key_id: str, model: str) -> None:
        if not self.rpm.allow((key_id, model)):
            raise ApiError(429, "Throttling.RateQuota")

    def _generation(self, request: HttpRequest, trace: Trace, stream_fault: Fault | None) -> Reply:
        key_id = self._authorize(request)
        body = request.json
        model = validation.sync_model(body)
        trace.model = model
        self._limit_rpm(key_id, model)
        sync = validation.parse_sync(body, model)
        trace.asr_options = sync.asr_options
        trace.context = sync.context
        trace.parameters = sync.parameters

        audio = self._sync_audio(request, sync.audio, model, trace)
        if audio.info.duration_s > self.config.max_sync_duration_s:
            raise ApiError(
                400,
                "InvalidParameter",
                f"The audio duration {audio.info.duration_s:.2f} s exceeds the maximum of "
                f"{self.config.max_sync_duration_s:g} s for model '{model}'.",
            )
        text = emulated_text(audio.info.duration_s, audio.sha256)
        language = sync.language or "en"
        usage = self._sync_usage(model, sync.context, text, audio.info.duration_s)
        rid = self._rid(trace)
        if self._is_stream(request):
            return self._stream(rid, text, language, usage, sync.incremental_output, stream_fault)
        message = {
            "role": "assistant",
            "content": [{"text": text}],
            "annotations": [_audio_info(language)],
        }
        payload = {
            "request_id": rid,
            "output": {"choices": [{"finish_reason": "stop", "message": message}]},
            "usage": usage,
        }
        return json_reply(200, payload)

    def _sync_audio(self, request: HttpRequest, url: str, model: str, trace: Trace) -> _Audio:
        limit = self.config.max_sync_bytes
        blob: Blob
        if url.startswith("data:"):
            trace.audio_kind = "data"
            # The limit applies to the encoded string as sent (§2.3), not only to the decoded bytes.
            if len(url) - url.find(",") - 1 > limit:
                raise ApiError(413, "BadRequest.TooLarge")
            try:
                blob = Blob.from_bytes(decode_data_url(url))
            except ValueError as exc:
                raise ApiError(400, "InvalidParameter", str(exc)) from exc
        elif url.startswith(("http://", "https://")):
            trace.audio_kind = "http"
            try:
                blob = fetch_url(url, limit=limit, timeout_s=self.config.fetch_timeout_s)
            except TooLargeError as exc:
                raise ApiError(413, "BadRequest.TooLarge") from exc
            except FetchError as exc:
                raise ApiError(415, "BadRequest.InputDownloadFailed", str(exc)) from exc
        elif url.startswith("oss://"):
            trace.audio_kind = "oss"
            blob = Blob.from_bytes(self._oss_object(request, url, model).data)
        else:
            raise ApiError(400, "InvalidURL")
        try:
            trace.audio_sha256 = blob.sha256
            trace.audio_bytes = blob.size
            if blob.size > limit:
                raise ApiError(413, "BadRequest.TooLarge")
            try:
                info = probe_audio(blob.file, full_decode=True)
            except UndecodableAudioError as exc:
                raise ApiError(415, "BadRequest.UnsupportedFileFormat") from exc
        finally:
            blob.close()
        trace.duration_s = round(info.duration_s, 3)
        return _Audio(info, blob.sha256)

    def _oss_object(self, request: HttpRequest, url: str, model: str) -> StoredObject:
        if not request.header_enabled("X-DashScope-OssResourceResolve"):
            raise ApiError(
                400,
                "InvalidParameter.DataInspection",
                "The media format is not supported or incorrect for the data inspection. "
                "(oss:// URLs need the header X-DashScope-OssResourceResolve: enable)",
            )
        obj = self.objects.get(url.removeprefix("oss://"))
        if obj is None or not obj.usable_by(model, time.time()):
            raise ApiError(
                400,
                "InvalidParameter.DataInspection",
                "The media format is not supported or incorrect for the data inspection. "
                "(no temporary file under this URL for this model, or it is older than 48 h)",
            )
        return obj

    @staticmethod
    def _sync_usage(model: str, context: str | None, text: str, duration_s: float) -> dict[str, Any]:
        seconds = billed_seconds(duration_s)
        output_tokens = approx_tokens(text)
        if is_qwen_audio_asr(model):
            audio_tokens = seconds * AUDIO_TOKENS_PER_SECOND
            return {
                "input_tokens": audio_tokens,
                "output_tokens": output_tokens,
                "audio_tokens": audio_tokens,
            }
        return {
            "input_tokens_details": {"text_tokens": approx_tokens(context or "")},
            "output_tokens_details": {"text_tokens": output_tokens},
            "seconds": seconds,
        }

    @staticmethod
    def _stream(
        rid: str,
        text: str,
        language: str,
        usage: dict[str, Any],
        incremental: bool,
        fault: Fault | None,
    ) -> Reply:
        pieces = split_for_stream(text)
        events: list[bytes] = []
        sent = ""
        for number, piece in enumerate(pieces, start=1):
            last = number == len(pieces)
            sent += piece
            message: dict[str, Any] = {
                "role": "assistant",
                "content": [{"text": piece if incremental else sent}],
            }
            if last:
                message["annotations"] = [_audio_info(language)]
            choice = {"finish_reason": "stop" if last else "null", "message": message}
            payload = {"output": {"choices": [choice]}, "usage": usage, "request_id": rid}
            events.append(sse_event(number, "result", 200, payload))
        error_code: str | None = None
        if fault is not None:
            # Keep only what precedes the final event, so the client never sees finish_reason "stop".
            events = events[: min(1, len(events) - 1)]
            if fault.kind == "sse_error":
                error_code = fault.error_code("InternalError")
                error = {
                    "code": error_code,
                    "message": fault.error_message(error_code),
                    "request_id": rid,
                }
                status = fault.error_status(500)
                events.append(sse_event(len(events) + 1, "error", status, error))
        return Reply(
            200,
            content_type="text/event-stream;charset=UTF-8",
            headers={"Cache-Control": "no-cache"},
            events=events,
            error_code=error_code,
        )

    def _submit(self, request: HttpRequest, trace: Trace) -> Reply:
        key_id = self._authorize(request)
        if not request.header_enabled("X-DashScope-Async"):
            raise ApiError(400, "InvalidParameter", "current user api does not support synchronous calls")
        body = request.json
        model = validation.filetrans_model(body)
        trace.model = model
        self._limit_rpm(key_id, model)
        job = validation.parse_filetrans(body, model)
        trace.parameters = job.parameters
        trace.audio_kind = "oss" if job.file_url.startswith("oss://") else "http"
        task = Task(
            task_id=new_request_id(),
            model=model,
            file_url=job.file_url,
            options=job.options,
            submitted_at=utc_now(),
            submitted_mono=self.tasks.clock(),
            run_s=self.config.task_run_s,
        )
        trace.task_id = task.task_id
        self._load_task_audio(request, task, trace)
        fault = self.faults.take(request.path, lambda: model, lambda f: f.kind in TASK_KINDS)
        if fault is not None:
            trace.fault = fault.kind
            if fault.kind == "task_fail":
                code = fault.code or "FILE_DOWNLOAD_FAILED"
                message = fault.message or _TASK_FAILURES.get(code, "The task failed (emulated).")
                task.failure = (code, message)
            else:
                task.stuck = True
        self.tasks.add(task)
        payload = {
            "request_id": self._rid(trace),
            "output": {"task_id": task.task_id, "task_status": "PENDING"},
        }
        reply = json_reply(200, payload)
        if fault is not None:
            reply.delay_s = fault.delay_s
        return reply

    def _load_task_audio(self, request: HttpRequest, task: Task, trace: Trace) -> None:
        """Fetch and measure the task's file now; problems become the task's eventual failure."""
        url = task.file_url
        blob: Blob
        if url.startswith("oss://"):
            obj = self.objects.get(url.removeprefix("oss://"))
            usable = obj is not None and obj.usable_by(task.model, time.time())
            # Without the resolve header the service cannot reach temporary storage (§4.1).
            if obj is None or not usable or not request.header_enabled("X-DashScope-OssResourceResolve"):
                task.failure = ("FILE_DOWNLOAD_FAILED", _TASK_FAILURES["FILE_DOWNLOAD_FAILED"])
                return
            blob = Blob.from_bytes(obj.data)
        else:
            try:
                blob = fetch_url(
                    url, limit=self.config.max_filetrans_bytes, timeout_s=self.config.fetch_timeout_s
                )
            except TooLargeError:
                task.failure = ("FILE_TOO_LARGE", _TASK_FAILURES["FILE_TOO_LARGE"])
                return
            except FetchError:
                task.failure = ("FILE_DOWNLOAD_FAILED", _TASK_FAILURES["FILE_DOWNLOAD_FAILED"])
                return
        try:
            trace.audio_sha256 = blob.sha256
            trace.audio_bytes = blob.size
            info = probe_audio(blob.file, full_decode=False)
        except UndecodableAudioError:
            task.failure = ("FILE_CHECK_FAILED", _TASK_FAILURES["FILE_CHECK_FAILED"])
            return
        finally:
            blob.close()
        trace.duration_s = round(info.duration_s, 3)
        if info.duration_s > self.config.max_filetrans_duration_s:
            task.failure = ("FILE_TOO_LONG", _TASK_FAILURES["FILE_TOO_LONG"])
            return
        task.audio = info
        task.sha256 = blob.sha256

    def _task(self, request: HttpRequest, trace: Trace, task_id: str) -> Reply:
        key_id = self._authorize(request)
        if not self.task_rate.allow(key_id):
            raise ApiError(429, "Throttling.RateQuota")
        trace.task_id = task_id
        rid = self._rid(trace)
        task = self.tasks.get(task_id)
        if task is None:
            return json_reply(
                200, {"request_id": rid, "output": {"task_id": task_id, "task_status": "UNKNOWN"}}
            )
        trace.model = task.model
        status = task.status(self.tasks.clock())
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
            output["result"] = {"transcription_url": self._result_url(request, task)}
            channels = len(task.options.channel_ids)
            payload["usage"] = {"seconds": billed_seconds(task.audio.duration_s) * channels}
        return json_reply(200, payload)

    def _cancel(self, request: HttpRequest, trace: Trace, task_id: str) -> Reply:
        key_id = self._authorize(request)
        if not self.task_rate.allow(key_id):
            raise ApiError(429, "Throttling.RateQuota")
        trace.task_id = task_id
        task = self.tasks.get(task_id)
        if task is not None:
            trace.model = task.model
        if not self.tasks.cancel(task_id):
            state = task.status(self.tasks.clock()) if task else "UNKNOWN"
            raise ApiError(
                400,
                "UnsupportedOperation",
                f"Only PENDING tasks can be canceled; task {task_id} is {state}.",
            )
        return json_reply(
            200,
            {
                "request_id": self._rid(trace),
                "output": {"task_id": task_id, "task_status": "CANCELED"},
            },
        )

    def _result_url(self, request: HttpRequest, task: Task) -> str:
        expires = int((task.ended_at() + timedelta(days=1)).timestamp())
        signature = self.signer.sign(f"{task.task_id}\n{expires}")
        query = urllib.parse.urlencode(
            {"Expires": expires, "OSSAccessKeyId": OSS_ACCESS_KEY_ID, "Signature": signature}
        )
        return f"{request.origin}{RESULTS_PREFIX}{task.task_id}.json?{query}"

    def _result(self, request: HttpRequest, trace: Trace, task_id: str) -> Reply:
        trace.task_id = task_id
        expires = request.query_value("Expires") or ""
        signature = request.query_value("Signature") or ""
        if not expires.isdigit() or not self.signer.verify(f"{task_id}\n{expires}", signature):
            raise OssError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if int(expires) < time.time():
            raise OssError(403, "AccessDenied", "Request has expired.")
        task = self.tasks.get(task_id)
        if (
            task is None
            or task.audio is None
            or task.sha256 is None
            or task.status(self.tasks.clock()) != "SUCCEEDED"
        ):
            raise OssError(404, "NoSuchKey", "The specified key does not exist.")
        trace.model = task.model
        language = task.options.language or "en"
        found = sentences(task.audio.duration_s, task.sha256, language, with_words=task.options.enable_words)
        transcripts = [
            {
                "channel_id": channel,
                "text": " ".join(sentence["text"] for sentence in found),
                "sentences": found,
            }
            for channel in task.options.channel_ids
        ]
        document = {
            "file_url": task.file_url,
            "audio_info": {"format": task.audio.format, "sample_rate": task.audio.sample_rate},
            "transcripts": transcripts,
        }
        return json_reply(200, document)

    def _policy(self, request: HttpRequest, trace: Trace) -> Reply:
        key_id = self._authorize(request)
        if request.query_value("action") != "getPolicy":
            raise ApiError(400, "InvalidParameter", "Parameter 'action' must be 'getPolicy'.")
        model = request.query_value("model")
        if not model:
            raise ApiError(400, "BadRequest.EmptyModel")
        trace.model = model
        if not self.policy_rate.allow((key_id, model)):
            raise ApiError(429, "Throttling.RateQuota")
        now = utc_now()
        upload_dir = f"dashscope-instant/{secrets.token_hex(16)}/{now:%Y-%m-%d}/{secrets.token_hex(8)}"
        policy = UploadPolicy(
            model=model,
            upload_dir=upload_dir,
            expires_at=now + timedelta(seconds=self.config.policy_expire_s),
            max_bytes=self.config.max_upload_mb * 1024 * 1024,
        )
        encoded = policy.encode()
        data = {
            "policy": encoded,
            "signature": self.signer.sign(encoded),
            "upload_dir": upload_dir,
            "upload_host": f"{request.origin}{OSS_PATH}",
            "expire_in_seconds": self.config.policy_expire_s,
            "max_file_size_mb": self.config.max_upload_mb,
            "capacity_limit_mb": 999999999,
            "oss_access_key_id": OSS_ACCESS_KEY_ID,
            "x_oss_object_acl": "private",
            "x_oss_forbid_overwrite": "true",
        }
        return json_reply(200, {"request_id": self._rid(trace), "data": data})

    def _upload(self, request: HttpRequest, trace: Trace) -> Reply:
        form = request.form
        fields: dict[str, FormField] = {}
        for item in form:
            fields.setdefault(item.name, item)
        for name in _UPLOAD_FIELDS:
            if name not in fields:
                raise OssError(400, "InvalidArgument", f"The form field {name} is missing.")
        if form[-1].name != "file":
            raise OssError(400, "InvalidArgument", "The file must be the last field of the form.")
        if fields["OSSAccessKeyId"].text != OSS_ACCESS_KEY_ID:
            raise OssError(
                403,
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records.",
            )
        encoded = fields["policy"].text
        if not self.signer.verify(encoded, fields["Signature"].text):
            raise OssError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        policy = UploadPolicy.decode(encoded)
        trace.model = policy.model
        if utc_now() >= policy.expires_at:
            raise OssError(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        key = fields["key"].text
        if not key.startswith(policy.upload_dir + "/") or "/../" in f"/{key}/":
            raise OssError(
                403,
                "AccessDenied",
                "Invalid according to Policy: Policy Condition failed: "
                f'["starts-with", "$key", "{policy.upload_dir}"]',
            )
        for name, wanted in (("x-oss-object-acl", "private"), ("x-oss-forbid-overwrite", "true")):
            if fields[name].text != wanted:
                raise OssError(
                    403,
                    "AccessDenied",
                    f'Invalid according to Policy: Policy Condition failed: ["eq", "${name}", "{wanted}"]',
                )
        data = fields["file"].data
        if len(data) > policy.max_bytes:
            raise OssError(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
        digest = hashlib.sha256(data).hexdigest()
        trace.audio_sha256 = digest
        trace.audio_bytes = len(data)
        stored = StoredObject(key, policy.model, data, digest, time.time())
        if not self.objects.put(stored):
            raise OssError(
                409,
                "FileAlreadyExists",
                "The object you specified already exists and can not be overwritten.",
            )
        rid = self._rid(trace)
        headers = {
            "x-oss-request-id": rid,
            "ETag": '"' + hashlib.md5(data, usedforsecurity=False).hexdigest().upper() + '"',
        }
        status = fields["success_action_status"].text.strip()
        if status == "200":
            return Reply(200, content_type=None, headers=headers)
        if status == "201":
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n<PostResponse>\n'
                f"  <Bucket>dashscope-instant</Bucket>\n  <Key>{escape(key)}</Key>\n"
                f"  <ETag>{headers['ETag']}</ETag>\n</PostResponse>\n"
            ).encode()
            return Reply(201, body, content_type="application/xml", headers=headers)
        return Reply(204, content_type=None, headers=headers)


def _audio_info(language: str) -> dict[str, str]:
    return {"type": "audio_info", "language": language, "emotion": "neutral"}
