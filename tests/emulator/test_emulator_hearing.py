"""The emulator that hears: with ``recognizer="pocketsphinx"`` every endpoint answers the English words
in real speech (made with espeak-ng), not placeholder text.

pocketsphinx is rough on synthetic speech, so the tests ask for a share of the spoken words, well above
what placeholder text or a wrong recognition scores (nothing), not for an exact transcript.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from dropscribe.emulator import Emulator, EmulatorConfig
from tests.emulator.emulator_helpers import (
    API_KEY,
    GENERATION,
    FileServer,
    api_client,
    data_url,
    submit_task,
    sync_body,
    wait_for_task,
)
from tests.support.audio import ESPEAK

pytest.importorskip("pocketsphinx", reason="pocketsphinx is not installed (pip install 'dropscribe[hear]')")

SPOKEN = "hello world, this is a test of the emergency broadcast system"
MIN_SHARED = 0.4  # measured: 6 of the 11 words come back; placeholder text shares none


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def shared(heard: str) -> float:
    """The share of the spoken words that were heard."""
    spoken = _words(SPOKEN)
    return len(spoken & _words(heard)) / len(spoken)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """SPOKEN as a WAV, in the US voice at a calm pace: what pocketsphinx's en-US model hears best."""
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(
        [ESPEAK, "-v", "en-us", "-s", "140", "-w", str(path), "--stdin"],
        input=SPOKEN.encode(),
        capture_output=True,
        timeout=60,
        check=True,
    )
    return path.read_bytes()


@pytest.fixture(scope="module")
def hearing() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(task_run_s=0.3), recognizer="pocketsphinx") as emulator:
        yield emulator


def test_sync_recognition_answers_the_words_spoken(hearing: Emulator, speech: bytes) -> None:
    with api_client(hearing) as http:
        reply = http.post(GENERATION, json=sync_body(data_url(speech)), timeout=120)

    assert reply.status_code == 200, reply.text
    text = reply.json()["output"]["choices"][0]["message"]["content"][0]["text"]
    assert shared(text) >= MIN_SHARED, text
    assert "emulated" not in text


def test_openai_endpoint_answers_the_words_spoken(hearing: Emulator, speech: bytes, tmp_path: Path) -> None:
    path = tmp_path / "speech.wav"
    path.write_bytes(speech)
    client = openai.OpenAI(base_url=hearing.openai_base_url, api_key="EMPTY", max_retries=0, timeout=120)

    with path.open("rb") as audio:
        result = client.audio.transcriptions.create(model="Qwen/Qwen3-ASR-1.7B", file=audio)

    assert shared(result.text) >= MIN_SHARED, result.text


def test_file_transcription_gives_heard_sentences_with_times(hearing: Emulator, speech: bytes) -> None:
    server = FileServer()
    try:
        with api_client(hearing) as http:
            http.timeout = httpx.Timeout(120)
            task_id = submit_task(http, server.put("/speech.wav", speech), enable_words=True)
            final = wait_for_task(http, task_id)
        result = httpx.get(final["output"]["result"]["transcription_url"], timeout=10).json()
    finally:
        server.close()

    transcript = result["transcripts"][0]
    assert shared(transcript["text"]) >= MIN_SHARED, transcript["text"]
    sentences = transcript["sentences"]
    assert " ".join(s["text"] for s in sentences) == transcript["text"]
    duration_ms = final["usage"]["seconds"] * 1000
    times = [t for s in sentences for t in (s["begin_time"], s["end_time"])]
    assert times == sorted(times)
    assert times[0] >= 0
    assert times[-1] <= duration_ms
    for sentence in sentences:
        assert " ".join(w["text"] for w in sentence["words"]) == sentence["text"]


def test_the_placeholder_stays_the_default(speech: bytes) -> None:
    """The same speech through a default emulator: placeholder text, which the threshold rejects."""
    with Emulator(EmulatorConfig()) as plain, api_client(plain) as http:
        reply = http.post(GENERATION, json=sync_body(data_url(speech)), timeout=30)

    text = reply.json()["output"]["choices"][0]["message"]["content"][0]["text"]
    assert text.startswith("emulated transcript")
    assert shared(text) < MIN_SHARED


def test_an_unknown_recognizer_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown recognizer 'whisper'"):
        Emulator(EmulatorConfig(), recognizer="whisper")


def test_missing_extra_is_a_clear_error_at_start() -> None:
    """``dropscribe emulate --recognizer pocketsphinx`` where pocketsphinx cannot be imported."""
    script = (
        "import sys; sys.modules['pocketsphinx'] = None\n"  # as if the extra were not installed
        "from dropscribe.emulator.cli import main\n"
        "sys.exit(main(['--recognizer', 'pocketsphinx', '--port', '0', '--api-key', 'k']))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)

    assert run.returncode == 2, run.stdout + run.stderr
    assert "install dropscribe[hear]" in run.stderr
    assert "Traceback" not in run.stderr
    assert "serving" not in run.stdout
    assert API_KEY not in run.stderr
