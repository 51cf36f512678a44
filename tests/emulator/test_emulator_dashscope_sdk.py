"""The official ``dashscope`` SDK against the emulator: sync recognition (data URL, local path and
``file://`` with the SDK's own upload to temporary storage), file transcription with submit and wait,
and the SDK's view of an error. Whatever the SDK sends, the emulator must understand as DashScope does.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dashscope
import httpx
import pytest
from dashscope import MultiModalConversation
from dashscope.audio.qwen_asr import QwenTranscription
from dashscope.utils.oss_utils import OssUtils

from dropscribe.emulator import Emulator, EmulatorConfig, emulated_sentence, emulated_text
from tests.emulator.emulator_helpers import API_KEY, FileServer, sha, sine

GENERATION = "/services/aigc/multimodal-generation/generation"
FILETRANS_MODEL = "qwen3-asr-flash-filetrans"
RESOLVE = {"X-DashScope-OssResourceResolve": "enable"}


@pytest.fixture
def sdk_emulator() -> Iterator[Emulator]:
    """An emulator that accepts only the test key, set as the SDK's base URL and key for the test."""
    saved = (dashscope.base_http_api_url, dashscope.api_key)
    with Emulator(EmulatorConfig(api_keys={API_KEY}, task_run_s=0.3)) as emulator:
        dashscope.base_http_api_url = emulator.base_url
        dashscope.api_key = API_KEY
        try:
            yield emulator
        finally:
            dashscope.base_http_api_url, dashscope.api_key = saved


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.wav"
    path.write_bytes(sine(2.0))
    return path


def _recognize(audio: str) -> Any:
    messages = [{"role": "user", "content": [{"audio": audio}]}]
    return MultiModalConversation.call(
        model="qwen3-asr-flash", messages=messages, result_format="message", asr_options={"enable_itn": False}
    )


def _text(response: Any) -> str:
    text: str = response.output["choices"][0]["message"]["content"][0]["text"]
    return text


def _calls(emulator: Emulator, suffix: str) -> list[dict[str, Any]]:
    return [r for r in emulator.requests() if r["path"].endswith(suffix)]


def test_sync_recognition_of_a_data_url(sdk_emulator: Emulator, clip: Path) -> None:
    data = clip.read_bytes()

    response = _recognize("data:audio/wav;base64," + base64.b64encode(data).decode("ascii"))

    assert response.status_code == 200, response.message
    assert _text(response) == emulated_text(2.0, sha(data))
    assert response.output["choices"][0]["message"]["annotations"][0]["type"] == "audio_info"
    assert response.usage["seconds"] == 2
    (call,) = _calls(sdk_emulator, GENERATION)
    assert (call["audio_kind"], call["audio_sha256"]) == ("data", sha(data))


@pytest.mark.parametrize("form", ["path", "file_uri"])
def test_sync_recognition_of_a_local_file_uploads_it_first(
    sdk_emulator: Emulator, clip: Path, form: str
) -> None:
    """The SDK uploads a local file to temporary storage and sends ``oss://`` with the resolve header."""
    response = _recognize(str(clip) if form == "path" else clip.as_uri())

    assert response.status_code == 200, response.message
    assert _text(response) == emulated_text(2.0, sha(clip.read_bytes()))
    paths = [r["path"] for r in sdk_emulator.requests()]
    assert paths == ["/api/v1/uploads", "/_emulator/oss", "/api/v1" + GENERATION]
    (call,) = _calls(sdk_emulator, GENERATION)
    assert call["audio_kind"] == "oss"
    assert call["audio_sha256"] == sha(clip.read_bytes())
    assert call["headers"].get("X-DashScope-OssResourceResolve") == "enable"


def test_file_transcription_of_an_uploaded_file(sdk_emulator: Emulator, clip: Path) -> None:
    """Upload with the SDK, submit with ``async_call``, poll with ``wait``, read the result file."""
    url, _certificate = OssUtils.upload(model=FILETRANS_MODEL, file_path=str(clip), api_key=API_KEY)
    assert url.startswith("oss://")

    task = QwenTranscription.async_call(model=FILETRANS_MODEL, file_url=url, headers=RESOLVE)
    assert task.status_code == 200, task.message
    assert task.output["task_status"] == "PENDING"
    final = QwenTranscription.wait(task=task, wait_timeout=30)

    assert final.status_code == 200, final.message
    assert final.output["task_status"] == "SUCCEEDED"
    assert final.usage["seconds"] == 2
    result = httpx.get(final.output["result"]["transcription_url"], timeout=10).json()
    sentence = result["transcripts"][0]["sentences"][0]
    assert sentence["text"] == emulated_sentence(0, sha(clip.read_bytes()))
    assert (sentence["begin_time"], sentence["end_time"]) == (0, 2000)


def test_file_transcription_of_an_http_url_with_the_blocking_call(sdk_emulator: Emulator) -> None:
    server = FileServer()
    try:
        data = sine(3.0)
        final = QwenTranscription.call(model=FILETRANS_MODEL, file_url=server.put("/talk.wav", data))
    finally:
        server.close()

    assert final.status_code == 200, final.message
    assert final.output["task_status"] == "SUCCEEDED"
    assert final.usage["seconds"] == 3
    (submit,) = _calls(sdk_emulator, "/services/audio/asr/transcription")
    assert submit["audio_sha256"] == sha(data)


def test_an_oss_url_without_the_resolve_header_fails_the_task(sdk_emulator: Emulator, clip: Path) -> None:
    """``async_call`` does not add the header by itself: the task fails to download, as documented."""
    url, _certificate = OssUtils.upload(model=FILETRANS_MODEL, file_path=str(clip), api_key=API_KEY)

    final = QwenTranscription.wait(
        task=QwenTranscription.async_call(model=FILETRANS_MODEL, file_url=url), wait_timeout=30
    )

    assert final.output["task_status"] == "FAILED"
    assert final.output["code"] == "FILE_DOWNLOAD_FAILED"


def test_a_wrong_key_is_reported_by_the_sdk(sdk_emulator: Emulator, clip: Path) -> None:
    audio = "data:audio/wav;base64," + base64.b64encode(clip.read_bytes()).decode("ascii")
    messages = [{"role": "user", "content": [{"audio": audio}]}]

    response: Any = MultiModalConversation.call(
        model="qwen3-asr-flash", messages=messages, api_key="sk-wrong"
    )

    assert response.status_code == 401
    assert response.code == "InvalidApiKey"
    assert "sk-wrong" not in str(sdk_emulator.requests())
