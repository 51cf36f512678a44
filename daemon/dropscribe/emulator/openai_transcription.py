"""The OpenAI-compatible speech endpoints of a self-hosted vLLM serving Qwen3-ASR.

``POST /v1/audio/transcriptions`` takes a multipart form (``file``, ``model``, ``language``, ``prompt``,
``response_format``) and answers ``{"text": ..., "usage": {"type": "duration", "seconds": N}}`` with
the seconds rounded up, as vLLM does; ``GET /v1/models`` lists the one served model. Errors use the
OpenAI envelope ``{"error": {"message", "type", "param", "code"}}``. vLLM's quirks that a client must
survive are kept: ``verbose_json`` is refused for this model (it has no segment timestamps), uploads
over the size cap (25 MB by default) are refused, and optionally the text keeps the
``language English<asr_text>`` prefix some servers leave in.
"""

from __future__ import annotations

import hashlib
import math
import time
import urllib.parse
from collections.abc import Set
from http import HTTPStatus
from typing import Any

from dropscribe.emulator.audio import Blob, UndecodableAudioError, probe_audio
from dropscribe.emulator.config import EmulatorConfig
from dropscribe.emulator.faults import Fault
from dropscribe.emulator.http_messages import HttpRequest, Reply, json_reply
from dropscribe.emulator.multipart import FormField, parse_form
from dropscribe.emulator.paths import OPENAI_MODELS_PATH, OPENAI_TRANSCRIPTIONS_PATH
from dropscribe.emulator.request_log import Trace
from dropscribe.emulator.transcripts import Transcriber

_FORMATS = ("json", "text", "verbose_json")
# Qwen3-ASR names the detected language in English words; the emulated speech is always "English"
# unless the request forces a language.
_LANGUAGE_NAMES = {
    "en": "English",
    "zh": "Chinese",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "ru": "Russian",
    "ja": "Japanese",
    "ko": "Korean",
}
_CREATED = int(time.time())


class OpenAIError(Exception):
    """A refusal answered in the OpenAI error envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        code: str | int | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or error_type_for(status)
        # vLLM puts the HTTP status in ``code``; OpenAI itself puts a word there. Clients see both.
        self.code = code if code is not None else status
        self.param = param

    def reply(self) -> Reply:
        return openai_error_reply(self.status, self.message, self.error_type, self.code, self.param)


def error_type_for(status: int) -> str:
    """vLLM's ``type`` for an HTTP status: ``BadRequestError``, ``NotFoundError``, ..."""
    try:
        phrase = HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return "Error"
    return phrase if phrase.endswith("Error") else f"{phrase}Error"


def openai_error_reply(
    status: int, message: str, error_type: str, code: str | int, param: str | None = None
) -> Reply:
    payload = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return json_reply(status, payload, error_code=str(code))


def openai_fault_reply(fault: Fault, request_id: str) -> Reply | None:
    """A status fault in the OpenAI envelope; None for the other kinds (they answer as elsewhere).

    The fault's ``code`` goes into ``error.code`` when given (e.g. ``rate_limit_exceeded``),
    otherwise the status, as vLLM does. ``request_id`` becomes the ``X-Request-Id`` header.
    """
    if fault.kind != "status":
        return None
    status = fault.error_status(500)
    message = fault.message if fault.message is not None else _phrase(status)
    reply = openai_error_reply(status, message, error_type_for(status), fault.code or status)
    reply.headers["X-Request-Id"] = request_id
    if fault.retry_after is not None:
        seconds = float(fault.retry_after)
        reply.headers["Retry-After"] = str(int(seconds)) if seconds.is_integer() else str(seconds)
    return reply


def openai_model_of(request: HttpRequest) -> str | None:
    """The ``model`` form field of a transcription request, for fault matching; never raises."""
    if request.path != OPENAI_TRANSCRIPTIONS_PATH:
        return None
    try:
        fields = parse_form(request.header("Content-Type") or "", request.body)
    except ValueError:
        return None
    return next((f.text for f in fields if f.name == "model"), None)


class OpenAITranscription:
    """``/v1/audio/transcriptions`` and ``/v1/models``, as ``vllm serve Qwen/Qwen3-ASR-1.7B`` answers."""

    def __init__(self, config: EmulatorConfig, transcriber: Transcriber | None = None) -> None:
        self._transcriber = transcriber or Transcriber()
        self._model = config.openai_model
        self._max_upload_mb = config.openai_max_upload_mb
        self._marker = config.asr_text_marker
        self._api_keys: Set[str] | None = config.api_keys

    def handle(self, request: HttpRequest, trace: Trace) -> Reply:
        try:
            reply = self._dispatch(request, trace)
        except OpenAIError as exc:
            reply = exc.reply()
        reply.headers.setdefault("X-Request-Id", trace.reply_id())
        return reply

    def _dispatch(self, request: HttpRequest, trace: Trace) -> Reply:
        path, method = request.path, request.method
        self._authorize(request)
        if path == OPENAI_MODELS_PATH:
            _require_method(method, "GET")
            return self._models()
        if path == OPENAI_TRANSCRIPTIONS_PATH:
            _require_method(method, "POST")
            return self._transcribe(request, trace)
        raise OpenAIError(404, f"No such endpoint: {method} {path}", error_type="NotFoundError")

    def _authorize(self, request: HttpRequest) -> None:
        # Like ``vllm serve --api-key``: without configured keys the server is open.
        if self._api_keys is None:
            return
        scheme, _, key = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or key.strip() not in self._api_keys:
            raise OpenAIError(
                401,
                "Incorrect or missing API key; send it as 'Authorization: Bearer <key>'.",
                error_type="invalid_request_error",
                code="invalid_api_key",
            )

    def _models(self) -> Reply:
        card = {
            "id": self._model,
            "object": "model",
            "created": _CREATED,
            "owned_by": "vllm",
            "root": self._model,
            "parent": None,
            "max_model_len": 65536,
        }
        return json_reply(200, {"object": "list", "data": [card]})

    def _transcribe(self, request: HttpRequest, trace: Trace) -> Reply:
        fields = _form(request)
        model = _text(fields, "model") or self._model
        trace.model = model
        response_format = _text(fields, "response_format") or "json"
        language = _text(fields, "language")
        prompt = _text(fields, "prompt")
        trace.context = prompt
        trace.parameters = {"language": language, "response_format": response_format}
        upload = next((f for f in fields if f.name == "file"), None)
        if upload is not None:
            trace.audio_kind = "multipart"
            trace.audio_bytes = len(upload.data)
            trace.audio_sha256 = hashlib.sha256(upload.data).hexdigest()
            trace.parameters["filename"] = upload.filename

        # The order of vLLM's own checks: model, format, then the file.
        if model != self._model:
            raise OpenAIError(
                404, f"The model `{model}` does not exist.", error_type="NotFoundError", param="model"
            )
        if response_format not in _FORMATS:
            raise OpenAIError(400, "Currently only support response_format: `text`, `json` or `verbose_json`")
        if response_format == "verbose_json":
            raise OpenAIError(400, f"Currently do not support verbose_json for {model}")
        if (_text(fields, "stream") or "").lower() == "true":
            raise OpenAIError(400, "The emulator does not emulate streamed transcriptions.", param="stream")
        if upload is None:
            raise OpenAIError(400, "The form field 'file' is required.", param="file")
        if len(upload.data) / 1024**2 > self._max_upload_mb:
            # vLLM refuses an oversized upload as a bad request (400), not with 413
            raise OpenAIError(400, "Maximum file size exceeded", param="audio_filesize_mb")

        blob = Blob.from_bytes(upload.data)
        try:
            duration_s = probe_audio(blob.file, full_decode=True).duration_s
            self._transcriber.listen(blob.file, blob.sha256)
        except UndecodableAudioError as exc:
            raise OpenAIError(400, "Invalid or unsupported audio file.", param="file") from exc
        finally:
            blob.close()
        trace.duration_s = round(duration_s, 3)

        text = self._transcriber.text(duration_s, blob.sha256)
        if self._marker:
            text = f"language {_LANGUAGE_NAMES.get(language or 'en', 'English')}<asr_text>{text}"
        if response_format == "text":
            return Reply(200, text.encode("utf-8"), content_type="text/plain; charset=utf-8")
        payload: dict[str, Any] = {
            "text": text,
            "usage": {"type": "duration", "seconds": math.ceil(duration_s)},
        }
        return json_reply(200, payload)


def _form(request: HttpRequest) -> list[FormField]:
    content_type = request.header("Content-Type") or ""
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        # Accepted like any form server accepts it, though it cannot carry the file.
        pairs = urllib.parse.parse_qsl(request.body.decode("utf-8", errors="replace"), keep_blank_values=True)
        return [FormField(name, value.encode("utf-8")) for name, value in pairs]
    try:
        return parse_form(content_type, request.body)
    except ValueError as exc:
        raise OpenAIError(400, f"The request is not a valid multipart form: {exc}") from exc


def _text(fields: list[FormField], name: str) -> str | None:
    value = next((f.text for f in fields if f.name == name), None)
    if value is None:
        return None
    return value.strip() or None


def _require_method(method: str, wanted: str) -> None:
    if method != wanted:
        raise OpenAIError(405, f"Method Not Allowed; use {wanted} for this endpoint.")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
