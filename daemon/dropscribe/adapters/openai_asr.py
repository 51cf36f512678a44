"""``OpenAIRecognizer``: sync recognition on an OpenAI-compatible speech server (vLLM serving Qwen3-ASR).

One ``POST {base_url}/audio/transcriptions`` per clip, as a multipart upload. The server cannot fetch
a URL, so the clip's bytes are sent: a ``data:`` URL is decoded here, an https URL (a presigned object)
is downloaded first, a staged file is read as the form goes out. There is no file transcription: long
audio reaches this backend as chunks.
No call retries; every failure becomes one of ``core.errors`` (``core.openai_wire`` decides which).
The API key, when there is one, is added inside httpx and never appears in a log line or message.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO

import httpx
import structlog

from dropscribe.adapters.bearer import BearerAuth
from dropscribe.adapters.ratelimit import Limiter, RateLimiter
from dropscribe.core.errors import AsrUnavailableError, RemoteRejectedError
from dropscribe.core.openai_wire import (
    TRANSCRIPTIONS_PATH,
    classify_failure,
    form_fields,
    parse_transcription,
    retry_after,
)
from dropscribe.core.recognition import AsrOptions, AsrResult, InlineAudio, TaskState

if TYPE_CHECKING:
    from dropscribe.core.ports.recognizer import Recognizer

_CONNECT_TIMEOUT_S = 10.0
_SUFFIXES = {"audio/flac": "flac", "audio/wav": "wav", "audio/mpeg": "mp3", "audio/ogg": "ogg"}

_log = structlog.get_logger(__name__)


class OpenAIRecognizer:
    """A client of one OpenAI-compatible server, safe to share between threads.

    ``concurrency`` caps requests in flight; ``requests_per_minute`` (0 = unlimited) spaces them.
    ``on_request(seconds, model)`` is told how long each recognition took. ``api_key`` None means an
    open server (``vllm serve`` without ``--api-key``).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout_s: float = 300.0,
        requests_per_minute: int = 0,
        concurrency: int = 1,
        transport: httpx.BaseTransport | None = None,
        on_request: Callable[[float, str], None] | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            auth=BearerAuth(api_key) if api_key else None,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, _CONNECT_TIMEOUT_S)),
            transport=transport,
        )
        self._fetch = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=_CONNECT_TIMEOUT_S))
        self._slots = threading.BoundedSemaphore(concurrency)
        self._rpm: Limiter = limiter if limiter is not None else RateLimiter(requests_per_minute)
        self._on_request = on_request

    def __repr__(self) -> str:
        return f"OpenAIRecognizer(base_url={self.base_url!r})"

    def rate_status(self) -> dict[str, object]:
        """The request rate: configured, or found (``auto``)."""
        return self._rpm.snapshot()

    def close(self) -> None:
        self._http.close()
        self._fetch.close()

    def recognize(
        self, model: str, audio: str | InlineAudio, options: AsrOptions, *, oss_resolve: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> AsrResult:  # fmt: skip
        """Transcribe one clip given as a ``data:`` or http(s) URL, or as a file.

        Raises ``AsrUnavailableError`` (retry), ``RemoteRejectedError`` or ``AccountError``.
        """
        with self._audio_of(audio, oss_resolve) as (data, mime):
            return self._recognize(model, data, mime, options, before_send)

    def _recognize(
        self, model: str, data: bytes | BinaryIO, mime: str, options: AsrOptions,
        before_send: Callable[[], None] | None,
    ) -> AsrResult:  # fmt: skip
        name = f"audio.{_SUFFIXES.get(mime, 'bin')}"
        with self._slots:
            self._rpm.acquire()
            try:
                if before_send is not None:
                    before_send()
                started = time.monotonic()
                try:
                    response = self._http.post(
                        self.base_url + TRANSCRIPTIONS_PATH,
                        data=form_fields(model, options),
                        files={"file": (name, data, mime)},
                    )
                except httpx.TimeoutException as exc:
                    raise AsrUnavailableError(
                        f"the transcription request timed out ({type(exc).__name__})"
                    ) from None
                except httpx.TransportError as exc:
                    raise AsrUnavailableError(
                        f"the server could not be reached ({type(exc).__name__})"
                    ) from None
            finally:
                self._rpm.release()
            elapsed = time.monotonic() - started
        if self._on_request is not None:
            self._on_request(elapsed, model)
        request_id = response.headers.get("X-Request-Id")
        try:
            payload = response.json()
        except ValueError:
            payload = None
        code = payload.get("code") if isinstance(payload, dict) else None
        self._rpm.report(
            response.status_code, code if isinstance(code, str) else None,
            retry_after(response.headers.get("Retry-After")), started,
        )  # fmt: skip
        if not response.is_success:
            _log.warning("openai_request_failed", status=response.status_code, request_id=request_id)
            raise classify_failure(
                response.status_code, payload, request_id=request_id,
                retry_after_s=retry_after(response.headers.get("Retry-After")),
            )  # fmt: skip
        return parse_transcription(payload, request_id)

    @contextlib.contextmanager
    def _audio_of(
        self, audio: str | InlineAudio, oss_resolve: bool
    ) -> Iterator[tuple[bytes | BinaryIO, str]]:
        if isinstance(audio, InlineAudio):
            # httpx sends an open file block by block, its length given up front
            with open(audio.path, "rb") as data:
                yield data, audio.content_type
        else:
            yield self._bytes_of(audio, oss_resolve)

    def _bytes_of(self, audio: str, oss_resolve: bool) -> tuple[bytes, str]:
        scheme = urllib.parse.urlsplit(audio).scheme.lower()
        if scheme == "data":
            header, _, encoded = audio.partition(",")
            mime = header[len("data:") :].split(";")[0] or "application/octet-stream"
            try:
                return base64.b64decode(encoded, validate=True), mime
            except (binascii.Error, ValueError):
                raise RemoteRejectedError("InvalidAudio", "the audio data URL is not base64") from None
        if scheme in ("http", "https") and not oss_resolve:
            try:
                response = self._fetch.get(audio)
            except httpx.TransportError as exc:
                raise AsrUnavailableError(
                    f"the stored audio could not be read ({type(exc).__name__})"
                ) from None
            if not response.is_success:
                raise AsrUnavailableError(f"the stored audio answered {response.status_code}")
            return response.content, response.headers.get("Content-Type", "application/octet-stream")
        raise RemoteRejectedError(
            "UnsupportedStorage", "an OpenAI-compatible backend needs storage.type inline or s3"
        )

    def submit_filetrans(
        self, model: str, file_url: str, options: AsrOptions, *, oss_resolve: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> tuple[str, str | None]:  # fmt: skip
        """Never called: routing sends long audio to this backend as chunks."""
        raise RemoteRejectedError("Unsupported", "file transcription does not exist on an openai backend")

    def poll_task(self, task_id: str) -> TaskState:
        raise RemoteRejectedError("Unsupported", "file transcription does not exist on an openai backend")

    def fetch_transcription(self, url: str) -> AsrResult:
        raise RemoteRejectedError("Unsupported", "file transcription does not exist on an openai backend")


if TYPE_CHECKING:
    _IS_A_RECOGNIZER: type[Recognizer] = OpenAIRecognizer
