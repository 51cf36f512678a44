"""Request-body checks for the two recognition endpoints, as the real service applies them.

See docs/dashscope.md, "Sync recognition" and "File transcription".

Each function takes the parsed JSON body and either returns a typed view of it or raises
:class:`~dropscribe.emulator.protocol.ApiError` with the code a client would get.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dropscribe.emulator.protocol import (
    CONTEXT_TOKEN_LIMIT,
    LANGUAGES,
    ApiError,
    default_message,
    is_filetrans_model,
    is_qwen_audio_asr,
    is_sync_model,
)
from dropscribe.emulator.tasks import TaskOptions
from dropscribe.emulator.tokens import count_tokens


@dataclass(frozen=True)
class SyncRequest:
    """A valid body for the generation endpoint."""

    model: str
    audio: str
    context: str | None
    language: str | None
    enable_itn: bool
    asr_options: dict[str, Any] | None
    incremental_output: bool
    parameters: dict[str, Any]


@dataclass(frozen=True)
class FiletransRequest:
    """A valid body for the file-transcription endpoint."""

    model: str
    file_url: str
    options: TaskOptions
    parameters: dict[str, Any]


def _invalid(message: str) -> ApiError:
    return ApiError(400, "InvalidParameter", message)


def _model_of(body: Any) -> str:
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    model = body.get("model")
    if model is None or model == "":
        raise ApiError(400, "BadRequest.EmptyModel")
    if not isinstance(model, str):
        raise _invalid("Parameter 'model' must be a string.")
    return model


def sync_model(body: Any) -> str:
    """The model of a generation request; 404 ModelNotFound unless it is a synchronous ASR model."""
    model = _model_of(body)
    if not is_sync_model(model):
        raise ApiError(404, "ModelNotFound", "Model not exist.")
    return model


def filetrans_model(body: Any) -> str:
    """The model of a transcription request; synchronous models are refused, unknown ones not found."""
    model = _model_of(body)
    if is_sync_model(model):
        raise _invalid(f"Model '{model}' does not support asynchronous file transcription.")
    if not is_filetrans_model(model):
        raise ApiError(404, "ModelNotFound", "Model not exist.")
    return model


def _parameters(body: dict[str, Any]) -> dict[str, Any]:
    parameters = body.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise _invalid("Parameter 'parameters' must be an object.")
    return parameters


def _language(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in LANGUAGES:
        raise _invalid(f"Parameter '{where}' value {value!r} is not a supported language code.")
    return value


def _flag(container: dict[str, Any], name: str, where: str) -> bool:
    value = container.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _invalid(f"Parameter '{where}.{name}' must be a boolean.")
    return value


def parse_sync(body: dict[str, Any], model: str) -> SyncRequest:
    """Check a generation body whose ``model`` already passed :func:`sync_model`."""
    messages = _messages(body)
    context_parts: list[str] = []
    audio: str | None = None
    users = 0
    systems = 0
    for message in messages:
        if not isinstance(message, dict):
            raise _invalid("Each entry of 'input.messages' must be an object.")
        role = message.get("role")
        content = message.get("content")
        if role == "system":
            systems += 1
            context_parts.extend(_system_texts(content))
        elif role == "user":
            users += 1
            audio = _user_audio(content)
        else:
            raise _invalid(
                f"Message role {role!r} is not supported: speech recognition takes an optional "
                "system message and exactly one user message."
            )
    if systems > 1:
        raise _invalid("At most one system message is allowed.")
    if users != 1 or audio is None:
        raise _invalid("Exactly one user message with one audio part is required.")
    context = "\n".join(part for part in context_parts if part) or None
    if context is not None and is_qwen_audio_asr(model):
        raise _invalid(f"Model '{model}' does not accept context (a system message).")
    if context is not None and (tokens := count_tokens(context)) > CONTEXT_TOKEN_LIMIT:
        # The notes give only the code and the limit; the stock message plus the figures, as with other
        # InvalidParameter answers.
        raise _invalid(
            f"{default_message('InvalidParameter')} (the context text is {tokens} tokens; "
            f"at most {CONTEXT_TOKEN_LIMIT} tokens are allowed)"
        )

    parameters = _parameters(body)
    raw_options = parameters.get("asr_options")
    language: str | None = None
    enable_itn = False
    asr_options: dict[str, Any] | None = None
    if raw_options is not None:
        if is_qwen_audio_asr(model):
            raise _invalid(f"Model '{model}' does not support 'parameters.asr_options'.")
        if not isinstance(raw_options, dict):
            raise _invalid("Parameter 'parameters.asr_options' must be an object.")
        asr_options = raw_options
        language = _language(raw_options.get("language"), "asr_options.language")
        enable_itn = _flag(raw_options, "enable_itn", "asr_options")
        _flag(raw_options, "enable_lid", "asr_options")
    incremental = _flag(parameters, "incremental_output", "parameters")
    return SyncRequest(
        model=model,
        audio=audio,
        context=context,
        language=language,
        enable_itn=enable_itn,
        asr_options=asr_options,
        incremental_output=incremental,
        parameters=parameters,
    )


def _messages(body: dict[str, Any]) -> list[Any]:
    data = body.get("input")
    if data is None or data == {}:
        raise ApiError(400, "BadRequest.EmptyInput")
    if not isinstance(data, dict):
        raise _invalid("Parameter 'input' must be an object.")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("Parameter 'input.messages' must be a non-empty list.")
    return messages


def _system_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise _invalid("The system message content must be a list of text parts.")
    texts = []
    for part in content:
        if not isinstance(part, dict) or set(part) != {"text"} or not isinstance(part["text"], str):
            raise _invalid('The system message may only hold {"text": ...} parts.')
        texts.append(part["text"])
    return texts


def _user_audio(content: Any) -> str:
    if not isinstance(content, list) or len(content) != 1:
        raise _invalid("The user message must hold exactly one audio part.")
    part = content[0]
    if not isinstance(part, dict) or set(part) != {"audio"}:
        raise _invalid("The user message must hold exactly one audio part and nothing else.")
    audio = part["audio"]
    if not isinstance(audio, str) or not audio:
        raise _invalid("The audio part must be a non-empty URL string.")
    return audio


def parse_filetrans(body: dict[str, Any], model: str) -> FiletransRequest:
    """Check a transcription body whose ``model`` already passed :func:`filetrans_model`."""
    data = body.get("input")
    if data is None or data == {}:
        raise ApiError(400, "BadRequest.EmptyInput")
    if not isinstance(data, dict):
        raise _invalid("Parameter 'input' must be an object.")
    if "file_urls" in data:
        raise _invalid(f"Model '{model}' takes one 'input.file_url' string, not 'file_urls'.")
    file_url = data.get("file_url")
    if not isinstance(file_url, str) or not file_url:
        raise _invalid("Parameter 'input.file_url' must be a non-empty string.")
    if not file_url.startswith(("http://", "https://", "oss://")):
        raise ApiError(400, "InvalidURL")

    parameters = _parameters(body)
    channels = parameters.get("channel_id", [0])
    if not isinstance(channels, list) or not channels or not all(type(c) is int and c >= 0 for c in channels):
        raise _invalid("Parameter 'channel_id' must be a non-empty list of track indexes.")
    options = TaskOptions(
        channel_ids=tuple(channels),
        language=_language(parameters.get("language"), "language"),
        enable_itn=_flag(parameters, "enable_itn", "parameters"),
        enable_words=_flag(parameters, "enable_words", "parameters"),
    )
    return FiletransRequest(model=model, file_url=file_url, options=options, parameters=parameters)
