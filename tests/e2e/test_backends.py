"""Two backends at once: the real service against the emulator's DashScope and OpenAI-compatible sides.

Each inbox names its backend; the emulator's request log shows which endpoint got which bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dropscribe.emulator import Emulator, EmulatorConfig, Fault, emulated_text
from tests.support.audio import make_speechlike, make_tone, sha256_file
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for

OPENAI_PATH = "/v1/audio/transcriptions"
OPENAI_MODEL = "Qwen/Qwen3-ASR-1.7B"  # what the emulator serves


def two_backends(tmp_path: Path, emulator: Emulator, **onprem: Any) -> tuple[Layout, Path]:
    """The layout's inbox on DashScope and a second inbox, ``onprem/inbox``, on the openai backend."""
    other = tmp_path / "onprem" / "inbox"
    other.mkdir(parents=True)
    backend = {"type": "openai", "base_url": emulator.openai_base_url, "model": OPENAI_MODEL,
               "api_key_env": "DASHSCOPE_API_KEY", "concurrency": 2, "requests_per_minute": 600,
               "timeout_s": 30, **onprem}  # fmt: skip
    quick = {"settle_s": 0.3, "rescan_s": 0.5, "incomplete_wait_s": 0.5}
    layout = Layout(
        tmp_path, emulator.base_url, backends={"onprem": backend},
        inboxes=[{"path": str(tmp_path / "inbox"), **quick},
                 {"path": str(other), "backend": "onprem", **quick}],
        dashscope={"pause_probe_s": 0.5},
    )  # fmt: skip
    return layout, other


def openai_calls(emulator: Emulator, status: int | None = 200) -> list[dict[str, Any]]:
    return [r for r in emulator.requests() if r["path"] == OPENAI_PATH and status in (None, r["status"])]


def start(layout: Layout, services: list[ServiceProcess], **env: str) -> ServiceProcess:
    service = ServiceProcess(layout.config, env).wait_started()
    services.append(service)
    return service


def test_each_inbox_is_recognized_by_its_own_backend(tmp_path: Path, services: list[ServiceProcess]) -> None:
    """The emulator leaves vLLM's ``language English<asr_text>`` marker in: the sidecars do not."""
    config = EmulatorConfig(host="127.0.0.1", port=0, api_keys={API_KEY}, asr_text_marker=True)
    with Emulator(config) as emulator:
        check_each_inbox_on_its_backend(tmp_path, emulator, services)


def check_each_inbox_on_its_backend(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    layout, onprem_inbox = two_backends(tmp_path, emulator)
    service = start(layout, services)
    cloud = make_tone(tmp_path / "cloud.wav", seconds=2.0, fmt="wav", freq=330.0)
    local = make_tone(tmp_path / "local.wav", seconds=3.0, fmt="wav", freq=550.0)
    cloud_sha, local_sha = sha256_file(cloud), sha256_file(local)
    cloud.rename(layout.inbox / "cloud.wav")
    local.rename(onprem_inbox / "local.wav")

    onprem_done = onprem_inbox.parent / "done"
    wait_for(lambda: (layout.done / "cloud.wav").exists() and (onprem_done / "local.wav").exists())

    dashscope_shas = [r["audio_sha256"] for r in emulator.requests() if "generation" in r["path"]]
    assert dashscope_shas == [cloud_sha]
    assert [(r["audio_sha256"], r["model"]) for r in openai_calls(emulator)] == [(local_sha, OPENAI_MODEL)]
    cloud_doc = json.loads((layout.done / "cloud.json").read_text())
    local_doc = json.loads((onprem_done / "local.json").read_text())
    assert (cloud_doc["backend"], cloud_doc["model"]) == ("dashscope", "qwen3-asr-flash")
    assert (local_doc["backend"], local_doc["model"]) == ("onprem", OPENAI_MODEL)
    assert local_doc["usage_seconds"] == 3
    assert local_doc["text"] == emulated_text(openai_calls(emulator)[0]["duration_s"], local_sha)
    assert service.stop() == 0


def test_the_same_bytes_on_two_backends_are_paid_on_each(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """Results are stored per backend: a file already answered by DashScope is asked again on-premises."""
    layout, onprem_inbox = two_backends(tmp_path, emulator)
    start(layout, services)
    source = make_tone(tmp_path / "same.wav", seconds=1.5, fmt="wav")
    (layout.inbox / "a.wav").write_bytes(source.read_bytes())
    wait_for(lambda: (layout.done / "a.json").exists())
    (onprem_inbox / "b.wav").write_bytes(source.read_bytes())
    wait_for(lambda: (onprem_inbox.parent / "done" / "b.json").exists())
    assert len(openai_calls(emulator)) == 1
    assert json.loads((onprem_inbox.parent / "done" / "b.json").read_text()).get("reused") is None


def test_long_audio_on_the_openai_backend_is_split_under_the_upload_cap(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    cap_mb = 0.5
    layout, onprem_inbox = two_backends(tmp_path, emulator, max_upload_mb=cap_mb)
    start(layout, services)
    source = make_speechlike(tmp_path / "long.wav", 40.0, "wav")
    assert source.stat().st_size > cap_mb * 1024 * 1024
    source.rename(onprem_inbox / "long.wav")

    done = onprem_inbox.parent / "done"
    wait_for(lambda: (done / "long.wav").exists(), timeout=60)
    calls = openai_calls(emulator, status=None)
    assert len(calls) >= 3
    assert all(call["status"] == 200 for call in calls), "no chunk was refused as too large"
    assert all(call["audio_bytes"] < cap_mb * 1024 * 1024 for call in calls)
    doc = json.loads((done / "long.json").read_text())
    assert (doc["backend"], doc["mode"], doc["chunks"]) == ("onprem", "split", len(calls))


def test_an_unavailable_server_is_retried_and_the_file_ends_done(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    layout, onprem_inbox = two_backends(tmp_path, emulator)
    emulator.add_fault(Fault(path=OPENAI_PATH, status=503, times=2))
    service = start(layout, services)
    make_tone(onprem_inbox / "busy.wav", seconds=1.0, fmt="wav")

    wait_for(lambda: (onprem_inbox.parent / "done" / "busy.wav").exists())
    assert [call["status"] for call in openai_calls(emulator, status=None)] == [503, 503, 200]
    assert not (onprem_inbox.parent / "failed").exists()
    assert service.stop() == 0


def test_a_refused_key_pauses_the_queue_and_fails_nothing(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    layout, onprem_inbox = two_backends(tmp_path, emulator, api_key_env="ONPREM_KEY")
    service = start(layout, services, ONPREM_KEY="sk-wrong-key-0000000000")
    make_tone(onprem_inbox / "memo.wav", seconds=1.0, fmt="wav")

    wait_for(lambda: service.saw("queue_paused"))
    assert openai_calls(emulator, status=401)
    assert (onprem_inbox / "memo.wav").exists()
    assert not (onprem_inbox.parent / "failed").exists()
    assert "sk-wrong-key" not in service.output()
