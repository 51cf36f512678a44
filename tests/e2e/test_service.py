"""The real ``dropscribe run`` process against the emulator: files in, sidecars and moved sources out."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from dropscribe.emulator import Emulator, Fault, emulated_text
from dropscribe.emulator.transcripts import billed_seconds
from tests.support.audio import espeak_available, make_speech, make_tone, sha256_file
from tests.support.cli import run_cli
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for


def recognitions(emulator: Emulator) -> list[dict[str, Any]]:
    return [r for r in emulator.requests() if "generation" in r["path"] and r["status"] == 200]


def start(layout: Layout, services: list[ServiceProcess], **env: str) -> ServiceProcess:
    service = ServiceProcess(layout.config, env).wait_started()
    services.append(service)
    return service


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "ogg"])  # m4a: tests/e2e/test_format_fallback.py
def test_dropped_file_comes_back_with_sidecars(
    fmt: str, layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """A recording dropped in the inbox moves to done/ with a transcript of exactly its bytes."""
    service = start(layout, services)
    source = make_tone(tmp_path / f"staging.{fmt}", seconds=2.0, fmt=fmt)
    sha = sha256_file(source)
    os.rename(source, layout.inbox / f"talk.{fmt}")

    # the source is moved last, after its sidecars
    wait_for(lambda: (layout.done / f"talk.{fmt}").exists(), timeout=30)
    wait_for(lambda: not any(layout.inbox.iterdir()))  # the move is link, fsync, then unlink
    assert layout.done_files() == sorted(["talk.json", f"talk.{fmt}", "talk.txt"])
    assert not any(layout.inbox.iterdir())

    sent = recognitions(emulator)
    assert len(sent) == 1
    assert sent[0]["audio_sha256"] == sha, "the original bytes were sent as they are"
    doc = json.loads((layout.done / "talk.json").read_text())
    expected_text = emulated_text(sent[0]["duration_s"], sha)
    assert (layout.done / "talk.txt").read_text() == expected_text + "\n"
    assert doc["text"] == expected_text
    assert doc["schema_version"] == 1
    assert doc["model"] == "qwen3-asr-flash"
    assert doc["language"] == "en"
    assert doc["emotion"] == "neutral"
    assert doc["segments"] == [{"start_s": 0.0, "end_s": pytest.approx(2.0, abs=0.1), "text": expected_text}]
    assert doc["options"] == {"language": None, "enable_itn": False, "context_sha256": None}
    assert doc["source"]["sha256"] == sha
    assert doc["source"]["relpath"] == f"talk.{fmt}"
    assert doc["source"]["size_bytes"] == (layout.done / f"talk.{fmt}").stat().st_size
    assert doc["source"]["duration_s"] == pytest.approx(2.0, abs=0.1)
    assert doc["request_ids"] == [sent[0]["request_id"]]
    assert doc["usage_seconds"] == math.ceil(sent[0]["duration_s"])
    assert doc["started_at"] <= doc["finished_at"]
    assert service.stop() == 0


def test_existing_files_and_subfolders_are_processed_at_start(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """Files already waiting (in nested folders too) are taken at start; relpaths are kept."""
    (layout.inbox / "alice" / "2026").mkdir(parents=True)
    make_tone(layout.inbox / "alice" / "2026" / "memo.mp3", seconds=1.0, fmt="mp3")
    make_tone(layout.inbox / "top.wav", seconds=1.0, fmt="wav")
    start(layout, services)
    wait_for(lambda: len(layout.done_files()) == 6, timeout=30)
    assert layout.done_files() == [
        "alice/2026/memo.json", "alice/2026/memo.mp3", "alice/2026/memo.txt",
        "top.json", "top.txt", "top.wav",
    ]  # fmt: skip


def test_a_backlog_quiet_for_longer_than_the_settle_time_is_sent_at_start_a_fresh_file_waits(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """On a local disk a file's change time says how long it has been quiet: files left waiting while
    the service was down are not watched for another settle time; a file just written is."""
    settle_s = 3.0
    layout.data["inboxes"][0]["settle_s"] = settle_s
    layout.write()
    make_tone(layout.inbox / "old.wav", seconds=1.0, fmt="wav")
    time.sleep(settle_s + 0.5)  # waiting while the service is down
    written_at = make_tone(layout.inbox / "fresh.wav", seconds=1.0, fmt="wav", freq=600.0).stat().st_ctime
    service = start(layout, services)
    started = next(e for e in list(service.events) if e.get("event") == "service_started")
    started_at = dt.datetime.fromisoformat(started["timestamp"].replace("Z", "+00:00")).timestamp()
    wait_for(lambda: (layout.done / "fresh.txt").exists(), timeout=30)
    taken = {e["relpath"]: dt.datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()
             for e in list(service.events) if e.get("event") == "job_taken"}  # fmt: skip
    assert taken["old.wav"] - started_at < settle_s / 2
    # quiet since it was written, a moment before the start: taken once that is settle_s ago
    assert taken["fresh.wav"] - written_at >= settle_s - 0.1


def test_names_in_done_are_never_overwritten(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """A taken name gets ' (2)' on the source and all its sidecars together."""
    layout.done.mkdir()
    (layout.done / "talk.wav").write_bytes(b"an older recording")
    (layout.done / "talk (2).txt").write_text("someone's notes")
    make_tone(layout.inbox / "talk.wav", seconds=1.0, fmt="wav")
    start(layout, services)
    wait_for(lambda: (layout.done / "talk (3).wav").exists())
    assert (layout.done / "talk.wav").read_bytes() == b"an older recording"
    assert (layout.done / "talk (2).txt").read_text() == "someone's notes"
    assert {"talk (3).wav", "talk (3).txt", "talk (3).json"} <= set(layout.done_files())


def test_text_renamed_to_mp3_fails_with_a_reason(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """A file that is not audio lands in failed/ with an error report; nothing is sent."""
    (layout.inbox / "notes.mp3").write_text("this is not audio at all\n" * 50)
    start(layout, services)
    # the report is written first and the recording moved after it: wait for both
    wait_for(lambda: (layout.failed / "notes.mp3").exists())
    report = json.loads((layout.failed / "notes.error.json").read_text())
    assert report["code"] == "not_audio"
    assert report["retryable"] is False
    assert report["source"]["name"] == "notes.mp3"
    assert report["message"]
    assert layout.failed_files() == ["notes.error.json", "notes.mp3"]
    assert recognitions(emulator) == []


def test_symlink_to_a_secret_is_refused(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """A link pointing outside the inbox is moved aside as a link; its target is never read or sent."""
    secret = make_tone(tmp_path / "secret.wav", seconds=1.0, fmt="wav")
    os.symlink(secret, layout.inbox / "innocent.wav")
    start(layout, services)
    wait_for(lambda: os.path.islink(layout.failed / "innocent.wav"))
    assert json.loads((layout.failed / "innocent.error.json").read_text())["code"] == "symlink"
    assert os.path.islink(layout.failed / "innocent.wav")
    assert emulator.requests() == []


def test_rule_files_cascade_into_the_request(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """The nearest asr-rules.yaml wins key by key; context and asr_options reach the API."""
    (layout.inbox / "asr-rules.yaml").write_text("language: en\nenable_itn: true\ncontext: Acme Corp\n")
    sub = layout.inbox / "china"
    sub.mkdir()
    (sub / "glossary.txt").write_text("阿里云 通义千问\n")
    (sub / "asr-rules.yaml").write_text(
        "language: zh\ncontext_file: glossary.txt\noutputs: [txt, json, srt, vtt]\n"
    )
    make_tone(layout.inbox / "a.wav", seconds=1.0, fmt="wav")
    make_tone(sub / "b.wav", seconds=1.0, fmt="wav", freq=300)
    start(layout, services)
    # a move links the file into done/ before it unlinks the source: wait for both ends
    wait_for(lambda: len(layout.done_files()) == 8 and not (sub / "b.wav").exists())
    sent = {r["audio_sha256"]: r for r in recognitions(emulator)}
    a = sent[sha256_file(layout.done / "a.wav")]
    b = sent[sha256_file(layout.done / "china" / "b.wav")]
    assert a["asr_options"] == {"language": "en", "enable_itn": True}
    assert a["context"] == "Acme Corp"
    assert b["asr_options"] == {"language": "zh", "enable_itn": True}
    assert b["context"].strip() == "阿里云 通义千问"
    assert (layout.done / "china" / "b.srt").read_text().startswith("1\n00:00:00,000 --> 00:00:01,0")
    assert (layout.done / "china" / "b.vtt").read_text().startswith("WEBVTT\n\n00:00:00.000 --> ")
    doc = json.loads((layout.done / "china" / "b.json").read_text())
    assert doc["options"]["language"] == "zh"
    assert len(doc["options"]["context_sha256"]) == 64
    # the support files stay where they are
    assert sorted(p.name for p in sub.iterdir()) == ["asr-rules.yaml", "glossary.txt"]


def test_invalid_rule_file_holds_its_folder_until_fixed(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """A broken rule file holds its files (nothing fails), says why beside itself, and resumes when fixed."""
    sub = layout.inbox / "held"
    sub.mkdir()
    rules = sub / "asr-rules.yaml"
    rules.write_text("language: klingon\n")
    make_tone(sub / "x.wav", seconds=1.0, fmt="wav")
    make_tone(layout.inbox / "free.wav", seconds=1.0, fmt="wav")
    start(layout, services)
    wait_for(lambda: (layout.done / "free.txt").exists())
    error_file = sub / "asr-rules.yaml.error.txt"
    wait_for(error_file.exists)
    assert "language" in error_file.read_text()
    assert (sub / "x.wav").exists()
    assert not layout.failed.exists()
    rules.write_text("language: en\n")
    wait_for(lambda: (layout.done / "held" / "x.txt").exists())
    wait_for(lambda: not error_file.exists())


def test_long_audio_is_split_at_silences(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """A recording longer than chunk_max_s is sent as several 16 kHz chunks, joined in order."""
    from tests.support.audio import make_speechlike

    layout.data["defaults"] = {"chunk_max_s": 60, "outputs": ["txt", "json", "srt"]}
    layout.write()
    make_speechlike(layout.inbox / "lecture.mp3", 150.0, "mp3", gaps=[(50.0, 51.0), (100.0, 101.0)])
    start(layout, services)
    wait_for(lambda: (layout.done / "lecture.mp3").exists(), timeout=60)
    doc = json.loads((layout.done / "lecture.json").read_text())
    sent = recognitions(emulator)
    assert len(sent) == 3
    assert len(doc["segments"]) == 3
    starts = [s["start_s"] for s in doc["segments"]]
    assert starts[0] == 0.0
    assert 50.0 <= starts[1] <= 51.0
    assert 100.0 <= starts[2] <= 101.0
    assert doc["segments"][-1]["end_s"] == pytest.approx(150.0, abs=0.2)
    assert all(r["duration_s"] <= 60.0 for r in sent)
    assert sum(r["duration_s"] for r in sent) == pytest.approx(150.0, abs=0.5)
    assert doc["text"] == " ".join(s["text"] for s in doc["segments"])
    assert (layout.done / "lecture.srt").read_text().count(" --> ") == 3


def test_qwen_audio_asr_gets_no_options(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """qwen-audio-asr takes no context and no asr_options, whatever the rules say."""
    layout.data["defaults"] = {"model": "qwen-audio-asr", "language": "en", "context": "ignored"}
    layout.write()
    make_tone(layout.inbox / "a.wav", seconds=1.0, fmt="wav")
    start(layout, services)
    wait_for(lambda: (layout.done / "a.txt").exists())
    (sent,) = recognitions(emulator)
    assert sent["model"] == "qwen-audio-asr"
    assert sent["asr_options"] is None
    assert not sent["context"]


def test_same_content_twice_is_recognized_once(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """The same bytes under two names cost one recognition; both get sidecars."""
    make_tone(tmp_path / "a.wav", seconds=1.0, fmt="wav")
    shutil.copy(tmp_path / "a.wav", layout.inbox / "one.wav")
    shutil.copy(tmp_path / "a.wav", layout.inbox / "two.wav")
    start(layout, services)
    wait_for(lambda: (layout.done / "one.txt").exists() and (layout.done / "two.txt").exists())
    assert len(recognitions(emulator)) == 1
    assert (layout.done / "one.txt").read_text() == (layout.done / "two.txt").read_text()


def test_restart_does_not_redo_finished_work(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """After a restart nothing finished is recognized again; new files still flow."""
    make_tone(layout.inbox / "a.wav", seconds=1.0, fmt="wav")
    first = start(layout, services)
    wait_for(lambda: (layout.done / "a.txt").exists())
    assert first.stop() == 0
    make_tone(layout.inbox / "b.wav", seconds=1.0, fmt="wav", freq=500)
    start(layout, services)
    wait_for(lambda: (layout.done / "b.txt").exists())
    assert len(recognitions(emulator)) == 2


def test_transient_errors_retry_and_never_fail_the_file(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """503s and 429s make the file wait and retry; it ends in done/, not failed/."""
    emulator.add_fault(Fault(path="generation", status=503, code="ServiceUnavailable", times=2))
    emulator.add_fault(Fault(path="generation", status=429, code="Throttling.RateQuota", times=1))
    make_tone(layout.inbox / "a.wav", seconds=1.0, fmt="wav")
    service = start(layout, services)
    wait_for(lambda: (layout.done / "a.txt").exists(), timeout=60)
    assert not layout.failed.exists()
    statuses = [r["status"] for r in emulator.requests() if "generation" in r["path"]]
    assert statuses == [503, 503, 429, 200]
    assert service.saw("job_deferred")


def test_remote_rejection_fails_the_file_with_the_code(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """A refusal of the input (DataInspectionFailed) sends the file to failed/ with asr_rejected."""
    emulator.add_fault(Fault(path="generation", status=400, code="DataInspectionFailed", times=1))
    make_tone(layout.inbox / "a.wav", seconds=1.0, fmt="wav")
    start(layout, services)
    wait_for(lambda: (layout.failed / "a.error.json").exists())
    report = json.loads((layout.failed / "a.error.json").read_text())
    assert report["code"] == "asr_rejected"
    assert report["remote_code"] == "DataInspectionFailed"
    assert len(report["request_ids"]) == 1


def test_bad_key_pauses_the_queue_until_reload(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """InvalidApiKey pauses everything, keeps files in the inbox, and a reload with a good key resumes."""
    make_tone(layout.inbox / "a.wav", seconds=1.0, fmt="wav")
    make_tone(layout.inbox / "b.wav", seconds=1.0, fmt="wav", freq=500)
    key_file = layout.root / "key"
    key_file.write_text("sk-wrong-key\n")
    layout.data["dashscope"]["api_key_file"] = str(key_file)
    layout.data["dashscope"]["api_key_env"] = "NO_SUCH_VARIABLE_FOR_TESTS"
    layout.write()
    service = start(layout, services)
    wait_for(lambda: service.saw("queue_paused"))
    status = run_cli("status", "-c", str(layout.config))
    assert status.returncode == 0, status.stderr
    assert "PAUSED: InvalidApiKey" in status.stdout
    assert sorted(p.name for p in layout.inbox.iterdir()) == ["a.wav", "b.wav"]
    assert not layout.failed.exists()
    key_file.write_text(API_KEY + "\n")
    service.signal(signal.SIGHUP)
    wait_for(lambda: len(layout.done_files()) == 6, timeout=30)
    assert "sk-wrong-key" not in service.output()
    assert API_KEY not in service.output()


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")
def test_real_speech_from_espeak(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """Synthesised speech goes through like any recording; the emulator received its exact bytes."""
    source = make_speech(tmp_path / "hello.mp3", "Hello, this is a dictation test.", "mp3")
    sha = sha256_file(source)
    shutil.move(source, layout.inbox / "hello.mp3")
    start(layout, services)
    wait_for(lambda: (layout.done / "hello.txt").exists())
    (sent,) = recognitions(emulator)
    assert sent["audio_sha256"] == sha
    assert 1.0 < sent["duration_s"] < 10.0


def test_same_content_in_two_inboxes_is_recognized_once(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """Identical bytes dropped into two different inboxes cost one recognition; each inbox gets sidecars."""
    second = tmp_path / "second"
    (second / "inbox").mkdir(parents=True)
    layout.data["inboxes"].append({"path": str(second / "inbox"), "settle_s": 0.3, "rescan_s": 0.5})
    layout.write()
    make_tone(tmp_path / "a.wav", seconds=1.0, fmt="wav")
    shutil.copy(tmp_path / "a.wav", layout.inbox / "from-alice.wav")
    shutil.copy(tmp_path / "a.wav", second / "inbox" / "from-bob.wav")
    start(layout, services)
    wait_for(lambda: (layout.done / "from-alice.json").exists())
    wait_for(lambda: (second / "done" / "from-bob.json").exists())
    assert len(recognitions(emulator)) == 1
    alice = json.loads((layout.done / "from-alice.json").read_text())
    bob = json.loads((second / "done" / "from-bob.json").read_text())
    assert alice["text"] == bob["text"]
    assert alice["request_ids"] == bob["request_ids"]
    # the bill adds up from the sidecars: the file served by a reused answer paid nothing
    payer, reuser = sorted([alice, bob], key=lambda doc: bool(doc.get("reused")))
    assert "reused" not in payer
    assert payer["usage_seconds"] == billed_seconds(recognitions(emulator)[0]["duration_s"]) > 0
    assert reuser["reused"] is True
    assert reuser["usage_seconds"] == 0
    assert reuser["reused_from"]["sha256"] == payer["source"]["sha256"]
    assert reuser["reused_from"]["name"] == payer["source"]["name"]


def test_metrics_and_health_endpoints(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """/metrics counts finished files; /healthz turns 503 while the queue is paused and names the reason."""
    import httpx

    from tests.support.s3 import unused_port

    port = unused_port()
    layout.data["metrics"] = {"listen": f"127.0.0.1:{port}"}
    layout.write()
    make_tone(layout.inbox / "a.wav", seconds=1.0, fmt="wav")
    start(layout, services)
    wait_for(lambda: (layout.done / "a.txt").exists())
    base = f"http://127.0.0.1:{port}"
    done = f'dropscribe_files_total{{inbox="{layout.inbox}",outcome="done"}} 1.0'
    wait_for(lambda: done in httpx.get(f"{base}/metrics").text)
    metrics = httpx.get(f"{base}/metrics").text
    assert f'dropscribe_inbox_up{{inbox="{layout.inbox}"}} 1.0' in metrics
    assert httpx.get(f"{base}/healthz").status_code == 200

    emulator.add_fault(Fault(path="generation", status=401, code="InvalidApiKey", times=None))
    make_tone(layout.inbox / "b.wav", seconds=1.0, fmt="wav", freq=600)
    wait_for(lambda: httpx.get(f"{base}/healthz").status_code == 503)
    assert "InvalidApiKey" in httpx.get(f"{base}/healthz").text
    # gauges follow the loop's status report (twice a second), /healthz the live state
    wait_for(lambda: "dropscribe_paused 1.0" in httpx.get(f"{base}/metrics").text, timeout=5)


def test_sigterm_parks_a_slow_call_and_a_restart_finishes_it(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """A call that outlasts stop_grace_s is parked: exit 0 after the grace; a restart finishes the file."""
    import time

    layout.data["dashscope"]["stop_grace_s"] = 2
    layout.write()
    emulator.add_fault(Fault(path="generation", delay_s=20.0, times=1))
    make_tone(layout.inbox / "a.wav", seconds=1.0, fmt="wav")
    service = start(layout, services)
    # the emulator records a request before it starts the delay: the call is now in flight
    wait_for(lambda: any("generation" in r["path"] for r in emulator.requests()))
    started = time.monotonic()
    assert service.stop(timeout=40) == 0
    assert time.monotonic() - started < 18, "the stop did not wait for the 20 s call"
    assert service.saw("service_parked")
    assert (layout.inbox / "a.wav").exists()
    start(layout, services)
    wait_for(lambda: (layout.done / "a.txt").exists())


def test_sidecars_take_the_recordings_group_and_mode_or_file_mode(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """NAS users outside the service's group must read transcripts: sidecars follow their recording."""
    import stat as stat_module

    if os.geteuid() != 0:
        pytest.skip("giving a file another group needs root")
    second = tmp_path / "second"
    (second / "inbox").mkdir(parents=True)
    layout.data["inboxes"].append({"path": str(second / "inbox"), "settle_s": 0.3, "rescan_s": 0.5,
                                   "file_mode": "0644"})  # fmt: skip
    layout.write()
    shared_gid = 4242
    recording = make_tone(tmp_path / "staged.m4a", seconds=1.0, fmt="m4a")
    os.chown(recording, -1, shared_gid)
    os.chmod(recording, 0o664)
    shutil.move(recording, layout.inbox / "team.m4a")
    make_tone(second / "inbox" / "private.wav", seconds=1.0, fmt="wav")
    os.chmod(second / "inbox" / "private.wav", 0o600)
    start(layout, services)
    wait_for(lambda: (layout.done / "team.m4a").exists() and (second / "done" / "private.wav").exists())
    for name in ("team.txt", "team.json"):
        st = os.stat(layout.done / name)
        assert stat_module.S_IMODE(st.st_mode) == 0o664, name
        assert st.st_gid == shared_gid, name
    for name in ("private.txt", "private.json"):
        assert stat_module.S_IMODE(os.stat(second / "done" / name).st_mode) == 0o644, name
    doc = json.loads((layout.done / "team.json").read_text())
    assert doc["source"]["format"] == "m4a"  # one short name, not FFmpeg's "mov,mp4,m4a,3gp,3g2,mj2"
