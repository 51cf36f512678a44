"""DashScope's JSON on the wire: the request bodies we send and the shapes of the answers we read.

Pure: values in, values out. A 200 answer of the wrong shape raises :class:`MalformedResponseError`;
what that means for the file (a retried server hiccup) is the HTTP adapter's business.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dropscribe.core.recognition import (
    AsrOptions,
    AsrResult,
    InlineAudio,
    Sentence,
    TaskState,
    accepts_options,
)

__all__ = [
    "GENERATION_PATH",
    "TASKS_PATH",
    "TRANSCRIPTION_PATH",
    "UPLOADS_PATH",
    "MalformedResponseError",
    "UploadPolicy",
    "field_of",
    "generation_body_around",
    "make_filetrans_body",
    "make_generation_body",
    "optional_str",
    "parse_generation",
    "parse_submit",
    "parse_task",
    "parse_transcription",
]

GENERATION_PATH = "/services/aigc/multimodal-generation/generation"
TRANSCRIPTION_PATH = "/services/audio/asr/transcription"
TASKS_PATH = "/tasks"
UPLOADS_PATH = "/uploads"

# qwen-audio-asr reports tokens, not seconds (docs/dashscope.md, "qwen-audio-asr")
_AUDIO_TOKENS_PER_SECOND = 25


class MalformedResponseError(ValueError):
    """Raised by the parsers when a 200 answer does not have the documented shape."""


# --------------------------------------------------------------------------------------------
# Request bodies


def make_generation_body(model: str, audio: str, options: AsrOptions) -> dict[str, Any]:
    """The JSON body of a sync recognition call (docs/dashscope.md, "Sync recognition").

    qwen-audio-asr refuses both the context message and ``asr_options`` (docs/dashscope.md,
    "qwen-audio-asr"), so it gets neither. The context message is left out when empty: an empty
    system text carries nothing.
    """
    messages: list[dict[str, Any]] = []
    parameters: dict[str, Any] = {"result_format": "message"}
    if accepts_options(model):
        if options.context:
            messages.append({"role": "system", "content": [{"text": options.context}]})
        asr_options: dict[str, Any] = {"enable_itn": options.enable_itn}
        if options.language:
            asr_options["language"] = options.language
        parameters["asr_options"] = asr_options
    messages.append({"role": "user", "content": [{"audio": audio}]})
    return {"model": model, "input": {"messages": messages}, "parameters": parameters}


# Stands for the audio's base64 text while the body is laid out; NULs never come out of a mime type or
# a language code, and the audio is the body's last text (only ``parameters`` follow it).
_AUDIO_MARK = "\x00audio\x00"


def generation_body_around(model: str, audio: InlineAudio, options: AsrOptions) -> tuple[bytes, bytes]:
    """The sync JSON body as the bytes before and after the audio's base64 text.

    The body is :func:`make_generation_body`'s with the same ``data:`` URL; only its base64 part is left
    out, for the caller to stream from the file between the two halves.
    """
    body = json.dumps(make_generation_body(model, audio.url_prefix + _AUDIO_MARK, options), ensure_ascii=True)
    before, mark, after = body.rpartition(json.dumps(_AUDIO_MARK)[1:-1])
    if not mark:
        raise ValueError("the audio's place was not found in the request body")
    return before.encode("ascii"), after.encode("ascii")


def make_filetrans_body(model: str, file_url: str, options: AsrOptions) -> dict[str, Any]:
    """The JSON body of a file-transcription submit (docs/dashscope.md, "File transcription").

    Channel 0 only, since every listed channel is billed; word timestamps off, since sidecars use
    sentences. Context is not sent: the task API documents no place for it.
    """
    parameters: dict[str, Any] = {"channel_id": [0], "enable_itn": options.enable_itn}
    if options.language:
        parameters["language"] = options.language
    parameters["enable_words"] = False
    return {"model": model, "input": {"file_url": file_url}, "parameters": parameters}


# --------------------------------------------------------------------------------------------
# Reading fields


def field_of(mapping: Any, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """``mapping[key]`` if ``mapping`` is an object and the value is of ``kind``; else malformed."""
    if not isinstance(mapping, dict):
        raise MalformedResponseError(f"{what}: expected an object")
    value = mapping.get(key)
    if not isinstance(value, kind):
        raise MalformedResponseError(f"{what}.{key}: missing or of the wrong type")
    return value


def optional_str(mapping: Any, key: str) -> str | None:
    """``mapping[key]`` when it is a non-empty string, else None (whatever ``mapping`` is)."""
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float:
    # bool is an int subclass; a true/false "seconds" is garbage, not 1 s
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return 0.0


def _usage_seconds(usage: Any) -> float:
    if not isinstance(usage, dict):
        return 0.0
    if "seconds" in usage:
        return _number(usage["seconds"])
    details = usage.get("input_tokens_details")
    tokens = usage.get("audio_tokens")
    if tokens is None and isinstance(details, dict):
        tokens = details.get("audio_tokens")
    return _number(tokens) / _AUDIO_TOKENS_PER_SECOND


def _most_common(values: list[Any]) -> str | None:
    found = [value for value in values if isinstance(value, str) and value]
    return Counter(found).most_common(1)[0][0] if found else None


# --------------------------------------------------------------------------------------------
# Answers


def parse_generation(payload: Any) -> AsrResult:
    """The result of a sync recognition answer."""
    output = field_of(payload, "output", dict, "body")
    choices = field_of(output, "choices", list, "output")
    if not choices:
        raise MalformedResponseError("output.choices is empty")
    message = field_of(choices[0], "message", dict, "output.choices[0]")
    content = message.get("content") or []
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    else:
        raise MalformedResponseError("message.content is neither a list nor a string")
    annotations = message.get("annotations") or []
    info = next(
        (a for a in annotations if isinstance(a, dict) and a.get("type") == "audio_info"),
        {},
    )
    return AsrResult(
        text=text,
        language=optional_str(info, "language"),
        emotion=optional_str(info, "emotion"),
        request_id=optional_str(payload, "request_id"),
        usage_seconds=_usage_seconds(payload.get("usage")),
    )


def parse_submit(payload: Any) -> tuple[str, str | None]:
    """``(task_id, request_id)`` of a file-transcription submit answer."""
    output = field_of(payload, "output", dict, "body")
    return field_of(output, "task_id", str, "output"), optional_str(payload, "request_id")


def parse_task(task_id: str, payload: Any) -> TaskState:
    """The state of task ``task_id`` from one poll answer."""
    output = field_of(payload, "output", dict, "body")
    status = field_of(output, "task_status", str, "output")
    url = None
    result = output.get("result")
    results = output.get("results")
    if isinstance(result, dict):
        url = optional_str(result, "transcription_url")
    elif isinstance(results, list) and results:
        # the paraformer/fun-asr family answers with a list; tolerate it rather than stall
        url = optional_str(results[0], "transcription_url")
    if status == "SUCCEEDED" and url is None:
        raise MalformedResponseError("SUCCEEDED task without output.result.transcription_url")
    return TaskState(
        task_id=optional_str(output, "task_id") or task_id,
        status=status,
        request_id=optional_str(payload, "request_id"),
        transcription_url=url,
        code=optional_str(output, "code"),
        message=optional_str(output, "message"),
        usage_seconds=_usage_seconds(payload.get("usage")),
    )


def parse_transcription(payload: Any) -> AsrResult:
    """The result file of a finished task (docs/dashscope.md, "File transcription")."""
    if not isinstance(payload, dict):
        raise MalformedResponseError("result file is not a JSON object")
    transcripts = payload.get("transcripts") or []
    if not isinstance(transcripts, list):
        raise MalformedResponseError("transcripts is not a list")
    if not transcripts:
        return AsrResult(text="")  # no speech found: a valid, empty result
    first = transcripts[0]
    raw_sentences = (first.get("sentences") or []) if isinstance(first, dict) else []
    if not isinstance(raw_sentences, list):
        raise MalformedResponseError("transcripts[0].sentences is not a list")
    sentences = tuple(
        Sentence(
            start_s=field_of(item, "begin_time", (int, float), "sentence") / 1000.0,
            end_s=field_of(item, "end_time", (int, float), "sentence") / 1000.0,
            text=field_of(item, "text", str, "sentence"),
        )
        for item in raw_sentences
    )
    text = optional_str(first, "text")
    if text is None:
        text = "".join(sentence.text for sentence in sentences)
    return AsrResult(
        text=text,
        language=_most_common([item.get("language") for item in raw_sentences]),
        emotion=_most_common([item.get("emotion") for item in raw_sentences]),
        sentences=sentences,
    )


# --------------------------------------------------------------------------------------------
# Upload certificate


@dataclass(frozen=True)
class UploadPolicy:
    """The temporary-upload certificate (docs/dashscope.md, "Temporary upload"): ``getPolicy``'s ``data``.

    ``policy``, ``signature`` and ``oss_access_key_id`` let anyone upload until it expires, so they
    stay out of the repr.
    """

    upload_host: str
    upload_dir: str
    expire_in_seconds: float
    max_file_size_mb: float
    policy: str = field(repr=False)
    signature: str = field(repr=False)
    oss_access_key_id: str = field(repr=False)
    x_oss_object_acl: str = "private"
    x_oss_forbid_overwrite: str = "true"
    capacity_limit_mb: float | None = None

    @classmethod
    def from_data(cls, data: Any) -> UploadPolicy:
        """Build from the ``data`` object; raises ``ValueError`` when a required field is missing."""
        return cls(
            upload_host=field_of(data, "upload_host", str, "data").rstrip("/"),
            upload_dir=field_of(data, "upload_dir", str, "data").strip("/"),
            expire_in_seconds=float(field_of(data, "expire_in_seconds", (int, float), "data")),
            max_file_size_mb=float(field_of(data, "max_file_size_mb", (int, float), "data")),
            policy=field_of(data, "policy", str, "data"),
            signature=field_of(data, "signature", str, "data"),
            oss_access_key_id=field_of(data, "oss_access_key_id", str, "data"),
            x_oss_object_acl=str(data.get("x_oss_object_acl") or "private"),
            x_oss_forbid_overwrite=str(data.get("x_oss_forbid_overwrite") or "true"),
            capacity_limit_mb=_number(data.get("capacity_limit_mb")) or None,
        )
