"""The other commands: check, transcribe, status, retry; each at least once as the console script."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dropscribe.emulator import Emulator, Fault, emulated_text
from tests.support.audio import make_tone, sha256_file
from tests.support.cli import run_cli
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for


def dropscribe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "DASHSCOPE_API_KEY": API_KEY, **(env or {})}
    return subprocess.run([sys.executable, "-m", "dropscribe", *args], capture_output=True, text=True,
                          env=full_env, timeout=120)  # fmt: skip


def test_check_accepts_a_good_config(layout: Layout) -> None:
    """check exits 0 and says ok for a valid config and rule files."""
    (layout.inbox / "asr-rules.yaml").write_text("language: en\n")
    done = dropscribe("check", "-c", str(layout.config))
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout


def test_check_lists_every_error_and_exits_78(layout: Layout) -> None:
    """Every problem is listed at once, with file and line, and the exit code is EX_CONFIG."""
    layout.config.write_text(
        "dashscope:\n  model: qwen9\n  api_key: sk-nope\n"
        f"state:\n  path: {layout.state}\n"
        f"inboxes:\n  - path: {layout.inbox}\n    settle_s: soon\n"
    )
    done = run_cli("check", "-c", str(layout.config))
    assert done.returncode == 78
    assert ":2: dashscope.model" in done.stderr
    assert ":3: dashscope.api_key" in done.stderr
    assert ":8: inboxes[0].settle_s" in done.stderr
    assert "sk-nope" not in done.stderr


def test_check_validates_rule_files(layout: Layout) -> None:
    """A broken rule file anywhere below an inbox makes check fail, naming file, line and key."""
    sub = layout.inbox / "team" / "sub"
    sub.mkdir(parents=True)
    (sub / "asr-rules.yaml").write_text("language: en\noutputs: [pdf]\n")
    done = run_cli("check", "-c", str(layout.config))
    assert done.returncode == 78
    assert f"{sub / 'asr-rules.yaml'}:2: outputs" in done.stderr


def test_transcribe_prints_the_text(layout: Layout, emulator: Emulator, tmp_path: Path) -> None:
    """transcribe runs one file through the same recognition path and prints the transcript."""
    audio = make_tone(tmp_path / "one.wav", seconds=1.0, fmt="wav")
    done = dropscribe("transcribe", str(audio), "-c", str(layout.config))
    assert done.returncode == 0, done.stderr
    (sent,) = [r for r in emulator.requests() if "generation" in r["path"]]
    assert done.stdout == emulated_text(sent["duration_s"], sha256_file(audio)) + "\n"
    assert audio.exists(), "a one-shot run leaves the file where it is"


def test_transcribe_reports_a_bad_file(layout: Layout, emulator: Emulator, tmp_path: Path) -> None:
    """A file that is not audio gives its error code and a non-zero exit."""
    bogus = tmp_path / "bogus.mp3"
    bogus.write_text("hello")
    done = run_cli("transcribe", str(bogus), "-c", str(layout.config), env={"DASHSCOPE_API_KEY": API_KEY})
    assert done.returncode == 1
    assert "not_audio" in done.stderr


def test_status_and_retry(layout: Layout, emulator: Emulator, services: list[ServiceProcess]) -> None:
    """status counts done and failed jobs; retry moves a failed file back and it is taken again."""
    (layout.inbox / "sub").mkdir()
    (layout.inbox / "sub" / "bad.wav").write_bytes(b"RIFF not really")
    make_tone(layout.inbox / "good.wav", seconds=1.0, fmt="wav")
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)

    def reported() -> dict[str, Any] | None:
        # the counts come from the journal at once, the inbox's line from the service's next report
        report: dict[str, Any] = json.loads(run_cli("status", "-c", str(layout.config), "--json").stdout)
        inbox = report["service"].get("inboxes", {}).get(str(layout.inbox), {})
        return report if report["counts"] == {"done": 1, "failed": 1} and inbox.get("waiting") == 0 else None

    report = wait_for(reported)
    assert report["recent_failures"][0]["code"] == "not_audio"
    assert report["paused"] is None
    assert report["service"]["inboxes"][str(layout.inbox)]["available"] is True
    human = run_cli("status", "-c", str(layout.config)).stdout
    assert f"inbox {layout.inbox}: waiting 0" in human
    assert "failed 1" in human
    assert "not_audio" in human

    assert service.stop() == 0
    make_tone(layout.failed / "sub" / "bad.wav", seconds=1.0, fmt="wav")  # the sender fixed the file
    os.chmod(layout.failed / "sub" / "bad.wav", 0o644)
    done = dropscribe("retry", "-c", str(layout.config), "--all")
    assert done.returncode == 0, done.stderr
    assert (layout.inbox / "sub" / "bad.wav").exists()
    assert not (layout.failed / "sub" / "bad.error.json").exists()
    services.append(ServiceProcess(layout.config).wait_started())
    wait_for(lambda: (layout.done / "sub" / "bad.txt").exists())


def status_report(layout: Layout) -> dict[str, Any]:
    done = run_cli("status", "-c", str(layout.config), "--json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_status_says_whether_the_service_runs(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """Running is read from the service's lock; the report it left in the journal does not make it so."""
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)
    wait_for(lambda: status_report(layout)["service"].get("text"))
    pid, host = service.proc.pid, socket.gethostname()
    report = status_report(layout)["service"]
    assert (report["running"], report["pid"], report["host"]) == (True, pid, host)
    assert 0 <= report["report_age_s"] < 60
    assert report["inboxes"][str(layout.inbox)]["available"] is True
    human = dropscribe("status", "-c", str(layout.config)).stdout
    assert human.startswith(f"service: running (pid {pid} on {host}), last report ")

    service.kill()  # kill -9: its last report stays in the journal
    report = status_report(layout)["service"]
    assert "text" in report, "the last report is still there"
    assert (report["running"], report["pid"], report["host"]) == (False, None, None)
    assert (report["last_holder"]["pid"], report["last_holder"]["host"]) == (pid, host)
    human = run_cli("status", "-c", str(layout.config)).stdout
    assert human.startswith("service: not running (last seen "), human
    assert f"pid {pid} on {host}" in human.splitlines()[0]
    assert "inbox " not in human, "a dead service's inbox counts are not shown as current"


def test_status_gives_each_waiting_file_its_reason(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """A file held back by 503s is listed as waiting for its retry, with the attempt and the last error."""
    layout.data["dashscope"].update(retry_base_s=60, retry_max_s=120)
    layout.write()
    emulator.add_fault(Fault(status=503, times=None))
    (layout.inbox / "alice").mkdir()
    make_tone(layout.inbox / "alice" / "talk.wav", seconds=1.0, fmt="wav")
    services.append(ServiceProcess(layout.config).wait_started())

    def retrying() -> dict[str, Any] | None:
        waiting = status_report(layout)["waiting"]
        return next((w for w in waiting if w["reason"] == "retry" and w["attempts"] >= 1), None)

    entry = wait_for(retrying)
    assert (entry["inbox"], entry["relpath"]) == (str(layout.inbox), "alice/talk.wav")
    assert entry["until"] > time.time() + 10, "backoff of retry_base_s, not an immediate retry"
    assert "503" in entry["last_error"]
    human = run_cli("status", "-c", str(layout.config)).stdout
    (line,) = [line for line in human.splitlines() if "alice/talk.wav" in line]
    assert line.startswith("  waiting   alice/talk.wav: retry at "), human
    assert f"(attempt {entry['attempts']}: " in line


def test_a_retried_file_leaves_the_recent_failures(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """retry marks the failed job retried: status stops listing it, and only it, among the failures."""
    (layout.inbox / "sub").mkdir()
    (layout.inbox / "sub" / "notes.mp3").write_text("minutes of the meeting, not audio")
    (layout.inbox / "other.wav").write_bytes(b"RIFF not really")
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)
    wait_for(lambda: status_report(layout)["counts"] == {"failed": 2})
    assert service.stop() == 0
    assert {f["relpath"] for f in status_report(layout)["recent_failures"]} == {"sub/notes.mp3", "other.wav"}

    done = run_cli("retry", "-c", str(layout.config), str(layout.failed / "sub" / "notes.mp3"))
    assert done.returncode == 0, done.stderr
    assert (layout.inbox / "sub" / "notes.mp3").exists()
    report = status_report(layout)
    assert [f["relpath"] for f in report["recent_failures"]] == ["other.wav"]
    assert report["counts"] == {"failed": 1, "retried": 1}
    human = run_cli("status", "-c", str(layout.config)).stdout
    assert "notes.mp3" not in human
    assert "other.wav" in human
