"""DashScope (Alibaba Cloud Model Studio) over HTTP: Qwen3-ASR sync calls, file-transcription tasks
and the temporary ``oss://`` upload, as described in ``docs/dashscope-api.md``.

The client does not retry: every failure becomes one of the errors of ``core.errors``, chosen by
``core.retry.classify``, and the service decides when to try again. It is meant to be shared by
the threads of a worker pool: one connection pool, one concurrency cap and one requests-per-minute
limiter for all of them.

Secrets: the API key is sent only to the API host, never to the upload host or the result URL, and
never appears in a message, log line or repr; neither does the query string of a presigned URL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import mimetypes
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import structlog

from dropscribe.adapters.ratelimit import RateLimiter
from dropscribe.core.errors import (
    AccountError,
    AsrUnavailableError,
    DropscribeError,
    InputRejectedError,
    RemoteRejectedError,
    StorageUnavailableError,
    TransientError,
)
from dropscribe.core.recognition import AsrOptions, AsrResult, Sentence, TaskState, accepts_options
from dropscribe.core.retry import Verdict, classify

__all__ = [
    "DashScopeClient",
    "ResultExpiredError",
    "UploadPolicy",
    "is_safe_object_name",
    "make_filetrans_body",
    "make_generation_body",
    "redact_text",
    "redact_url",
]

GENERATION_PATH = "/services/aigc/multimodal-generation/generation"
TRANSCRIPTION_PATH = "/services/audio/asr/transcription"
TASKS_PATH = "/tasks"
UPLOADS_PATH = "/uploads"

# Half of the account-wide 20 QPS for task queries (§3.3), so other tools of the account keep some.
_TASK_POLLS_PER_MINUTE = 600
# A certificate is dropped this long before it expires: an upload started just before expiry fails.
_POLICY_MARGIN_S = 30.0
_CONNECT_TIMEOUT_S = 10.0
_MAX_MESSAGE_CHARS = 500
_AUDIO_TOKENS_PER_SECOND = 25  # qwen-audio-asr reports tokens, not seconds (§2.6)
_EXPIRED_RESULT_STATUSES = frozenset({403, 404, 410})
_OBJECT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")

_log = structlog.get_logger(__name__)
_T = TypeVar("_T")


class ResultExpiredError(TransientError):
    """Raised when a finished task's result file is gone (403/404 after its 24 h, or never there).

    Transient for the file, not for the task: the task id is useless now and the audio must be
    submitted again, so the service must forget the task id rather than retry the download.
    """


class _MalformedResponseError(ValueError):
    """Raised inside the parsers when a 200 answer does not have the documented shape."""


# --------------------------------------------------------------------------------------------
# Redaction


_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_DATA_URL_RE = re.compile(r"data:[\w.+/-]*(;[\w=.-]+)*,[A-Za-z0-9+/=%]{32,}")


def redact_url(url: str) -> str:
    """``url`` without query string, fragment and user info: where presigned URLs keep their keys.

    A ``data:`` URL is cut after its media type, since its payload is only noise in a log line.
    """
    if url.startswith("data:"):
        return url.split(",", 1)[0] + ",…"
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact_text(text: str, *secrets: str) -> str:
    """``text`` with every URL redacted, every given secret masked, and cut to a loggable length.

    For messages that may echo what we sent (a remote error quoting our URL, an HTML error page).
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _DATA_URL_RE.sub(lambda match: redact_url(match.group(0)), text)
    text = _URL_RE.sub(lambda match: redact_url(match.group(0)), text)
    text = " ".join(text.split())
    if len(text) > _MAX_MESSAGE_CHARS:
        text = text[: _MAX_MESSAGE_CHARS - 1] + "…"
    return text


def is_safe_object_name(name: str) -> bool:
    """True for names made of ASCII letters, digits and ``._-``, with ``/`` between segments.

    No segment starts with a dot, so ``..`` cannot climb out of a prefix, and nothing needs
    escaping in an object key, a form field or a URL.
    """
    return bool(_OBJECT_NAME_RE.fullmatch(name))


# --------------------------------------------------------------------------------------------
# Request bodies (pure)


def make_generation_body(model: str, audio: str, options: AsrOptions) -> dict[str, Any]:
    """The JSON body of a sync recognition call (§2.2).

    qwen-audio-asr refuses both the context message and ``asr_options`` (§2.6), so it gets neither.
    The context message is left out when empty: an empty system text carries nothing.
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


def make_filetrans_body(model: str, file_url: str, options: AsrOptions) -> dict[str, Any]:
    """The JSON body of a file-transcription submit (§4.1).

    Channel 0 only, since every listed channel is billed; word timestamps off, since sidecars use
    sentences. Context is not sent: the task API documents no place for it.
    """
    parameters: dict[str, Any] = {"channel_id": [0], "enable_itn": options.enable_itn}
    if options.language:
        parameters["language"] = options.language
    parameters["enable_words"] = False
    return {"model": model, "input": {"file_url": file_url}, "parameters": parameters}


# --------------------------------------------------------------------------------------------
# Response parsing (pure)


def _field(mapping: Any, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(mapping, dict):
        raise _MalformedResponseError(f"{what}: expected an object")
    value = mapping.get(key)
    if not isinstance(value, kind):
        raise _MalformedResponseError(f"{what}.{key}: missing or of the wrong type")
    return value


def _optional_str(mapping: Any, key: str) -> str | None:
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


def _parse_generation(payload: dict[str, Any]) -> AsrResult:
    output = _field(payload, "output", dict, "body")
    choices = _field(output, "choices", list, "output")
    if not choices:
        raise _MalformedResponseError("output.choices is empty")
    message = _field(choices[0], "message", dict, "output.choices[0]")
    content = message.get("content") or []
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        text = "".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    else:
        raise _MalformedResponseError("message.content is neither a list nor a string")
    annotations = message.get("annotations") or []
    info = next(
        (a for a in annotations if isinstance(a, dict) and a.get("type") == "audio_info"),
        {},
    )
    return AsrResult(
        text=text,
        language=_optional_str(info, "language"),
        emotion=_optional_str(info, "emotion"),
        request_id=_optional_str(payload, "request_id"),
        usage_seconds=_usage_seconds(payload.get("usage")),
    )


def _parse_task(task_id: str, payload: dict[str, Any]) -> TaskState:
    output = _field(payload, "output", dict, "body")
    status = _field(output, "task_status", str, "output")
    url = None
    result = output.get("result")
    results = output.get("results")
    if isinstance(result, dict):
        url = _optional_str(result, "transcription_url")
    elif isinstance(results, list) and results:
        # the paraformer/fun-asr family answers with a list; tolerate it rather than stall
        url = _optional_str(results[0], "transcription_url")
    if status == "SUCCEEDED" and url is None:
        raise _MalformedResponseError("SUCCEEDED task without output.result.transcription_url")
    return TaskState(
        task_id=_optional_str(output, "task_id") or task_id,
        status=status,
        request_id=_optional_str(payload, "request_id"),
        transcription_url=url,
        code=_optional_str(output, "code"),
        message=_optional_str(output, "message"),
        usage_seconds=_usage_seconds(payload.get("usage")),
    )


def _most_common(values: list[Any]) -> str | None:
    found = [value for value in values if isinstance(value, str) and value]
    return Counter(found).most_common(1)[0][0] if found else None


def _parse_transcription(payload: Any) -> AsrResult:
    if not isinstance(payload, dict):
        raise _MalformedResponseError("result file is not a JSON object")
    transcripts = payload.get("transcripts") or []
    if not isinstance(transcripts, list):
        raise _MalformedResponseError("transcripts is not a list")
    if not transcripts:
        return AsrResult(text="")  # no speech found: a valid, empty result
    first = transcripts[0]
    raw_sentences = (first.get("sentences") or []) if isinstance(first, dict) else []
    if not isinstance(raw_sentences, list):
        raise _MalformedResponseError("transcripts[0].sentences is not a list")
    sentences = tuple(
        Sentence(
            start_s=_field(item, "begin_time", (int, float), "sentence") / 1000.0,
            end_s=_field(item, "end_time", (int, float), "sentence") / 1000.0,
            text=_field(item, "text", str, "sentence"),
        )
        for item in raw_sentences
    )
    text = _optional_str(first, "text")
    if text is None:
        text = "".join(sentence.text for sentence in sentences)
    return AsrResult(
        text=text,
        language=_most_common([item.get("language") for item in raw_sentences]),
        emotion=_most_common([item.get("emotion") for item in raw_sentences]),
        sentences=sentences,
    )


def _retry_after_s(headers: httpx.Headers) -> float | None:
    """``retry-after-ms`` (what the official SDK reads first), else ``Retry-After`` in any form."""
    with contextlib.suppress(ValueError):
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000.0)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


_XML_CODE_RE = re.compile(r"<Code>([^<]*)</Code>")
_XML_MESSAGE_RE = re.compile(r"<Message>([^<]*)</Message>")


def _oss_error(response: httpx.Response) -> tuple[str, str]:
    """Code and message of an OSS PostObject error (an XML document)."""
    text = response.text
    code = _XML_CODE_RE.search(text)
    message = _XML_MESSAGE_RE.search(text)
    return (
        code.group(1) if code else f"HTTP{response.status_code}",
        message.group(1) if message else text[:200],
    )


# --------------------------------------------------------------------------------------------
# Failures


@dataclass(frozen=True)
class _Failure:
    status: int | None
    code: str | None
    message: str
    request_id: str | None = None
    retry_after_s: float | None = None


def _error_for(
    failure: _Failure,
    *,
    what: str,
    transient: type[TransientError] = AsrUnavailableError,
    reject_means_account: bool = False,
) -> DropscribeError:
    """The service-level error for one failed call, as ``core.retry.classify`` decides."""
    code = failure.code or "Unknown"
    verdict = classify(failure.status, failure.code, failure.message)
    if verdict is Verdict.REJECT and not reject_means_account:
        return RemoteRejectedError(code, failure.message, failure.request_id)
    if verdict is not Verdict.RETRY:
        return AccountError(code, failure.message, failure.request_id)
    status = "no response" if failure.status is None else f"HTTP {failure.status}"
    return transient(
        f"{what}: {status} {code}: {failure.message}",
        retry_after_s=failure.retry_after_s,
        remote_code=failure.code,
        request_id=failure.request_id,
    )


def _parse_or_raise(parser: Callable[[Any], _T], payload: Any, *, what: str) -> _T:
    """Run a parser over a 200 answer; a body of the wrong shape is a server hiccup, so retried."""
    try:
        return parser(payload)
    except _MalformedResponseError as exc:
        request_id = _optional_str(payload, "request_id")
        failure = _Failure(200, "MalformedResponse", str(exc), request_id)
        raise _error_for(failure, what=what) from exc


@contextlib.contextmanager
def _map_transport_errors(what: str, transient: type[TransientError] = AsrUnavailableError) -> Iterator[None]:
    """Turn every httpx failure without an HTTP answer into a service error; the one place for it."""
    try:
        yield
    except httpx.RequestError as exc:
        failure = _Failure(None, None, f"{type(exc).__name__}: {redact_text(str(exc))}")
        raise _error_for(failure, what=what, transient=transient) from exc


# --------------------------------------------------------------------------------------------
# Upload certificate


@dataclass(frozen=True)
class UploadPolicy:
    """The temporary-upload certificate of §6 (the ``data`` object of ``getPolicy``).

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
            upload_host=_field(data, "upload_host", str, "data").rstrip("/"),
            upload_dir=_field(data, "upload_dir", str, "data").strip("/"),
            expire_in_seconds=float(_field(data, "expire_in_seconds", (int, float), "data")),
            max_file_size_mb=float(_field(data, "max_file_size_mb", (int, float), "data")),
            policy=_field(data, "policy", str, "data"),
            signature=_field(data, "signature", str, "data"),
            oss_access_key_id=_field(data, "oss_access_key_id", str, "data"),
            x_oss_object_acl=str(data.get("x_oss_object_acl") or "private"),
            x_oss_forbid_overwrite=str(data.get("x_oss_forbid_overwrite") or "true"),
            capacity_limit_mb=_number(data.get("capacity_limit_mb")) or None,
        )


def _size_of(data: BinaryIO | bytes) -> int:
    # the whole stream, not what is left of it: httpx rewinds a file before sending it
    if isinstance(data, bytes | bytearray | memoryview):
        return len(data)
    position = data.tell()
    end = data.seek(0, 2)
    data.seek(position)
    return end


# --------------------------------------------------------------------------------------------
# The client


class _BearerAuth(httpx.Auth):
    """Adds the API key inside httpx, per request: no local variable of ours holds the header, so
    a traceback rendered with its frames' locals shows no key, and only API calls carry it."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._api_key}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


class DashScopeClient:
    """Synchronous DashScope client, safe to share between threads.

    ``concurrency`` caps simultaneous API calls; ``requests_per_minute`` (0 = unlimited) spaces
    recognition requests (sync calls and task submits, which share the model's RPM quota). Task
    polls have their own pace, half the account's 20 QPS. ``transport`` is for tests.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 300.0,
        requests_per_minute: int = 0,
        concurrency: int = 4,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parsed = httpx.URL(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.host or parsed.query:
            raise ValueError("base_url must be an http(s) URL without a query string")
        api_key = api_key.strip()
        # h11 quotes a rejected header value in its exception text: refuse such a key up front
        if not api_key or any(not 32 < ord(char) < 127 for char in api_key):
            raise ValueError("api_key is empty or has characters not allowed in an HTTP header")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._auth = _BearerAuth(api_key)
        self._http = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout_s, connect=min(_CONNECT_TIMEOUT_S, timeout_s)),
            follow_redirects=False,
        )
        self._slots = threading.BoundedSemaphore(concurrency)
        self._rpm = RateLimiter(requests_per_minute)
        self._polls = RateLimiter(_TASK_POLLS_PER_MINUTE)
        self._policies: dict[str, tuple[UploadPolicy, float]] = {}
        self._policies_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DashScopeClient(base_url={self.base_url!r})"

    def __enter__(self) -> DashScopeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- sync recognition ------------------------------------------------------------------

    def recognize(
        self, model: str, audio: str, options: AsrOptions, *, oss_resolve: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> AsrResult:  # fmt: skip
        """Transcribe one clip (an https, ``oss://`` or ``data:`` URL) with a sync model.

        ``oss_resolve`` must be True for ``oss://`` temporary URLs. Raises ``AsrUnavailableError``
        (retry), ``RemoteRejectedError`` (the input is refused for good) or ``AccountError``.
        ``before_send`` runs after the concurrency slot and the rate limit are granted, right before
        the request leaves: the last moment to decide not to send (and pay) at all, by raising.
        """
        body = make_generation_body(model, audio, options)
        payload = self._call_api(
            "POST",
            GENERATION_PATH,
            what="recognition",
            body=body,
            headers=self._resolve_header(oss_resolve),
            limiter=self._rpm,
            before_send=before_send,
        )
        return _parse_or_raise(_parse_generation, payload, what="recognition")

    # -- file transcription ----------------------------------------------------------------

    def submit_filetrans(
        self, model: str, file_url: str, options: AsrOptions, *, oss_resolve: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> tuple[str, str | None]:  # fmt: skip
        """Start a file-transcription task; returns ``(task_id, request_id)``.

        Not idempotent: every call that reaches the server is a new, billed task. The caller must
        record the task id before anything else and must not call again after a lost answer
        without first looking for the task it may have created.
        """
        headers = {"X-DashScope-Async": "enable", **self._resolve_header(oss_resolve)}
        payload = self._call_api(
            "POST",
            TRANSCRIPTION_PATH,
            what="filetrans submit",
            body=make_filetrans_body(model, file_url, options),
            headers=headers,
            limiter=self._rpm,
            before_send=before_send,
        )

        def parse(body: dict[str, Any]) -> tuple[str, str | None]:
            output = _field(body, "output", dict, "body")
            return _field(output, "task_id", str, "output"), _optional_str(body, "request_id")

        return _parse_or_raise(parse, payload, what="filetrans submit")

    def poll_task(self, task_id: str) -> TaskState:
        """One look at a task. A FAILED task is a normal answer: its code and message are in it."""
        if not task_id:
            raise ValueError("task_id must not be empty")
        payload = self._call_api(
            "GET",
            f"{TASKS_PATH}/{quote(task_id, safe='')}",
            what="task poll",
            limiter=self._polls,
        )
        return _parse_or_raise(lambda body: _parse_task(task_id, body), payload, what="task poll")

    def fetch_transcription(self, url: str) -> AsrResult:
        """Download and parse a finished task's result file (§4.4).

        The URL is presigned, so it goes out without our Authorization header. The result has no
        request id or usage: take those from the ``TaskState`` that gave the URL.
        Raises ``ResultExpiredError`` when the file is gone, ``AsrUnavailableError`` otherwise.
        """
        what = "transcription result"
        with _map_transport_errors(what):
            response = self._http.get(url)
        if response.status_code in _EXPIRED_RESULT_STATUSES:
            raise ResultExpiredError(
                f"{what}: HTTP {response.status_code}: the result file is gone; resubmit the audio",
                remote_code=f"HTTP{response.status_code}",
            )
        if response.status_code != 200:
            # whatever went wrong, it is not about the audio: never let it fail the file
            raise AsrUnavailableError(
                f"{what}: HTTP {response.status_code}", remote_code=f"HTTP{response.status_code}"
            )
        try:
            payload = response.json()
        except ValueError as exc:
            raise AsrUnavailableError(f"{what}: not JSON", remote_code="Unknown") from exc
        return _parse_or_raise(_parse_transcription, payload, what=what)

    # -- temporary upload ------------------------------------------------------------------

    def get_upload_policy(self, model: str) -> UploadPolicy:
        """The upload certificate for ``model``, from cache while it has 30 s or more to live.

        Raises ``StorageUnavailableError`` (retry) or ``AccountError``: a certificate refused for a
        reason other than throttling is a key or configuration problem, never the file's.
        """
        with self._policies_lock:
            cached = self._policies.get(model)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        what = "upload policy"
        payload = self._call_api(
            "GET",
            UPLOADS_PATH,
            what=what,
            params={"action": "getPolicy", "model": model},
            result_key="data",
            transient=StorageUnavailableError,
            reject_means_account=True,
        )
        fetched_at = time.monotonic()
        try:
            policy = UploadPolicy.from_data(payload.get("data"))
        except ValueError as exc:
            raise StorageUnavailableError(
                f"{what}: malformed answer: {exc}", remote_code="MalformedResponse"
            ) from exc
        expires_at = fetched_at + policy.expire_in_seconds - _POLICY_MARGIN_S
        with self._policies_lock:
            self._policies[model] = (policy, expires_at)
        return policy

    def upload_temp(
        self,
        model: str,
        name: str,
        data: BinaryIO | bytes,
        *,
        content_type: str | None = None,
    ) -> str:
        """Upload to DashScope's temporary storage for ``model``; returns the ``oss://`` URL.

        ``name`` must be ASCII-safe (letters, digits, ``._-``, ``/`` between segments) and derived
        from the content, so a repeated upload hits the same key: the store forbids overwrites and
        answers "already exists", which is then success. A stream is sent whole, from its start.
        The URL works for 48 h, only for ``model`` and only with ``oss_resolve=True``.
        Raises ``StorageUnavailableError``, ``AccountError`` or, when the file is larger than the
        certificate allows, ``InputRejectedError("too_large")``.
        """
        if not is_safe_object_name(name):
            raise ValueError("object name must be ASCII letters, digits, '._-' and '/' segments")
        mime = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        policy = self.get_upload_policy(model)
        limit = int(policy.max_file_size_mb * 1024 * 1024)
        if _size_of(data) > limit:
            raise InputRejectedError(
                "too_large", f"the file exceeds the {limit} bytes temporary storage takes"
            )
        response = self._post_object(policy, name, data, mime)
        if response.status_code == 403 and "expired" in _oss_error(response)[1].lower():
            # the cached certificate outlived its real validity (clock skew): one fresh try
            self._forget_policy(model)
            policy = self.get_upload_policy(model)
            response = self._post_object(policy, name, data, mime)
        url = f"oss://{policy.upload_dir}/{name}"
        if response.is_success:
            return url
        code, message = _oss_error(response)
        if response.status_code == 409 and code == "FileAlreadyExists":
            # the name comes from the content, so the object there holds these very bytes
            return url
        _log.warning("dashscope_upload_failed", status=response.status_code, code=code)
        raise StorageUnavailableError(
            f"temporary upload: HTTP {response.status_code} {code}: {redact_text(message)}",
            remote_code=code,
        )

    def _post_object(
        self, policy: UploadPolicy, name: str, data: BinaryIO | bytes, mime: str
    ) -> httpx.Response:
        """One OSS PostObject (§6 step 2); no DashScope credentials go to the upload host."""
        fields = {
            "OSSAccessKeyId": policy.oss_access_key_id,
            "Signature": policy.signature,
            "policy": policy.policy,
            "key": f"{policy.upload_dir}/{name}",
            "x-oss-object-acl": policy.x_oss_object_acl,
            "x-oss-forbid-overwrite": policy.x_oss_forbid_overwrite,
            "success_action_status": "200",
            "x-oss-content-type": mime,
        }
        # httpx writes form fields before files, the order OSS requires (file last); it also
        # rewinds a stream before sending, so the retry after an expired policy sends it whole
        files = {"file": (name.rsplit("/", 1)[-1], data, mime)}
        with _map_transport_errors("temporary upload", StorageUnavailableError):
            return self._http.post(policy.upload_host, data=fields, files=files)

    def _forget_policy(self, model: str) -> None:
        with self._policies_lock:
            self._policies.pop(model, None)

    # -- plumbing --------------------------------------------------------------------------

    def _resolve_header(self, oss_resolve: bool) -> dict[str, str]:
        return {"X-DashScope-OssResourceResolve": "enable"} if oss_resolve else {}

    def _call_api(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        limiter: RateLimiter | None = None,
        before_send: Callable[[], None] | None = None,
        result_key: str = "output",
        transient: type[TransientError] = AsrUnavailableError,
        reject_means_account: bool = False,
    ) -> dict[str, Any]:
        """Send one authenticated API request and return its JSON body, or raise its error."""
        # httpx adds Content-Type: application/json for a json body
        request_headers = {"Accept": "application/json", **(headers or {})}
        request = self._http.build_request(
            method, self.base_url + path, json=body, headers=request_headers, params=params
        )
        with self._slots:
            if limiter is not None:
                limiter.acquire()
            if before_send is not None:
                before_send()
            started = time.monotonic()
            with _map_transport_errors(what, transient):
                response = self._http.send(request, auth=self._auth)
        failure, payload = self._read(response, result_key)
        _log.debug(
            "dashscope_call",
            call=what,
            status=response.status_code,
            code=failure.code if failure else None,
            request_id=failure.request_id if failure else payload.get("request_id"),
            elapsed_s=round(time.monotonic() - started, 3),
        )
        if failure is not None:
            raise _error_for(
                failure, what=what, transient=transient, reject_means_account=reject_means_account
            )
        return payload

    def _read(self, response: httpx.Response, result_key: str) -> tuple[_Failure | None, dict[str, Any]]:
        """Split an API answer into success (its JSON object) or a failure description (§3.1)."""
        request_id = response.headers.get("x-request-id") or response.headers.get("x-dashscope-request-id")
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            # gateway pages and proxies answer in HTML or plain text; the official SDK calls that
            # code "Unknown" and so does classify()
            message = redact_text(response.text, self._api_key) or response.reason_phrase
            return _Failure(status, "Unknown", message, request_id), {}
        if not isinstance(payload, dict):
            return _Failure(status, "MalformedResponse", "body is not an object", request_id), {}
        request_id = _optional_str(payload, "request_id") or request_id
        code = _optional_str(payload, "code")
        message = _optional_str(payload, "message") or _optional_str(payload, "msg") or ""
        error = payload.get("error")
        if code is None and isinstance(error, dict):  # OpenAI-compatible envelope
            code = _optional_str(error, "code")
            message = message or _optional_str(error, "message") or ""
        if status == 200 and (code is None or payload.get(result_key) is not None):
            return None, payload
        return (
            _Failure(
                status,
                code or ("MalformedResponse" if status == 200 else "Unknown"),
                redact_text(message, self._api_key),
                request_id,
                _retry_after_s(response.headers),
            ),
            {},
        )
