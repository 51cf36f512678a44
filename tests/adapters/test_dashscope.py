"""The DashScope client over real HTTP against the project's emulator (and, once, a moto S3 server)."""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from dropscribe.adapters.dashscope import (
    DashScopeClient,
    ResultExpiredError,
    make_generation_body,
    redact_text,
    redact_url,
)
from dropscribe.adapters.ratelimit import RateLimiter
from dropscribe.adapters.s3_storage import S3Storage
from dropscribe.adapters.storage import DashScopeTempStorage
from dropscribe.core import recognition
from dropscribe.core.dashscope_wire import (
    MalformedResponseError,
    generation_body_around,
    parse_generation,
    parse_task,
    parse_transcription,
)
from dropscribe.core.errors import (
    AccountError,
    AsrUnavailableError,
    DropscribeError,
    InputRejectedError,
    RemoteRejectedError,
    StorageUnavailableError,
)
from dropscribe.core.ports.recognizer import Recognizer
from dropscribe.core.recognition import AsrOptions, AsrResult, InlineAudio, Sentence, TaskState
from dropscribe.emulator import Emulator, EmulatorConfig, Fault, emulated_sentence, emulated_text
from tests.support.audio import make_tone
from tests.support.s3 import (  # noqa: F401  (fixtures are used by name)
    REGION,
    S3Target,
    fixture_aws_credentials,
    fixture_moto_endpoint,
    fixture_s3_bucket,
)
from tests.support.service import API_KEY, wait_for

# Checked by mypy: the client is what the pipeline's recognizer port asks for.
_CLIENT_IS_A_RECOGNIZER: type[Recognizer] = DashScopeClient

SYNC = "qwen3-asr-flash"
FILETRANS = "qwen3-asr-flash-filetrans"
AUDIO_S = 2.0


class Audio:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.data_url = "data:audio/wav;base64," + base64.b64encode(data).decode()
        self.text = emulated_text(AUDIO_S, self.sha256)


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> Audio:
    """A real 2 s sine WAV (16 kHz mono PCM) made with PyAV."""
    path = make_tone(tmp_path_factory.mktemp("audio") / "tone.wav", seconds=AUDIO_S, fmt="wav")
    return Audio(path.read_bytes())


def make_client(base_url: str, api_key: str = API_KEY, **kwargs: Any) -> DashScopeClient:
    kwargs.setdefault("timeout_s", 10.0)
    return DashScopeClient(base_url, api_key, **kwargs)


@pytest.fixture
def client(emulator: Emulator) -> Iterator[DashScopeClient]:
    with make_client(emulator.base_url) as dashscope:
        yield dashscope


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start emulators with settings of the test's choosing; all are stopped at the end."""
    started: list[Emulator] = []

    def start(**settings: Any) -> Emulator:
        settings.setdefault("api_keys", {API_KEY})
        emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, **settings))
        emu.start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


def requests_to(emu: Emulator, path_part: str) -> list[dict[str, Any]]:
    return [record for record in emu.requests() if path_part in record["path"]]


def recorded(emu: Emulator, path_part: str, count: int = 1) -> list[dict[str, Any]]:
    """The emulator's records for a path, once ``count`` of them are in (it logs after replying)."""
    wait_for(lambda: len(requests_to(emu, path_part)) >= count, timeout=5.0)
    return requests_to(emu, path_part)


def header(record: dict[str, Any], name: str) -> str | None:
    return next((v for k, v in record["headers"].items() if k.lower() == name.lower()), None)


def wait_finished(client: DashScopeClient, task_id: str, timeout_s: float = 15.0) -> TaskState:
    deadline = time.monotonic() + timeout_s
    while True:
        state = client.poll_task(task_id)
        if state.finished:
            return state
        assert time.monotonic() < deadline, f"task still {state.status}"
        time.sleep(0.1)


def all_text(exc: BaseException) -> str:
    """What a logged traceback shows of an exception and its causes, plus all our error's fields."""
    parts = [repr(vars(exc))]
    current: BaseException | None = exc
    while current is not None:
        parts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------


class TestRecognize:
    def test_data_url(self, emulator: Emulator, client: DashScopeClient, audio: Audio) -> None:
        """A data URL is transcribed; the body carries asr_options and the context.

        As docs/dashscope.md, "Sync recognition", describes them.
        """
        options = AsrOptions(language="en", enable_itn=True, context="Names: Ada Lovelace")

        result = client.recognize(SYNC, audio.data_url, options)

        [record] = recorded(emulator, "generation")
        assert result.text == audio.text
        assert result.language == "en"
        assert result.emotion == "neutral"
        assert result.usage_seconds == 2.0
        assert result.request_id == record["request_id"]
        assert record["status"] == 200
        assert record["audio_kind"] == "data"
        assert record["audio_sha256"] == audio.sha256
        assert record["asr_options"] == {"language": "en", "enable_itn": True}
        assert record["context"] == "Names: Ada Lovelace"
        assert header(record, "X-DashScope-OssResourceResolve") is None
        assert header(record, "Content-Type") == "application/json"

    def test_a_staged_file_goes_out_as_the_same_data_url_read_while_it_is_sent(
        self, emulator: Emulator, client: DashScopeClient, audio: Audio, tmp_path: Path
    ) -> None:
        """The body is streamed from the file with its length announced: not sent in HTTP chunks, and
        the server reads the same JSON, audio and all, as from a built data URL."""
        staged = tmp_path / "chunk-0000.wav"
        staged.write_bytes(audio.data)
        options = AsrOptions(language="en", context='Names: "Ada" \\ Lovelace, 术语 \x00audio\x00')

        streamed = client.recognize(SYNC, InlineAudio(str(staged), "audio/wav", len(audio.data)), options)
        built = client.recognize(SYNC, audio.data_url, options)

        first, second = recorded(emulator, "generation", count=2)
        assert (
            (streamed.text, streamed.usage_seconds) == (built.text, built.usage_seconds) == (audio.text, 2.0)
        )
        for record in (first, second):
            assert (record["status"], record["audio_kind"]) == (200, "data")
            assert record["audio_sha256"] == audio.sha256
            assert record["context"] == options.context
            assert header(record, "Transfer-Encoding") is None
        whole = json.dumps(make_generation_body(SYNC, audio.data_url, options), ensure_ascii=True)
        assert header(first, "Content-Length") == str(len(whole))

    def test_a_staged_file_that_changed_size_is_not_sent(
        self, emulator: Emulator, client: DashScopeClient, audio: Audio, tmp_path: Path
    ) -> None:
        staged = tmp_path / "chunk-0000.wav"
        staged.write_bytes(audio.data[:-100])

        with pytest.raises(AsrUnavailableError, match="changed before it was sent"):
            client.recognize(SYNC, InlineAudio(str(staged), "audio/wav", len(audio.data)), AsrOptions())

        assert [r for r in requests_to(emulator, "generation") if r["status"] == 200] == []

    def test_auto_language_sends_no_language(
        self, emulator: Emulator, client: DashScopeClient, audio: Audio
    ) -> None:
        """Without a language the option is left out (auto-detect) and no context message is sent."""
        client.recognize(SYNC, audio.data_url, AsrOptions())

        [record] = recorded(emulator, "generation")
        assert record["asr_options"] == {"enable_itn": False}
        assert not record["context"]

    def test_qwen_audio_asr_gets_no_options(
        self, emulator: Emulator, client: DashScopeClient, audio: Audio
    ) -> None:
        """qwen-audio-asr gets neither context nor asr_options; its usage comes from audio tokens."""
        options = AsrOptions(language="en", enable_itn=True, context="ignored")

        result = client.recognize("qwen-audio-asr", audio.data_url, options)

        [record] = recorded(emulator, "generation")
        assert result.text == audio.text
        assert result.usage_seconds == 2.0
        assert record["asr_options"] is None
        assert not record["context"]

    def test_invalid_language_is_rejected(self, client: DashScopeClient, audio: Audio) -> None:
        """A 400 InvalidParameter from real validation becomes RemoteRejectedError."""
        with pytest.raises(RemoteRejectedError) as caught:
            client.recognize(SYNC, audio.data_url, AsrOptions(language="xx"))

        assert caught.value.remote_code == "InvalidParameter"
        assert caught.value.request_id

    def test_unknown_model_pauses(self, client: DashScopeClient, audio: Audio) -> None:
        """An unknown model id fails every file alike, so it is an account/config error."""
        with pytest.raises(AccountError):
            client.recognize("qwen9-asr-nonexistent", audio.data_url, AsrOptions())

    def test_wrong_key(self, emulator: Emulator, audio: Audio) -> None:
        """A refused key is AccountError, and the key appears in no message, repr or log line."""
        key = "sk-wrong-key-which-must-not-leak"
        with make_client(emulator.base_url, key) as dashscope, structlog.testing.capture_logs() as logs:
            with pytest.raises(AccountError) as caught:
                dashscope.recognize(SYNC, audio.data_url, AsrOptions())
            assert key not in repr(dashscope)

        assert caught.value.remote_code == "InvalidApiKey"
        assert key not in all_text(caught.value)
        assert key not in repr(logs)

    def test_key_with_header_breaking_characters(self, emulator: Emulator) -> None:
        """A key that cannot be a header value is refused up front, without quoting it."""
        key = "sk-abc\x01def"
        with pytest.raises(ValueError, match="api_key") as caught:
            DashScopeClient(emulator.base_url, key)
        assert key not in str(caught.value)

    def test_key_file_newline_is_tolerated(self, emulator: Emulator, audio: Audio) -> None:
        """The trailing newline of a key file is not part of the key."""
        with make_client(emulator.base_url, API_KEY + "\n") as dashscope:
            assert dashscope.recognize(SYNC, audio.data_url, AsrOptions()).text == audio.text


ERROR_CASES = [
    (Fault(path="generation", status=401, code="InvalidApiKey"), AccountError, "InvalidApiKey"),
    (Fault(path="generation", status=403, code="Model.AccessDenied"), AccountError, "Model.AccessDenied"),
    (Fault(path="generation", status=400, code="Arrearage"), AccountError, "Arrearage"),
    (
        Fault(
            path="generation",
            status=429,
            code="Throttling.AllocationQuota",
            message="Free allocated quota exceeded.",
        ),
        AccountError,
        "Throttling.AllocationQuota",
    ),
    (Fault(path="generation", status=400, code="InvalidParameter"), RemoteRejectedError, "InvalidParameter"),
    (
        Fault(path="generation", status=400, code="DataInspectionFailed"),
        RemoteRejectedError,
        "DataInspectionFailed",
    ),
    (
        Fault(path="generation", status=415, code="BadRequest.UnsupportedFileFormat"),
        RemoteRejectedError,
        "BadRequest.UnsupportedFileFormat",
    ),
    (
        Fault(path="generation", ok_error=True, code="InvalidParameter"),
        RemoteRejectedError,
        "InvalidParameter",
    ),
    (
        Fault(path="generation", status=503, code="ServiceUnavailable"),
        AsrUnavailableError,
        "ServiceUnavailable",
    ),
    (Fault(path="generation", status=500, code="InternalError"), AsrUnavailableError, "InternalError"),
    (
        Fault(path="generation", status=429, code="Throttling.RateQuota"),
        AsrUnavailableError,
        "Throttling.RateQuota",
    ),
    (
        Fault(path="generation", status=415, code="BadRequest.InputDownloadFailed"),
        AsrUnavailableError,
        "BadRequest.InputDownloadFailed",
    ),
    (Fault(path="generation", ok_error=True, code="InternalError"), AsrUnavailableError, "InternalError"),
    (Fault(path="generation", html=True), AsrUnavailableError, "Unknown"),
    (Fault(path="generation", malformed=True), AsrUnavailableError, "Unknown"),
    (Fault(path="generation", reset=True), AsrUnavailableError, None),
]


class TestErrorMapping:
    @pytest.mark.parametrize(
        ("fault", "expected", "code"), ERROR_CASES, ids=[f"{c[0].kind}-{c[2]}" for c in ERROR_CASES]
    )
    def test_fault(
        self,
        emulator: Emulator,
        client: DashScopeClient,
        audio: Audio,
        fault: Fault,
        expected: type[DropscribeError],
        code: str | None,
    ) -> None:
        """Each failure mode lands in the error class the service acts on, with its code."""
        emulator.add_fault(fault)

        with pytest.raises(DropscribeError) as caught:
            client.recognize(SYNC, audio.data_url, AsrOptions())

        assert type(caught.value) is expected
        assert getattr(caught.value, "remote_code", None) == code
        assert API_KEY not in all_text(caught.value)
        # the same call works once the fault is used up: nothing stuck in the client
        assert client.recognize(SYNC, audio.data_url, AsrOptions()).text == audio.text

    def test_error_carries_request_id(
        self, emulator: Emulator, client: DashScopeClient, audio: Audio
    ) -> None:
        """A JSON error's request_id reaches the exception, for the log and the error sidecar."""
        emulator.add_fault(Fault(path="generation", status=400, code="InvalidParameter", message="bad audio"))

        with pytest.raises(RemoteRejectedError) as caught:
            client.recognize(SYNC, audio.data_url, AsrOptions())

        [record] = recorded(emulator, "generation")
        assert caught.value.request_id == record["request_id"]
        assert caught.value.message == "bad audio"

    def test_retry_after(self, emulator: Emulator, client: DashScopeClient, audio: Audio) -> None:
        """A Retry-After header travels with the throttling error."""
        emulator.add_fault(Fault(path="generation", status=429, code="Throttling", retry_after=7.0))

        with pytest.raises(AsrUnavailableError) as caught:
            client.recognize(SYNC, audio.data_url, AsrOptions())

        assert caught.value.retry_after_s == 7.0

    def test_read_timeout(self, emulator: Emulator, audio: Audio) -> None:
        """An answer slower than timeout_s is a transient error, not a hang."""
        emulator.add_fault(Fault(path="generation", delay_s=2.0))
        with make_client(emulator.base_url, timeout_s=0.5) as dashscope:
            started = time.monotonic()
            with pytest.raises(AsrUnavailableError, match="ReadTimeout"):
                dashscope.recognize(SYNC, audio.data_url, AsrOptions())
        assert time.monotonic() - started < 1.5

    def test_connection_refused(self, audio: Audio) -> None:
        """Nobody listening is a transient error."""
        with make_client("http://127.0.0.1:9/api/v1") as dashscope, pytest.raises(AsrUnavailableError):
            dashscope.recognize(SYNC, audio.data_url, AsrOptions())

    def test_server_rate_limit_without_client_limit(
        self, start_emulator: Callable[..., Emulator], audio: Audio
    ) -> None:
        """The emulator's RPM quota answers 429 Throttling.RateQuota, a transient error."""
        emu = start_emulator(requests_per_minute=2)
        with make_client(emu.base_url) as dashscope:
            dashscope.recognize(SYNC, audio.data_url, AsrOptions())
            dashscope.recognize(SYNC, audio.data_url, AsrOptions())
            with pytest.raises(AsrUnavailableError) as caught:
                dashscope.recognize(SYNC, audio.data_url, AsrOptions())
        assert caught.value.remote_code == "Throttling.RateQuota"


@pytest.mark.timing
class TestLimits:
    def test_requests_per_minute(self, emulator: Emulator, audio: Audio) -> None:
        """Concurrent workers sharing one client start at most one request per 60/RPM seconds."""
        with make_client(emulator.base_url, requests_per_minute=240, concurrency=4) as dashscope:
            run_in_threads(5, lambda: dashscope.recognize(SYNC, audio.data_url, AsrOptions()))

        times = sorted(datetime.fromisoformat(r["time"]) for r in recorded(emulator, "generation", 5))
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
        assert len(times) == 5
        assert min(gaps) >= 0.2  # 0.25 s apart, less the emulator's clock granularity

    def test_concurrency_cap(self, emulator: Emulator, audio: Audio) -> None:
        """No more than `concurrency` calls are in flight at once."""
        emulator.add_fault(Fault(path="generation", delay_s=0.5, times=4))
        with make_client(emulator.base_url, concurrency=2) as dashscope:
            started = time.monotonic()
            run_in_threads(4, lambda: dashscope.recognize(SYNC, audio.data_url, AsrOptions()))
            elapsed = time.monotonic() - started
        assert elapsed >= 1.0  # two waves of two

    def test_task_polls_are_paced(self, client: DashScopeClient) -> None:
        """Task polls keep to 10 per second, half the account's 20 QPS, so none is throttled."""
        started = time.monotonic()
        states = [client.poll_task("no-such-task") for _ in range(15)]
        assert time.monotonic() - started >= 1.3
        assert {state.status for state in states} == {"UNKNOWN"}


def run_in_threads(count: int, call: Callable[[], object]) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001  (re-raised in the test thread below)
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


class TestRateLimiter:
    def test_spacing(self) -> None:
        """Six acquisitions at 600/min from three threads take at least five intervals."""
        limiter = RateLimiter(600)

        def twice() -> None:
            limiter.acquire()
            limiter.acquire()

        started = time.monotonic()
        run_in_threads(3, twice)
        assert time.monotonic() - started >= 0.49

    def test_zero_is_unlimited(self) -> None:
        """per_minute 0 never waits."""
        limiter = RateLimiter(0)
        started = time.monotonic()
        for _ in range(1000):
            limiter.acquire()
        assert time.monotonic() - started < 0.5

    def test_negative_refused(self) -> None:
        """A negative rate is a config bug."""
        with pytest.raises(ValueError, match="per_minute"):
            RateLimiter(-1)


# ------------------------------------------------------------------------------------------------


class TestTemporaryUpload:
    def test_round_trip(self, emulator: Emulator, client: DashScopeClient, audio: Audio) -> None:
        """getPolicy, upload, then recognize the oss:// URL with the resolve header."""
        url = client.upload_temp(SYNC, f"{audio.sha256}/0.wav", audio.data)

        result = client.recognize(SYNC, url, AsrOptions(), oss_resolve=True)

        assert url.startswith("oss://dashscope-instant/")
        assert url.endswith(f"/{audio.sha256}/0.wav")
        assert result.text == audio.text
        [upload] = recorded(emulator, "/_emulator/oss")
        [generation] = recorded(emulator, "generation")
        assert upload["audio_sha256"] == audio.sha256
        assert header(upload, "Authorization") is None  # the API key stays with the API host
        assert generation["audio_kind"] == "oss"
        assert header(generation, "X-DashScope-OssResourceResolve") == "enable"

    def test_through_storage_adapter(self, client: DashScopeClient, audio: Audio) -> None:
        """DashScopeTempStorage.put sends the bytes from the stream's position on; the API reads them."""
        storage = DashScopeTempStorage(client)
        stream = io.BytesIO(b"HEADER" + audio.data)
        stream.seek(6)

        url = storage.put(f"{audio.sha256}/0.wav", stream, len(audio.data), "audio/wav", SYNC)
        storage.delete(f"{audio.sha256}/0.wav")

        assert client.recognize(SYNC, url, AsrOptions(), oss_resolve=storage.oss_resolve).text == audio.text

    def test_a_staged_file_is_uploaded_whole(
        self, client: DashScopeClient, audio: Audio, tmp_path: Path
    ) -> None:
        staged = tmp_path / "chunk-0000.wav"
        staged.write_bytes(audio.data)

        url = DashScopeTempStorage(client).put_file(f"{audio.sha256}/0.wav", staged, "audio/wav", SYNC)

        assert url.startswith("oss://")
        assert client.recognize(SYNC, url, AsrOptions(), oss_resolve=True).text == audio.text

    def test_without_resolve_header(self, client: DashScopeClient, audio: Audio) -> None:
        """Forgetting the resolve header is refused the way the real service refuses it."""
        url = client.upload_temp(SYNC, f"{audio.sha256}/0.wav", audio.data)

        with pytest.raises(RemoteRejectedError) as caught:
            client.recognize(SYNC, url, AsrOptions())
        assert caught.value.remote_code == "InvalidParameter.DataInspection"

    def test_policy_is_cached(self, emulator: Emulator, client: DashScopeClient, audio: Audio) -> None:
        """One certificate serves several uploads while it lives; its secrets stay out of repr."""
        client.upload_temp(SYNC, "a/0.wav", audio.data)
        client.upload_temp(SYNC, "b/0.wav", io.BytesIO(audio.data))
        policy = client.get_upload_policy(SYNC)

        assert len(recorded(emulator, "/uploads")) == 1
        assert policy.signature not in repr(policy)
        assert policy.policy not in repr(policy)

    def test_same_name_twice(self, client: DashScopeClient, audio: Audio) -> None:
        """Re-uploading a content-named object ("already exists") is a success with the same URL."""
        first = client.upload_temp(SYNC, f"{audio.sha256}/0.wav", audio.data)
        second = client.upload_temp(SYNC, f"{audio.sha256}/0.wav", audio.data)

        assert first == second

    def test_expired_policy_is_refetched_once(
        self, emulator: Emulator, client: DashScopeClient, audio: Audio
    ) -> None:
        """On "Policy expired" the client gets a new certificate and sends the whole file again."""
        emulator.add_fault(
            Fault(
                path="/_emulator/oss",
                status=403,
                code="AccessDenied",
                message="Invalid according to Policy: Policy expired.",
            )
        )
        stream = io.BytesIO(audio.data)

        url = client.upload_temp(SYNC, f"{audio.sha256}/0.wav", stream)

        assert len(recorded(emulator, "/uploads", 2)) == 2
        assert client.recognize(SYNC, url, AsrOptions(), oss_resolve=True).text == audio.text

    def test_upload_failure_is_transient(
        self, emulator: Emulator, client: DashScopeClient, audio: Audio
    ) -> None:
        """An OSS error other than an expired policy is StorageUnavailableError."""
        emulator.add_fault(Fault(path="/_emulator/oss", status=500, code="InternalError"))

        with pytest.raises(StorageUnavailableError) as caught:
            client.upload_temp(SYNC, f"{audio.sha256}/0.wav", audio.data)
        assert caught.value.remote_code == "InternalError"

    def test_upload_host_unreachable(self, emulator: Emulator, client: DashScopeClient, audio: Audio) -> None:
        """A reset on the upload host is StorageUnavailableError, not an ASR error."""
        emulator.add_fault(Fault(path="/_emulator/oss", reset=True))

        with pytest.raises(StorageUnavailableError):
            client.upload_temp(SYNC, f"{audio.sha256}/0.wav", audio.data)

    def test_policy_throttled(self, emulator: Emulator, client: DashScopeClient, audio: Audio) -> None:
        """A throttled getPolicy is a transient storage error."""
        emulator.add_fault(Fault(path="/uploads", status=429, code="Throttling.RateQuota"))

        with pytest.raises(StorageUnavailableError):
            client.upload_temp(SYNC, f"{audio.sha256}/0.wav", audio.data)

    def test_policy_refused_pauses(self, emulator: Emulator, client: DashScopeClient, audio: Audio) -> None:
        """A getPolicy refusal other than throttling is never the file's fault: AccountError."""
        emulator.add_fault(Fault(path="/uploads", status=400, code="InvalidParameter"))

        with pytest.raises(AccountError):
            client.upload_temp(SYNC, f"{audio.sha256}/0.wav", audio.data)

    def test_too_large_for_the_certificate(self, start_emulator: Callable[..., Emulator]) -> None:
        """A file above max_file_size_mb is refused before any byte is sent."""
        emu = start_emulator(max_upload_mb=1)
        with make_client(emu.base_url) as dashscope, pytest.raises(InputRejectedError) as caught:
            dashscope.upload_temp(SYNC, "big/0.wav", b"\0" * (1024 * 1024 + 1))
        assert caught.value.code == "too_large"
        assert requests_to(emu, "/_emulator/oss") == []

    @pytest.mark.parametrize("name", ["../x.wav", "/x.wav", "my recording.wav", "ä.wav", ""])
    def test_unsafe_names(self, client: DashScopeClient, name: str) -> None:
        """Names that are not plain ASCII segments are refused before any request."""
        with pytest.raises(ValueError, match="object name"):
            client.upload_temp(SYNC, name, b"data")


# ------------------------------------------------------------------------------------------------


class TestFiletrans:
    def test_submit_poll_fetch(self, emulator: Emulator, client: DashScopeClient, audio: Audio) -> None:
        """A task from an oss:// upload runs to SUCCEEDED; its result has sentences in seconds."""
        url = client.upload_temp(FILETRANS, f"{audio.sha256}/0.wav", audio.data)

        task_id, request_id = client.submit_filetrans(
            FILETRANS, url, AsrOptions(language="en"), oss_resolve=True
        )
        state = wait_finished(client, task_id)
        result = client.fetch_transcription(state.transcription_url or "")

        [submit] = recorded(emulator, "/transcription")
        assert request_id == submit["request_id"]
        assert header(submit, "X-DashScope-Async") == "enable"
        assert header(submit, "X-DashScope-OssResourceResolve") == "enable"
        assert submit["parameters"] == {
            "channel_id": [0],
            "language": "en",
            "enable_itn": False,
            "enable_words": False,
        }
        assert state.status == "SUCCEEDED"
        assert state.task_id == task_id
        assert state.usage_seconds == 2.0
        sentence = emulated_sentence(0, audio.sha256)
        assert result.text == sentence
        assert result.sentences == (Sentence(0.0, 2.0, sentence),)
        assert result.language == "en"
        [fetch] = recorded(emulator, "/_emulator/results/")
        assert header(fetch, "Authorization") is None

    def test_from_presigned_s3_url(
        self, emulator: Emulator, client: DashScopeClient, s3_bucket: S3Target, audio: Audio
    ) -> None:
        """A presigned URL from the S3 store feeds a task, without the resolve header."""
        storage = S3Storage(
            bucket=s3_bucket.bucket,
            endpoint_url=s3_bucket.endpoint_url,
            region=REGION,
            addressing_style="path",
        )
        url = storage.put(
            f"{audio.sha256}/0.wav", io.BytesIO(audio.data), len(audio.data), "audio/wav", FILETRANS
        )

        task_id, _ = client.submit_filetrans(FILETRANS, url, AsrOptions())
        state = wait_finished(client, task_id)
        storage.close()

        assert state.status == "SUCCEEDED"
        assert client.fetch_transcription(state.transcription_url or "").text == emulated_sentence(
            0, audio.sha256
        )

    def test_task_failure(self, emulator: Emulator, client: DashScopeClient, audio: Audio) -> None:
        """A FAILED task is a normal poll answer carrying the service's code and message."""
        emulator.add_fault(Fault(path="/transcription", task_fail=True, code="FILE_DOWNLOAD_FAILED"))
        url = client.upload_temp(FILETRANS, f"{audio.sha256}/0.wav", audio.data)

        task_id, _ = client.submit_filetrans(FILETRANS, url, AsrOptions(), oss_resolve=True)
        state = wait_finished(client, task_id)

        assert state.status == "FAILED"
        assert state.code == "FILE_DOWNLOAD_FAILED"
        assert state.message
        assert state.transcription_url is None

    def test_unknown_task(self, client: DashScopeClient) -> None:
        """A task id the service does not know (expired, other account) polls as UNKNOWN."""
        state = client.poll_task("8fab76d0-0000-0000-0000-000000000000")

        assert state.status == "UNKNOWN"
        assert state.finished

    def test_submit_errors_are_mapped(self, emulator: Emulator, client: DashScopeClient) -> None:
        """Submit-time errors follow the same classes as sync calls."""
        emulator.add_fault(Fault(path="/transcription", status=503, code="ServiceUnavailable"))

        with pytest.raises(AsrUnavailableError):
            client.submit_filetrans(FILETRANS, "https://example.invalid/a.wav", AsrOptions())

    def test_expired_result(self, emulator: Emulator, client: DashScopeClient, audio: Audio) -> None:
        """A result link that answers 403 or 404 is ResultExpiredError: resubmit, don't retry."""
        url = client.upload_temp(FILETRANS, f"{audio.sha256}/0.wav", audio.data)
        task_id, _ = client.submit_filetrans(FILETRANS, url, AsrOptions(), oss_resolve=True)
        result_url = wait_finished(client, task_id).transcription_url or ""
        emulator.add_fault(Fault(path="/_emulator/results/", status=403, code="AccessDenied"))
        emulator.add_fault(Fault(path="/_emulator/results/", status=404, code="NoSuchKey"))

        for _ in range(2):
            with pytest.raises(ResultExpiredError) as caught:
                client.fetch_transcription(result_url)
            assert "Signature" not in all_text(caught.value)
        with pytest.raises(ResultExpiredError):
            client.fetch_transcription(result_url.replace("Signature=", "Signature=x"))

    def test_result_fetch_failures_hide_the_signature(
        self, emulator: Emulator, client: DashScopeClient, audio: Audio
    ) -> None:
        """Server errors and resets on the result link are transient and never show its query."""
        url = client.upload_temp(FILETRANS, f"{audio.sha256}/0.wav", audio.data)
        task_id, _ = client.submit_filetrans(FILETRANS, url, AsrOptions(), oss_resolve=True)
        result_url = wait_finished(client, task_id).transcription_url or ""
        emulator.add_fault(Fault(path="/_emulator/results/", status=500, code="InternalError"))
        emulator.add_fault(Fault(path="/_emulator/results/", reset=True))

        for _ in range(2):
            with pytest.raises(AsrUnavailableError) as caught:
                client.fetch_transcription(result_url)
            assert "Signature" not in all_text(caught.value)
            assert "Expires" not in all_text(caught.value)


# ------------------------------------------------------------------------------------------------


def transcribe_task(recognizer: Recognizer, file_url: str, timeout_s: float = 15.0) -> AsrResult:
    """What the pipeline does with a recognizer, written against the port alone."""
    task_id, _ = recognizer.submit_filetrans(FILETRANS, file_url, AsrOptions(), oss_resolve=True)
    deadline = time.monotonic() + timeout_s
    while not (state := recognizer.poll_task(task_id)).finished:
        assert time.monotonic() < deadline, f"task still {state.status}"
        time.sleep(0.1)
    assert state.transcription_url, state
    return recognizer.fetch_transcription(state.transcription_url)


class TestRecognizerPort:
    def test_client_serves_the_port(self, client: DashScopeClient, audio: Audio) -> None:
        """Sync recognition and a whole task work through the port's methods alone."""
        recognizer: Recognizer = client
        url = client.upload_temp(FILETRANS, f"{audio.sha256}/0.wav", audio.data)

        assert recognizer.recognize(SYNC, audio.data_url, AsrOptions()).text == audio.text
        assert transcribe_task(recognizer, url).text == emulated_sentence(0, audio.sha256)

    def test_expired_result_is_the_port_error(
        self, emulator: Emulator, client: DashScopeClient, audio: Audio
    ) -> None:
        """The error the port promises for a gone result is core's, whatever module it is taken from."""
        url = client.upload_temp(FILETRANS, f"{audio.sha256}/0.wav", audio.data)
        emulator.add_fault(Fault(path="/_emulator/results/", status=404, code="NoSuchKey"))

        with pytest.raises(recognition.ResultExpiredError):
            transcribe_task(client, url)
        assert ResultExpiredError is recognition.ResultExpiredError


class TestPureParts:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            (
                "https://bucket.oss-cn-beijing.aliyuncs.com/r/t.json?Expires=1&OSSAccessKeyId=LT&Signature=abc",
                "https://bucket.oss-cn-beijing.aliyuncs.com/r/t.json",
            ),
            ("http://127.0.0.1:9000/b/k.flac?X-Amz-Signature=ff#frag", "http://127.0.0.1:9000/b/k.flac"),
            ("https://user:secret@host/p", "https://host/p"),
            ("oss://dashscope-instant/x/y.wav", "oss://dashscope-instant/x/y.wav"),
            ("data:audio/wav;base64,UklGRiQAAABXQVZF", "data:audio/wav;base64,…"),
        ],
    )
    def test_redact_url(self, url: str, expected: str) -> None:
        """Query strings, fragments, user info and data payloads never survive redaction."""
        assert redact_url(url) == expected

    def test_redact_text(self) -> None:
        """URLs inside free text are redacted, secrets masked, long texts cut."""
        text = "failed to fetch https://h/x.wav?Signature=s3cr3t with key sk-123 " + "x" * 1000

        redacted = redact_text(text, "sk-123")

        assert "s3cr3t" not in redacted
        assert "sk-123" not in redacted
        assert "https://h/x.wav" in redacted
        assert len(redacted) <= 500

    def test_generation_body_shape(self) -> None:
        """System context first, then the audio, then parameters (docs/dashscope.md, "Sync recognition")."""
        body = make_generation_body(SYNC, "oss://a/b.wav", AsrOptions(language="zh", context="术语"))

        assert body == {
            "model": SYNC,
            "input": {
                "messages": [
                    {"role": "system", "content": [{"text": "术语"}]},
                    {"role": "user", "content": [{"audio": "oss://a/b.wav"}]},
                ]
            },
            "parameters": {
                "result_format": "message",
                "asr_options": {"enable_itn": False, "language": "zh"},
            },
        }

    @pytest.mark.parametrize(
        ("model", "options"),
        [
            (SYNC, AsrOptions(language="zh", context='术语 "quoted" \\ \x00audio\x00')),
            ("qwen-audio-asr", AsrOptions()),
        ],
    )
    def test_a_streamed_body_is_the_built_one(self, model: str, options: AsrOptions) -> None:
        """Before, the audio's base64, after: the same JSON as the body built around the whole data URL."""
        audio = InlineAudio("unused", "audio/flac", 5)
        encoded = base64.b64encode(b"12345").decode()

        before, after = generation_body_around(model, audio, options)

        assert json.loads(before + encoded.encode() + after) == make_generation_body(
            model, f"data:audio/flac;base64,{encoded}", options
        )
        assert len(before) + len(encoded) + len(after) == len(
            json.dumps(make_generation_body(model, f"data:audio/flac;base64,{encoded}", options))
        )

    def test_usage_in_audio_tokens_is_seconds(self) -> None:
        """qwen-audio-asr bills in tokens, 25 per second; a boolean "seconds" counts as none."""
        message = {"message": {"content": [{"text": "hi"}]}}
        tokens = {"output": {"choices": [message]}, "usage": {"input_tokens_details": {"audio_tokens": 50}}}
        garbage = {"output": {"choices": [message]}, "usage": {"seconds": True}}

        assert parse_generation(tokens).usage_seconds == 2.0
        assert parse_generation(garbage).usage_seconds == 0.0
        assert parse_generation(tokens).text == "hi"

    def test_task_answers(self) -> None:
        """The list form of other model families is read; SUCCEEDED without a result URL is malformed."""
        listed = {"output": {"task_status": "SUCCEEDED", "results": [{"transcription_url": "https://r/1"}]}}

        assert parse_task("t-1", listed) == TaskState("t-1", "SUCCEEDED", transcription_url="https://r/1")
        with pytest.raises(MalformedResponseError, match="transcription_url"):
            parse_task("t-1", {"output": {"task_status": "SUCCEEDED"}})
        with pytest.raises(MalformedResponseError):
            parse_task("t-1", {"output": []})

    def test_result_files(self) -> None:
        """No transcript is an empty result; sentences are in seconds, with the commonest language."""
        sentences = [
            {"begin_time": 0, "end_time": 1500, "text": "Hello. ", "language": "en"},
            {"begin_time": 1500, "end_time": 2000, "text": "Ja.", "language": "de"},
            {"begin_time": 2000, "end_time": 2500, "text": "Yes.", "language": "en"},
        ]

        assert parse_transcription({"transcripts": []}) == AsrResult(text="")
        result = parse_transcription({"transcripts": [{"sentences": sentences}]})
        assert result.text == "Hello. Ja.Yes."
        assert result.sentences[0] == Sentence(0.0, 1.5, "Hello. ")
        assert result.language == "en"
        with pytest.raises(MalformedResponseError):
            parse_transcription({"transcripts": [{"sentences": [{"begin_time": 0, "text": "x"}]}]})

    @pytest.mark.parametrize("base_url", ["ftp://host/api/v1", "dashscope.aliyuncs.com", "https://h/api?k=v"])
    def test_bad_base_url(self, base_url: str) -> None:
        """A base URL that is not plain http(s) is refused at construction."""
        with pytest.raises(ValueError, match="base_url"):
            DashScopeClient(base_url, API_KEY)

    def test_repr_has_no_key(self) -> None:
        """The client's repr names the endpoint only."""
        with DashScopeClient("https://dashscope.aliyuncs.com/api/v1/", API_KEY) as dashscope:
            assert repr(dashscope) == "DashScopeClient(base_url='https://dashscope.aliyuncs.com/api/v1')"
