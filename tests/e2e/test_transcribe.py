"""``dropscribe transcribe`` as a user runs it: retries, a journal that persists, reuse and ``--fresh``.

Every test runs the real command as a subprocess against the emulator over HTTP, with a long file split
into chunks, and counts what the emulator answered (and so would have billed) per chunk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from dropscribe.emulator import Emulator, Fault
from dropscribe.emulator.transcripts import billed_seconds
from tests.support.audio import make_speechlike, make_tone, sha256_file
from tests.support.s3 import (  # noqa: F401 - fixtures
    S3Target,
    fixture_aws_credentials,
    fixture_moto_endpoint,
    fixture_s3_bucket,
)
from tests.support.service import API_KEY, Layout, wait_for

SECONDS = 150.0  # split at its pauses into six chunks of at most 30 s


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "DASHSCOPE_API_KEY": API_KEY, "PYTHONUNBUFFERED": "1", **(extra or {})}


def transcribe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dropscribe", "transcribe", *args], capture_output=True,
                          text=True, env=_env(env), timeout=120)  # fmt: skip


def start_transcribe(*args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "dropscribe", "transcribe", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())


@pytest.fixture
def split_layout(tmp_path: Path, emulator: Emulator) -> Layout:
    """A config whose defaults split long audio into 30 s chunks, with quick retries."""
    return Layout(tmp_path, emulator.base_url, defaults={"chunk_max_s": 30},
                  dashscope={"retry_base_s": 0.05, "retry_max_s": 0.2})  # fmt: skip


@pytest.fixture
def talk(tmp_path: Path) -> Path:
    return make_speechlike(tmp_path / "talk.flac", SECONDS, "flac")


def recognitions(emulator: Emulator) -> list[dict[str, Any]]:
    return [r for r in emulator.requests() if "generation" in r["path"]]


def paid(emulator: Emulator) -> list[dict[str, Any]]:
    """Recognition requests that were answered, i.e. billed."""
    return [r for r in recognitions(emulator) if r["status"] == 200]


def billed(requests: list[dict[str, Any]]) -> int:
    return sum(billed_seconds(r["duration_s"]) for r in requests)


def only_json_line(stdout: str) -> dict[str, Any]:
    (line,) = stdout.splitlines()
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def covered_s(requests: list[dict[str, Any]]) -> float:
    return float(sum(r["duration_s"] for r in requests))


def assert_each_chunk_paid_once(requests: list[dict[str, Any]]) -> None:
    """No chunk was answered twice, and together the answered chunks are the whole file."""
    shas = [r["audio_sha256"] for r in requests]
    assert len(shas) == len(set(shas)), f"a chunk was paid twice: {shas}"
    assert covered_s(requests) == pytest.approx(SECONDS, abs=0.1)


def test_a_throttled_chunk_is_retried_after_retry_after_and_nothing_is_paid_twice(
    split_layout: Layout, emulator: Emulator, talk: Path
) -> None:
    """One 429 among the chunk requests: the command waits Retry-After, resends only that chunk."""
    emulator.add_fault(Fault(path="generation", code="Throttling.RateQuota", retry_after=1, times=1))

    done = transcribe(str(talk), "-c", str(split_layout.config), "--json")

    assert done.returncode == 0, done.stderr
    (throttled,) = [r for r in recognitions(emulator) if r["status"] == 429]
    answered = paid(emulator)
    assert_each_chunk_paid_once(answered)
    out = only_json_line(done.stdout)
    assert out["chunks"] == len(answered) > 1
    assert out["reused"] is False
    assert out["usage_seconds"] == billed(answered)
    retried_at = max(datetime.fromisoformat(r["time"]) for r in answered)
    assert (retried_at - datetime.fromisoformat(throttled["time"])).total_seconds() >= 0.95


def test_a_run_that_gives_up_is_resumed_by_a_rerun_that_pays_only_the_missing_chunks(
    split_layout: Layout, emulator: Emulator, talk: Path
) -> None:
    """The API fails for good after some chunks: exit 1 with one clear line; a rerun pays the rest."""
    emulator.add_fault(Fault(path="generation", delay_s=0.3, times=None))
    proc = start_transcribe(str(talk), "-c", str(split_layout.config))
    wait_for(lambda: len(paid(emulator)) >= 2)
    emulator.clear_faults()
    emulator.add_fault(Fault(path="generation", status=500, code="InternalError", times=None))
    stdout, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 1, stderr
    assert stdout == ""
    (line,) = [x for x in stderr.splitlines() if x.startswith(f"{talk}: ")]
    assert "InternalError" in line or "500" in line, line
    first = paid(emulator)
    assert len(first) >= 2
    assert covered_s(first) < SECONDS - 1

    emulator.clear_faults()
    done = transcribe(str(talk), "-c", str(split_layout.config), "--json")

    assert done.returncode == 0, done.stderr
    second = paid(emulator)[len(first) :]
    assert_each_chunk_paid_once(first + second)
    out = only_json_line(done.stdout)
    assert out["reused"] is False
    assert out["usage_seconds"] == billed(second) < billed(first + second)


def test_ctrl_c_keeps_what_was_paid_and_a_rerun_pays_only_the_rest(
    split_layout: Layout, emulator: Emulator, talk: Path
) -> None:
    """SIGINT once two chunks were answered: chunks in flight still land in the journal."""
    emulator.add_fault(Fault(path="generation", delay_s=1.0, times=None))
    proc = start_transcribe(str(talk), "-c", str(split_layout.config))
    wait_for(lambda: len(paid(emulator)) >= 2)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    first = paid(emulator)
    assert covered_s(first) < SECONDS - 1

    emulator.clear_faults()
    done = transcribe(str(talk), "-c", str(split_layout.config), "--json")

    assert done.returncode == 0, done.stderr
    second = paid(emulator)[len(first) :]
    assert_each_chunk_paid_once(first + second)
    assert only_json_line(done.stdout)["usage_seconds"] == billed(second)


def test_a_second_run_reuses_the_stored_result_and_fresh_pays_again(
    split_layout: Layout, emulator: Emulator, talk: Path
) -> None:
    """The config's journal keeps the result: a rerun sends nothing; --fresh recognizes every chunk."""
    first = transcribe(str(talk), "-c", str(split_layout.config), "--json")
    assert first.returncode == 0, first.stderr
    assert split_layout.state.exists(), "the config's journal is used"
    original = only_json_line(first.stdout)
    chunks = original["chunks"]
    assert len(paid(emulator)) == chunks > 1
    assert original["reused"] is False
    assert original["usage_seconds"] == billed(paid(emulator)) > 0

    again = transcribe(str(talk), "-c", str(split_layout.config), "--json")

    assert again.returncode == 0, again.stderr
    assert len(recognitions(emulator)) == chunks, "a stored result is not paid for again"
    reused = only_json_line(again.stdout)
    assert reused["reused"] is True
    assert reused["usage_seconds"] == 0
    assert reused["text"] == original["text"]

    fresh = transcribe(str(talk), "-c", str(split_layout.config), "--json", "--fresh")

    assert fresh.returncode == 0, fresh.stderr
    answered = paid(emulator)[chunks:]
    assert_each_chunk_paid_once(answered)
    out = only_json_line(fresh.stdout)
    assert out["reused"] is False
    assert out["usage_seconds"] == billed(answered)


def test_exit_code_is_1_when_any_file_fails(split_layout: Layout, emulator: Emulator, tmp_path: Path) -> None:
    """Good files are printed, each bad one gets one error line, and the exit code says something failed."""
    good = make_tone(tmp_path / "good.wav", seconds=1.0, fmt="wav")
    bogus = tmp_path / "bogus.mp3"
    bogus.write_text("hello")

    done = transcribe(str(good), str(bogus), str(tmp_path / "missing.wav"), "-c", str(split_layout.config))

    assert done.returncode == 1
    assert f"== {good}" in done.stdout
    errors = done.stderr.splitlines()
    assert f"{bogus}: not_audio: " in "\n".join(errors)
    assert any(x.startswith(f"{tmp_path / 'missing.wav'}: not_found") for x in errors)


def test_uploads_are_deleted_once_the_result_is_stored(
    layout: Layout, emulator: Emulator, s3_bucket: S3Target, tmp_path: Path
) -> None:
    """With S3 storage the API fetches the audio by URL; the command leaves nothing in the bucket."""
    layout.data["storage"] = {"type": "s3", "endpoint_url": s3_bucket.endpoint_url,
                              "bucket": s3_bucket.bucket, "addressing_style": "path"}  # fmt: skip
    layout.write()
    audio = make_tone(tmp_path / "memo.mp3", seconds=2.0, fmt="mp3")

    done = transcribe(str(audio), "-c", str(layout.config))

    assert done.returncode == 0, done.stderr
    (sent,) = paid(emulator)
    assert (sent["audio_kind"], sent["audio_sha256"]) == ("http", sha256_file(audio))
    s3 = boto3.client("s3", endpoint_url=s3_bucket.endpoint_url)
    assert s3.list_objects_v2(Bucket=s3_bucket.bucket).get("Contents", []) == []


@pytest.mark.parametrize("xdg", [True, False])
def test_without_a_config_the_journal_is_per_user(tmp_path: Path, xdg: bool) -> None:
    """Without -c the journal lives under $XDG_STATE_HOME (default ~/.local/state) and persists."""
    bogus = tmp_path / "bogus.mp3"
    bogus.write_text("hello")
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_STATE_HOME": str(tmp_path / "xdg") if xdg else ""}

    done = transcribe(str(bogus), env=env)

    assert done.returncode == 1
    assert "not_audio" in done.stderr
    expected = (tmp_path / "xdg" if xdg else home / ".local" / "state") / "dropscribe" / "transcribe.db"
    assert expected.is_file()
