"""The OpenAI-compatible (vLLM) transcription endpoint over real HTTP, with the official ``openai`` client."""

from __future__ import annotations

import io
import subprocess
import sys
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from dropscribe.emulator import Emulator, Fault, emulated_text
from tests.emulator.emulator_helpers import sha, sine

MODEL = "Qwen/Qwen3-ASR-1.7B"
TRANSCRIPTIONS = "/audio/transcriptions"
MIB = 1024 * 1024


def _client(emulator: Emulator, *, api_key: str = "EMPTY", max_retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=emulator.openai_base_url, api_key=api_key, max_retries=max_retries)


def _post(
    emulator: Emulator,
    audio: bytes | None,
    headers: dict[str, str] | None = None,
    **form: str,
) -> httpx.Response:
    files = {"file": ("clip.wav", audio, "audio/wav")} if audio is not None else None
    data = {"model": MODEL, **form}
    return httpx.post(
        emulator.openai_base_url + TRANSCRIPTIONS, data=data, files=files, headers=headers, timeout=30
    )


def _silent_wav(total_bytes: int) -> bytes:
    """A 16 kHz mono 16-bit WAV of exactly ``total_bytes`` (the 44-byte header included)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(bytes(total_bytes - 44))
    data = buffer.getvalue()
    assert len(data) == total_bytes
    return data


@pytest.fixture
def wav_file(tmp_path: Path, wav2: bytes) -> Path:
    path = tmp_path / "clip.wav"
    path.write_bytes(wav2)
    return path


@pytest.fixture
def keyed(start_emulator: Callable[..., Emulator]) -> Emulator:
    return start_emulator(api_keys={"sk-local-vllm"})


def test_the_official_client_gets_the_emulated_text_and_the_log_proves_the_bytes(
    emulator: Emulator, wav_file: Path, wav2: bytes
) -> None:
    with _client(emulator) as client, wav_file.open("rb") as audio:
        result = client.audio.transcriptions.create(model=MODEL, file=audio)

    assert result.text == emulated_text(2.0, sha(wav2))
    assert result.usage is not None
    assert result.usage.type == "duration"
    (record,) = emulator.requests()
    assert record["path"] == "/v1/audio/transcriptions"
    assert record["status"] == 200
    assert record["model"] == MODEL
    assert record["audio_sha256"] == sha(wav2)
    assert record["audio_bytes"] == len(wav2)
    assert record["duration_s"] == pytest.approx(2.0)


def test_json_answer_is_text_and_usage_seconds_rounded_up_like_vllm(emulator: Emulator) -> None:
    audio = sine(1.2)
    response = _post(emulator, audio, language="en", prompt="Board meeting, ACME GmbH")

    assert response.status_code == 200
    assert response.json() == {
        "text": emulated_text(1.2, sha(audio)),
        "usage": {"type": "duration", "seconds": 2},
    }
    record = emulator.requests()[-1]
    assert record["context"] == "Board meeting, ACME GmbH"
    assert record["parameters"]["language"] == "en"
    assert record["parameters"]["response_format"] == "json"


def test_text_response_format_answers_plain_text(emulator: Emulator, wav_file: Path, wav2: bytes) -> None:
    with _client(emulator) as client, wav_file.open("rb") as audio:
        text = client.audio.transcriptions.create(model=MODEL, file=audio, response_format="text")

    assert text == emulated_text(2.0, sha(wav2))


def test_verbose_json_is_refused_as_vllm_refuses_it_for_qwen3_asr(emulator: Emulator, wav_file: Path) -> None:
    with (
        _client(emulator) as client,
        wav_file.open("rb") as audio,
        pytest.raises(openai.BadRequestError) as err,
    ):
        client.audio.transcriptions.create(model=MODEL, file=audio, response_format="verbose_json")

    assert err.value.status_code == 400
    assert err.value.body == {
        "message": f"Currently do not support verbose_json for {MODEL}",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }


def test_unknown_model_is_the_clients_not_found_error(emulator: Emulator, wav_file: Path) -> None:
    with (
        _client(emulator) as client,
        wav_file.open("rb") as audio,
        pytest.raises(openai.NotFoundError) as err,
    ):
        client.audio.transcriptions.create(model="whisper-1", file=audio)

    assert "The model `whisper-1` does not exist." in err.value.message
    assert emulator.requests()[-1]["model"] == "whisper-1"


def test_bad_requests_get_openai_error_envelopes(emulator: Emulator) -> None:
    cases = [
        (_post(emulator, None), 400, "'file' is required"),
        (_post(emulator, sine(1.0), response_format="srt"), 400, "only support response_format"),
        (_post(emulator, b"not audio at all" * 64), 400, "Invalid or unsupported audio file."),
        (httpx.post(emulator.openai_base_url + TRANSCRIPTIONS, json={"model": MODEL}), 400, "multipart"),
        (httpx.get(emulator.openai_base_url + TRANSCRIPTIONS), 405, "use POST"),
        (httpx.get(emulator.openai_base_url + "/embeddings"), 404, "No such endpoint"),
    ]
    for response, status, words in cases:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert words in error["message"]
        assert error["code"] == status


def test_upload_cap_is_25_mib_like_vllm(emulator: Emulator) -> None:
    at_cap = _silent_wav(25 * MIB)
    accepted = _post(emulator, at_cap)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["text"] == emulated_text((25 * MIB - 44) / 32000, sha(at_cap))

    over = _silent_wav(25 * MIB + 2)
    with _client(emulator) as client, pytest.raises(openai.APIStatusError) as err:
        client.audio.transcriptions.create(model=MODEL, file=("big.wav", over, "audio/wav"))

    # vLLM answers an oversized upload with a 400, as any other bad request
    assert err.value.status_code == 400
    assert err.value.body == {
        "message": "Maximum file size exceeded",
        "type": "BadRequestError",
        "param": "audio_filesize_mb",
        "code": 400,
    }
    record = emulator.requests()[-1]
    assert (record["status"], record["audio_bytes"], record["audio_sha256"]) == (400, len(over), sha(over))


def test_the_cap_is_configurable(start_emulator: Callable[..., Emulator]) -> None:
    small = start_emulator(openai_max_upload_mb=0.05)
    assert _post(small, sine(2.0)).status_code == 400  # 64 kB of WAV
    assert _post(small, sine(1.0)).status_code == 200


def test_marker_option_leaves_the_language_prefix_in(start_emulator: Callable[..., Emulator]) -> None:
    marked = start_emulator(asr_text_marker=True)
    audio = sine(1.0)

    english = _post(marked, audio).json()["text"]
    german = _post(marked, audio, language="de").json()["text"]

    assert english == "language English<asr_text>" + emulated_text(1.0, sha(audio))
    assert german.startswith("language German<asr_text>emulated transcript")


def test_without_the_marker_option_the_text_is_clean(emulator: Emulator) -> None:
    assert "<asr_text>" not in _post(emulator, sine(1.0)).json()["text"]


def test_configured_keys_are_required_as_bearer(keyed: Emulator, wav_file: Path) -> None:
    with (
        _client(keyed, api_key="sk-wrong") as client,
        wav_file.open("rb") as audio,
        pytest.raises(openai.AuthenticationError) as err,
    ):
        client.audio.transcriptions.create(model=MODEL, file=audio)
    assert err.value.code == "invalid_api_key"
    assert _post(keyed, sine(1.0)).status_code == 401
    assert httpx.get(keyed.openai_base_url + "/models").status_code == 401

    with _client(keyed, api_key="sk-local-vllm") as client, wav_file.open("rb") as audio:
        assert client.audio.transcriptions.create(model=MODEL, file=audio).text.startswith("emulated")
    logged = [v for r in keyed.requests() for k, v in r["headers"].items() if k.lower() == "authorization"]
    assert "Bearer sk-local-vllm" not in logged
    assert "Bearer ***" in logged


def test_without_configured_keys_no_key_is_needed(emulator: Emulator) -> None:
    assert _post(emulator, sine(1.0)).status_code == 200


def test_models_lists_the_served_model(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator(openai_model="Qwen/Qwen3-ASR-0.6B")
    with _client(emulator) as client:
        models = client.models.list()
    assert [m.id for m in models.data] == ["Qwen/Qwen3-ASR-0.6B"]
    assert models.data[0].owned_by == "vllm"


@pytest.mark.parametrize(
    ("status", "code", "error_type"),
    [
        (500, None, openai.InternalServerError),
        (503, None, openai.InternalServerError),
        (429, "rate_limit_exceeded", openai.RateLimitError),
    ],
)
def test_status_faults_answer_in_the_openai_envelope(
    emulator: Emulator, wav_file: Path, status: int, code: str | None, error_type: type[openai.APIStatusError]
) -> None:
    emulator.add_fault(Fault(path="audio/transcriptions", status=status, code=code, retry_after=7))
    with _client(emulator) as client, wav_file.open("rb") as audio, pytest.raises(error_type) as err:
        client.audio.transcriptions.create(model=MODEL, file=audio)

    assert err.value.status_code == status
    assert err.value.response.headers["Retry-After"] == "7"
    assert isinstance(err.value.body, dict)
    assert err.value.body["code"] == (code or status)
    assert emulator.requests()[-1]["fault"] == "status"
    assert _post(emulator, sine(1.0)).status_code == 200  # the fault was used up


def test_the_client_retries_through_a_transient_fault(
    emulator: Emulator, wav_file: Path, wav2: bytes
) -> None:
    emulator.add_fault(Fault(path="audio/transcriptions", status=503, times=1))
    with _client(emulator, max_retries=1) as client, wav_file.open("rb") as audio:
        result = client.audio.transcriptions.create(model=MODEL, file=audio)

    assert result.text == emulated_text(2.0, sha(wav2))
    assert [r["status"] for r in emulator.requests()] == [503, 200]
    assert {r["audio_sha256"] for r in emulator.requests()[1:]} == {sha(wav2)}


def test_faults_match_the_model_form_field(emulator: Emulator) -> None:
    emulator.add_fault(Fault(path="audio/transcriptions", model="other-model", status=500))
    assert _post(emulator, sine(1.0)).status_code == 200
    emulator.add_fault(Fault(path="audio/transcriptions", model=MODEL, status=500))
    assert _post(emulator, sine(1.0)).status_code == 500


@pytest.fixture
def cli_emulator() -> Iterator[str]:
    args = ["--port", "0", "--openai-model", "local-asr", "--asr-text-marker", "--api-key", "sk-cli"]
    code = f"import sys; from dropscribe.emulator.cli import main; sys.exit(main({args!r}))"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        process.stdout.readline()
        yield process.stdout.readline().strip().rsplit(" ", 1)[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_cli_options_reach_the_endpoint(cli_emulator: str) -> None:
    assert cli_emulator.endswith("/v1")
    with openai.OpenAI(base_url=cli_emulator, api_key="sk-cli", max_retries=0) as client:
        assert [m.id for m in client.models.list().data] == ["local-asr"]
        text = client.audio.transcriptions.create(model="local-asr", file=("a.wav", sine(1.0)))
    assert text.text.startswith("language English<asr_text>emulated transcript 1.00s")
