"""The request log: what is recorded, where, and that API keys never are."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx

from dropscribe.emulator import Emulator, Fault
from tests.emulator.emulator_helpers import (
    API_KEY,
    GENERATION,
    FileServer,
    api_client,
    data_url,
    sha,
    submit_task,
    sync_body,
    wait_for_task,
)

FIELDS = {
    "time",
    "method",
    "path",
    "headers",
    "model",
    "status",
    "code",
    "request_id",
    "audio_sha256",
    "audio_bytes",
    "duration_s",
    "asr_options",
    "context",
    "audio_kind",
    "task_id",
}


def test_sync_request_record(start_emulator: Callable[..., Emulator], tmp_path: Path, wav2: bytes) -> None:
    """One record per request, in memory and as a JSONL line, with the digest of the audio received."""
    log_path = tmp_path / "logs" / "requests.jsonl"
    emulator = start_emulator(log_path=log_path, api_keys={API_KEY})
    body = sync_body(data_url(wav2), context="names: Ada", asr_options={"language": "en", "enable_itn": True})
    with api_client(emulator) as http:
        reply = http.post(GENERATION, json=body)
        refused = http.post(GENERATION, json=body, headers={"Authorization": "Bearer sk-wrong-key-42"})
    emulator.stop()

    ok, denied = emulator.requests()
    assert set(ok) >= FIELDS
    assert ok["method"] == "POST"
    assert ok["path"] == "/api/v1" + GENERATION
    assert ok["model"] == "qwen3-asr-flash"
    assert (ok["status"], ok["code"]) == (200, None)
    assert ok["request_id"] == reply.json()["request_id"]
    assert (ok["audio_sha256"], ok["audio_bytes"], ok["duration_s"]) == (sha(wav2), len(wav2), 2.0)
    assert ok["asr_options"] == {"language": "en", "enable_itn": True}
    assert ok["context"] == "names: Ada"
    assert ok["audio_kind"] == "data"
    assert ok["task_id"] is None
    assert ok["headers"]["Authorization"] == "Bearer ***"
    assert (denied["status"], denied["code"]) == (401, "InvalidApiKey")
    assert denied["request_id"] == refused.json()["request_id"]

    lines = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    assert lines == [ok, denied]
    everything = log_path.read_text(encoding="utf-8") + json.dumps(emulator.requests())
    assert API_KEY not in everything
    assert "sk-wrong-key-42" not in everything


def test_task_records(client: httpx.Client, emulator: Emulator, file_server: FileServer, wav2: bytes) -> None:
    task_id = submit_task(client, file_server.put("/a.wav", wav2), channel_id=[0], enable_words=False)
    wait_for_task(client, task_id)

    submit, *polls = emulator.requests()
    assert (submit["task_id"], submit["audio_kind"], submit["audio_sha256"]) == (task_id, "http", sha(wav2))
    assert submit["parameters"] == {"channel_id": [0], "enable_words": False}
    assert {p["task_id"] for p in polls} == {task_id}
    assert "X-Amz-Signature" not in json.dumps(emulator.requests())


def test_faulted_and_admin_requests_are_recorded(emulator: Emulator, wav2: bytes) -> None:
    emulator.add_fault(Fault(html=True))
    with api_client(emulator) as http:
        http.post(GENERATION, json=sync_body(data_url(wav2)))
    listed = httpx.get(f"{emulator.root_url}/_emulator/requests").json()

    assert [(r["status"], r["fault"]) for r in listed] == [(502, "html")]
    assert [r["path"] for r in emulator.requests()] == ["/api/v1" + GENERATION, "/_emulator/requests"]
