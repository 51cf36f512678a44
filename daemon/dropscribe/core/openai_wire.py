"""The OpenAI-compatible transcription API (a self-hosted Qwen3-ASR behind vLLM): request fields, answer
shapes, and what a refusal means.

Pure: the adapter sends and receives; this module decides. Errors come in two dialects: OpenAI's
envelope ``{"error": {"message", "type", "code"}}`` (vLLM puts the HTTP status in ``code``) and the
plain ``{"error": "Unauthorized"}`` that ``vllm serve --api-key`` answers. Either way the HTTP status
decides first, because the code words differ from server to server.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from dropscribe.core.errors import (
    AccountError,
    AsrUnavailableError,
    DropscribeError,
    RemoteRejectedError,
)
from dropscribe.core.recognition import AsrOptions, AsrResult

TRANSCRIPTIONS_PATH = "/audio/transcriptions"

#: vLLM's default upload cap (``--max-audio-filesize-mb``), in MB.
DEFAULT_MAX_UPLOAD_MB = 25.0

# "language English<asr_text>Hello": Qwen3-ASR's own output format, which some servers pass on as text
_MARKER = re.compile(r"\s*language\s+[^<\n]{0,40}<asr_text>")

# A 16 kHz mono 16-bit chunk, the largest the chunk encoding can be (FLAC never grows past raw PCM by
# more than its small frame headers); the margin keeps the multipart upload under the server's cap.
_CHUNK_BYTES_PER_S = 16000 * 2
_UPLOAD_MARGIN = 0.9

_ACCOUNT_STATUSES = frozenset({401, 402, 403, 404})
_TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})


def form_fields(model: str, options: AsrOptions) -> dict[str, str]:
    """The text fields of the multipart form; the ``file`` part is added by the sender."""
    fields = {"model": model, "response_format": "json"}
    if options.language:
        fields["language"] = options.language
    if options.context:
        fields["prompt"] = options.context
    return fields


def strip_marker(text: str) -> str:
    """The text without a leading ``language <Name><asr_text>`` marker."""
    match = _MARKER.match(text)
    return text[match.end() :] if match else text


def _seconds(payload: Mapping[str, Any]) -> float:
    usage = payload.get("usage")
    for value in (
        (usage or {}).get("seconds") if isinstance(usage, Mapping) else None,
        payload.get("duration"),
    ):
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return max(0.0, float(value))
    return 0.0


def parse_transcription(payload: Any, request_id: str | None = None) -> AsrResult:
    """The answer of a ``response_format=json`` request; raises ``AsrUnavailableError`` for a body
    that is not one (a proxy's error page, a cut stream): the same request may well succeed later."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("text"), str):
        raise AsrUnavailableError("the transcription answer has no text field", request_id=request_id)
    language = payload.get("language")
    return AsrResult(
        text=strip_marker(payload["text"]).strip(),
        language=language if isinstance(language, str) and language else None,
        request_id=request_id,
        usage_seconds=_seconds(payload),
    )


def error_of(payload: Any) -> tuple[str | None, str]:
    """``(code, message)`` of an error body in either dialect; ``(None, "")`` when it is neither."""
    if not isinstance(payload, Mapping):
        return None, ""
    error = payload.get("error")
    if isinstance(error, str):
        return None, error
    if isinstance(error, Mapping):
        code = error.get("code")
        message = error.get("message")
        kind = error.get("type")
        code_text = str(code) if code is not None and not isinstance(code, bool) else None
        if code_text is None and isinstance(kind, str):
            code_text = kind
        return code_text, message if isinstance(message, str) else ""
    detail = payload.get("detail") or payload.get("message")  # FastAPI's and some proxies' shape
    return None, detail if isinstance(detail, str) else ""


def classify_failure(
    status: int, payload: Any, *, retry_after_s: float | None = None, request_id: str | None = None
) -> DropscribeError:
    """The error an HTTP answer of ``status`` (not 2xx) with body ``payload`` stands for.

    429, 408 and 5xx are worth waiting for; 401/403 (key, rights) and 404 (an unknown model or a
    wrong base_url) fail every file alike, so they pause the queue rather than fail files; any
    other 4xx refuses this input, including vLLM's 400 "Maximum file size exceeded".
    """
    code, message = error_of(payload)
    code = code or str(status)
    text = message or f"HTTP {status}"
    if status in _TRANSIENT_STATUSES or status >= 500:
        return AsrUnavailableError(
            f"the server answered {status}: {text}", retry_after_s=retry_after_s, remote_code=code,
            request_id=request_id,
        )  # fmt: skip
    if status in _ACCOUNT_STATUSES:
        return AccountError(code, text, request_id)
    return RemoteRejectedError(code, text, request_id)


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds; None for a date or nonsense."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def upload_chunk_max_s(max_upload_mb: float) -> float:
    """The longest chunk whose encoding stays under the server's upload cap."""
    return max_upload_mb * 1024 * 1024 * _UPLOAD_MARGIN / _CHUNK_BYTES_PER_S


def upload_max_bytes(max_upload_mb: float) -> int:
    """The largest upload sent as it is; bigger files are split."""
    return int(max_upload_mb * 1024 * 1024 * _UPLOAD_MARGIN)
