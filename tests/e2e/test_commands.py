"""The other commands, run as a user would: check, transcribe, status, retry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dropscribe.emulator import Emulator, emulated_text
from tests.support.audio import make_tone, sha256_file
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
    done = dropscribe("check", "-c", str(layout.config))
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
    done = dropscribe("check", "-c", str(layout.config))
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
    done = dropscribe("transcribe", str(bogus), "-c", str(layout.config))
    assert done.returncode == 1
    assert "not_audio" in done.stderr


def test_status_and_retry(layout: Layout, emulator: Emulator, services: list[ServiceProcess]) -> None:
    """status counts done and failed jobs; retry moves a failed file back and it is taken again."""
    (layout.inbox / "sub").mkdir()
    (layout.inbox / "sub" / "bad.wav").write_bytes(b"RIFF not really")
    make_tone(layout.inbox / "good.wav", seconds=1.0, fmt="wav")
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)
    def counts() -> dict[str, int]:
        return json.loads(dropscribe("status", "-c", str(layout.config), "--json").stdout)["counts"]

    wait_for(lambda: counts() == {"done": 1, "failed": 1})
    report = json.loads(dropscribe("status", "-c", str(layout.config), "--json").stdout)
    assert report["recent_failures"][0]["code"] == "not_audio"
    assert report["paused"] is None
    assert report["service"]["inboxes"][str(layout.inbox)]["available"] is True
    human = dropscribe("status", "-c", str(layout.config)).stdout
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
