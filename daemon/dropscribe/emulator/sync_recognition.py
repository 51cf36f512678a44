"""The synchronous recognition endpoint: audio in (data URL, http(s) or oss://), transcript out."""

from __future__ import annotations

import time
from array import array
from dataclasses import dataclass
from typing import IO, Any

import av

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
from dropscribe.emulator.auth import authorize
from dropscribe.emulator.config import EmulatorConfig
from dropscribe.emulator.faults import Fault
from dropscribe.emulator.http_messages import HttpRequest, Reply, json_reply
from dropscribe.emulator.language import detected_language
from dropscribe.emulator.media_formats import check_sync_format, data_url_mime
from dropscribe.emulator.object_store import ObjectStore, StoredObject
from dropscribe.emulator.paths import GENERATION_PATH
from dropscribe.emulator.protocol import (
    AUDIO_TOKENS_PER_SECOND,
    QWEN_AUDIO_MAX_INPUT_TOKENS,
    ApiError,
    is_qwen_audio_asr,
)
from dropscribe.emulator.rate_limits import RateLimits
from dropscribe.emulator.request_log import Trace
from dropscribe.emulator.streaming import stream_reply
from dropscribe.emulator.tokens import count_tokens
from dropscribe.emulator.transcripts import Transcriber, billed_seconds


def wants_stream(request: HttpRequest) -> bool:
    """True for a generation request that asked for server-sent events."""
    return request.path == GENERATION_PATH and request.header_enabled("X-DashScope-SSE")


@dataclass(frozen=True)
class _Audio:
    info: AudioInfo
    sha256: str
    silent: bool  # nothing above the noise floor: a real recognizer hears no speech in it


class SyncRecognition:
    """``POST /services/aigc/multimodal-generation/generation``, plain or streamed."""

    def __init__(
        self,
        config: EmulatorConfig,
        objects: ObjectStore,
        limits: RateLimits,
        transcriber: Transcriber | None = None,
    ) -> None:
        self._config = config
        self._objects = objects
        self._limits = limits
        self._transcriber = transcriber or Transcriber()

    def generation(self, request: HttpRequest, trace: Trace, stream_fault: Fault | None) -> Reply:
        key_id = authorize(request, self._config.api_keys)
        body = request.json
        model = validation.sync_model(body)
        trace.model = model
        self._limits.count_recognition(key_id, model)
        sync = validation.parse_sync(body, model)
        trace.asr_options = sync.asr_options
        trace.context = sync.context
        trace.parameters = sync.parameters

        audio = self._audio(request, sync.audio, model, key_id, trace)
        if audio.info.duration_s > self._config.max_sync_duration_s:
            raise ApiError(
                400,
                "InvalidParameter",
                f"The audio duration {audio.info.duration_s:.2f} s exceeds the maximum of "
                f"{self._config.max_sync_duration_s:g} s for model '{model}'.",
            )
        _check_qwen_audio_input(model, audio.info.duration_s)
        # the router consumed a matching fault and noted its kind in the trace; the kind says it all
        heard_s = audio.info.duration_s / 2 if trace.fault == "truncate" else audio.info.duration_s
        text = "" if audio.silent else self._transcriber.text(heard_s, audio.sha256)
        language = detected_language(model, sync.language, audio.info.language_tag)
        usage = _usage(model, sync.context, text, heard_s)
        rid = trace.reply_id()
        if wants_stream(request):
            return stream_reply(
                rid,
                text,
                _audio_info(language),
                usage,
                incremental=sync.incremental_output,
                fault=stream_fault,
            )
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

    def _audio(self, request: HttpRequest, url: str, model: str, account: str, trace: Trace) -> _Audio:
        limit = self._config.max_sync_bytes
        blob: Blob
        declared_mime: str | None = None  # only a data URL declares a type alongside its bytes
        if url.startswith("data:"):
            trace.audio_kind = "data"
            declared_mime = data_url_mime(url)
            # The limit applies to the encoded string as sent, not only to the decoded bytes
            # (docs/dashscope.md, "Sync recognition").
            if len(url) - url.find(",") - 1 > limit:
                raise ApiError(413, "BadRequest.TooLarge")
            try:
                blob = Blob.from_bytes(decode_data_url(url))
            except ValueError as exc:
                raise ApiError(400, "InvalidParameter", str(exc)) from exc
        elif url.startswith(("http://", "https://")):
            trace.audio_kind = "http"
            try:
                blob = fetch_url(url, limit=limit, timeout_s=self._config.fetch_timeout_s)
            except TooLargeError as exc:
                raise ApiError(413, "BadRequest.TooLarge") from exc
            except FetchError as exc:
                raise ApiError(415, "BadRequest.InputDownloadFailed", str(exc)) from exc
        elif url.startswith("oss://"):
            trace.audio_kind = "oss"
            blob = Blob.from_bytes(self._oss_object(request, url, model, account).data)
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
            check_sync_format(model, info.format, declared_mime)
            silent = _silent(blob.file)
            if not silent:
                self._transcriber.listen(blob.file, blob.sha256)
        finally:
            blob.close()
        trace.duration_s = round(info.duration_s, 3)
        return _Audio(info, blob.sha256, silent)

    def _oss_object(self, request: HttpRequest, url: str, model: str, account: str) -> StoredObject:
        if not request.header_enabled("X-DashScope-OssResourceResolve"):
            raise ApiError(
                400,
                "InvalidParameter.DataInspection",
                "The media format is not supported or incorrect for the data inspection. "
                "(oss:// URLs need the header X-DashScope-OssResourceResolve: enable)",
            )
        obj = self._objects.get(url.removeprefix("oss://"))
        if obj is None or not obj.usable_by(model, account, time.time()):
            raise ApiError(
                400,
                "InvalidParameter.DataInspection",
                "The media format is not supported or incorrect for the data inspection. "
                "(no temporary file under this URL for this model and account, or it is older than 48 h)",
            )
        return obj


def _check_qwen_audio_input(model: str, duration_s: float) -> None:
    """At most 6 144 input tokens, 25 per audio second: about 245 s of audio ("qwen-audio-asr")."""
    if not is_qwen_audio_asr(model):
        return
    tokens = billed_seconds(duration_s) * AUDIO_TOKENS_PER_SECOND
    if tokens > QWEN_AUDIO_MAX_INPUT_TOKENS:
        raise ApiError(
            400,
            "InvalidParameter",
            f"Range of input length should be [1, {QWEN_AUDIO_MAX_INPUT_TOKENS}] "
            f"(the audio is {tokens} tokens at {AUDIO_TOKENS_PER_SECOND} per second).",
        )


_SILENCE_PEAK = 64  # of 32767: well under any recorded voice, above dither


def _silent(source: IO[bytes]) -> bool:
    """True when no sample of the (already decodable) audio rises above the noise floor.

    Stops at the first loud frame, so audio with sound in it costs one frame's decode.
    """
    source.seek(0)
    try:
        with av.open(source, mode="r") as container:
            resampler = av.AudioResampler(format="s16", layout="mono")
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    samples = array("h", bytes(out.planes[0])[: out.samples * 2])
                    if samples and max(max(samples), -min(samples)) > _SILENCE_PEAK:
                        return False
    except av.FFmpegError:
        return False  # a damaged tail: the probe accepted what decoded, so answer as for sound
    return True


def _usage(model: str, context: str | None, text: str, duration_s: float) -> dict[str, Any]:
    seconds = billed_seconds(duration_s)
    output_tokens = count_tokens(text)
    if is_qwen_audio_asr(model):
        audio_tokens = seconds * AUDIO_TOKENS_PER_SECOND
        return {
            "input_tokens": audio_tokens,
            "output_tokens": output_tokens,
            "audio_tokens": audio_tokens,
        }
    return {
        "input_tokens_details": {"text_tokens": count_tokens(context or "")},
        "output_tokens_details": {"text_tokens": output_tokens},
        "seconds": seconds,
    }


def _audio_info(language: str) -> dict[str, str]:
    return {"type": "audio_info", "language": language, "emotion": "neutral"}
