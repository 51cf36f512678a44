"""Failover between backends, and pauses that belong to one backend: the real service, one emulator.

The emulator serves DashScope and, under ``/v1``, an OpenAI-compatible server (the backend ``onprem``);
faults on DashScope's ``generation`` path make the primary fail while the other side answers. The
emulator's request log shows which backend got which bytes.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from dropscribe.emulator import Emulator, Fault
from tests.support.audio import make_tone, sha256_file
from tests.support.cli import run_cli
from tests.support.service import Layout, ServiceProcess, wait_for

OPENAI_PATH = "/v1/audio/transcriptions"
QUICK = {"settle_s": 0.3, "rescan_s": 0.5, "incomplete_wait_s": 0.5}


def layout_with(tmp_path: Path, emulator: Emulator, inboxes: dict[str, dict[str, Any]]) -> Layout:
    """A deployment with the ``onprem`` backend and one inbox per name (``<name>/inbox``)."""
    onprem = {
        "type": "openai",
        "base_url": emulator.openai_base_url,
        "model": "Qwen/Qwen3-ASR-1.7B",
        "api_key_env": "DASHSCOPE_API_KEY",
        "concurrency": 2,
        "requests_per_minute": 600,
        "timeout_s": 30,
    }
    entries = []
    for name, rules in inboxes.items():
        (tmp_path / name / "inbox").mkdir(parents=True)
        entries.append({"path": str(tmp_path / name / "inbox"), **QUICK, **rules})
    return Layout(tmp_path, emulator.base_url, backends={"onprem": onprem}, inboxes=entries,
                  dashscope={"pause_probe_s": 1, "retry_base_s": 0.2, "retry_max_s": 1})  # fmt: skip


def drop(tmp_path: Path, inbox: str, name: str, freq: float) -> str:
    """A short recording moved into ``<inbox>/inbox`` at once; its sha256."""
    source = make_tone(tmp_path / f"src-{inbox}-{name.replace('/', '-')}", seconds=1.0, fmt="wav", freq=freq)
    sha = sha256_file(source)
    source.rename(tmp_path / inbox / "inbox" / name)
    return sha


def result(tmp_path: Path, inbox: str, name: str) -> dict[str, Any] | None:
    path = tmp_path / inbox / "done" / Path(name).with_suffix(".json")
    if not path.exists() or not (tmp_path / inbox / "done" / name).exists():
        return None
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def shas_sent(emulator: Emulator, path: str, status: int | None = None) -> set[str]:
    return {
        r["audio_sha256"] for r in emulator.requests() if path in r["path"] and status in (None, r["status"])
    }


def at(request: dict[str, Any]) -> float:
    return datetime.fromisoformat(request["time"].replace("Z", "+00:00")).timestamp()


def start(layout: Layout, services: list[ServiceProcess]) -> ServiceProcess:
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)
    return service


def test_a_failing_primary_fails_over_after_failover_after_s_and_comes_back(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """The folder with a fallback goes on through it; the folder without one never sends elsewhere."""
    layout = layout_with(tmp_path, emulator, {
        "mobile": {"fallback_backend": "onprem", "failover_after_s": 2},
        "private": {},  # dashscope only: these recordings never go to another backend
    })  # fmt: skip
    emulator.add_fault(Fault(path="generation", status=503, code="ServiceUnavailable", times=None))
    service = start(layout, services)
    first = drop(tmp_path, "mobile", "first.wav", 330.0)
    kept = drop(tmp_path, "private", "kept.wav", 440.0)

    wait_for(lambda: result(tmp_path, "mobile", "first.wav") is not None, timeout=20)
    doc = result(tmp_path, "mobile", "first.wav")
    assert doc is not None
    assert doc["backend"] == "onprem"
    # a refused request is answered before its body is read: the emulator logs no sha256 for it
    failing = [r for r in emulator.requests() if "generation" in r["path"]]
    assert failing
    assert all(r["status"] == 503 for r in failing)
    # the first answer came at least failover_after_s after the first failure
    answered = [r for r in emulator.requests() if r["path"] == OPENAI_PATH and r["audio_sha256"] == first]
    assert at(answered[0]) - at(failing[0]) >= 2.0 - 0.1
    assert (tmp_path / "private" / "inbox" / "kept.wav").exists()
    assert kept not in shas_sent(emulator, OPENAI_PATH)  # the private folder never went elsewhere

    emulator.clear_faults()
    # the private file answers at its next retry; the failover ends with the first probe that answers
    wait_for(lambda: result(tmp_path, "private", "kept.wav") is not None, timeout=15)
    backends: list[str] = []
    for index in range(8):
        name = f"after-{index}.wav"
        drop(tmp_path, "mobile", name, 500.0 + 10 * index)
        wait_for(lambda name=name: result(tmp_path, "mobile", name) is not None, timeout=15)  # type: ignore[misc]
        backends.append(result(tmp_path, "mobile", name)["backend"])  # type: ignore[index]
        if backends[-2:] == ["dashscope", "dashscope"]:
            break
    assert backends[-2:] == ["dashscope", "dashscope"], backends
    private = result(tmp_path, "private", "kept.wav")
    assert private is not None
    assert private["backend"] == "dashscope"
    assert kept not in shas_sent(emulator, OPENAI_PATH)
    assert service.stop() == 0


def test_arrears_on_dashscope_pause_only_dashscope(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """A folder with a fallback goes on through it, a folder on the other backend goes on, the rest waits."""
    layout = layout_with(tmp_path, emulator, {
        "mobile": {"fallback_backend": "onprem"},  # failover_after_s stays 300: a pause fails over at once
        "local": {"backend": "onprem"},
        "cloud": {},
    })  # fmt: skip
    emulator.add_fault(Fault(path="generation", status=400, code="Arrearage", times=None))
    service = start(layout, services)
    drop(tmp_path, "cloud", "waits.wav", 300.0)
    wait_for(lambda: service.saw("queue_paused", backend="dashscope", code="Arrearage"), timeout=15)
    mobile = drop(tmp_path, "mobile", "goes.wav", 350.0)
    drop(tmp_path, "local", "local-1.wav", 400.0)

    wait_for(lambda: result(tmp_path, "mobile", "goes.wav") is not None, timeout=15)
    wait_for(lambda: result(tmp_path, "local", "local-1.wav") is not None, timeout=15)
    drop(tmp_path, "local", "local-2.wav", 450.0)
    wait_for(lambda: result(tmp_path, "local", "local-2.wav") is not None, timeout=15)

    assert result(tmp_path, "mobile", "goes.wav")["backend"] == "onprem"  # type: ignore[index]
    assert mobile not in shas_sent(emulator, "generation")  # the primary was known paused: not tried
    assert (tmp_path / "cloud" / "inbox" / "waits.wav").exists()
    assert not (tmp_path / "cloud" / "failed").exists()
    status = run_cli("status", "-c", str(layout.config), "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    paused = report["paused"]
    assert paused["code"] == "Arrearage"
    assert paused["backend"] == "dashscope"
    assert set(paused["backends"]) == {"dashscope"}
    backends = report["service"]["backends"]
    assert backends["dashscope"]["paused"]["code"] == "Arrearage"
    assert backends["onprem"]["paused"] is None
    assert backends["onprem"]["last_success"] is not None
    assert not service.saw("queue_paused", backend="onprem")
    assert service.stop() == 0


def test_check_refuses_an_unknown_or_circular_fallback(tmp_path: Path, emulator: Emulator) -> None:
    layout = layout_with(tmp_path, emulator, {
        "typo": {"fallback_backend": "onprme"},
        "self": {"backend": "onprem", "fallback_backend": "onprem"},
    })  # fmt: skip
    done = run_cli("check", "-c", str(layout.config))

    assert done.returncode == 78, done.stdout + done.stderr
    assert (
        "inboxes[0].fallback_backend: 'onprme' is not a configured backend (configured: dashscope, onprem)"
        in (done.stderr)
    )
    assert "inboxes[1].fallback_backend: must name another backend than backend" in done.stderr


def test_check_reads_the_backend_names_of_rule_files(tmp_path: Path, emulator: Emulator) -> None:
    layout = layout_with(tmp_path, emulator, {"team": {"recursive": True}})
    rules = tmp_path / "team" / "inbox" / "sub" / "asr-rules.yaml"
    rules.parent.mkdir()
    rules.write_text("backend: onprem\nfallback_backend: elsewhere\n")
    done = run_cli("check", "-c", str(layout.config))

    assert done.returncode == 78, done.stdout + done.stderr
    assert f"{rules}: fallback_backend: 'elsewhere' is not a configured backend" in done.stderr


def test_a_rule_file_naming_an_unknown_fallback_holds_its_folder(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    layout = layout_with(tmp_path, emulator, {"team": {"recursive": True}})
    sub = tmp_path / "team" / "inbox" / "sub"
    sub.mkdir()
    (sub / "asr-rules.yaml").write_text("fallback_backend: elsewhere\n")
    service = start(layout, services)
    drop(tmp_path, "team", "sub/held.wav", 300.0)

    wait_for(lambda: service.saw("rules_invalid"), timeout=15)
    event = next(e for e in service.events if e.get("event") == "rules_invalid")
    assert any("'elsewhere' is not a configured backend" in message for message in event["errors"])
    assert (sub / "held.wav").exists()
    assert not emulator.requests()
    assert service.stop() == 0
