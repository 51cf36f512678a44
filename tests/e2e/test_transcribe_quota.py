"""``dropscribe transcribe`` over an account's rate quota: it waits throttling out, as the service does.

A 429 ``Throttling.RateQuota`` says "not now", not "this file cannot be done": the command keeps
retrying until the quota's window lets requests through again, however many refusals in a row that
takes, and pays for each chunk once. Other transient errors still end the run after a few failures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dropscribe.emulator import Emulator, Fault
from dropscribe.emulator.transcripts import billed_seconds
from tests.support.audio import make_speechlike
from tests.support.service import API_KEY, Layout

SECONDS = 150.0  # five or six chunks of at most 30 s


def transcribe(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DASHSCOPE_API_KEY": API_KEY, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "dropscribe", "transcribe", *args], capture_output=True,
                          text=True, env=env, timeout=240)  # fmt: skip


@pytest.fixture
def talk(tmp_path: Path) -> Path:
    return make_speechlike(tmp_path / "talk.flac", SECONDS, "flac")


@pytest.fixture
def quota_emulator() -> Iterator[str]:
    """``dropscribe emulate --rpm 3`` as its own process; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dropscribe", "emulate", "--port", "0", "--rpm", "3", "--api-key", API_KEY],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "serving http://" in first, first
        yield first.rsplit(" ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(10)


def recognitions(base_url: str) -> list[dict[str, Any]]:
    root = base_url.split("/api/v1")[0]
    with urllib.request.urlopen(f"{root}/_emulator/requests", timeout=10) as reply:
        records: list[dict[str, Any]] = json.load(reply)
    return [r for r in records if "generation" in r["path"]]


def assert_paid_once_each(answered: list[dict[str, Any]], out: dict[str, Any]) -> None:
    shas = [r["audio_sha256"] for r in answered]
    assert len(shas) == len(set(shas)), f"a chunk was paid twice: {shas}"
    assert sum(r["duration_s"] for r in answered) == pytest.approx(SECONDS, abs=0.1)
    assert out["chunks"] == len(answered)
    assert out["usage_seconds"] == sum(billed_seconds(r["duration_s"]) for r in answered)


@pytest.mark.thorough  # a minute of the quota's window; the test below proves the same in seconds
def test_a_quota_below_the_configured_rate_is_waited_out_and_nothing_is_paid_twice(
    tmp_path: Path, quota_emulator: str, talk: Path
) -> None:
    """Quota 3 RPM, config 60 RPM and quick retries: the chunks past the third are refused for about a
    minute, many times in a row; the command waits until the quota's window moves on."""
    layout = Layout(tmp_path / "site", quota_emulator, defaults={"chunk_max_s": 30},
                    dashscope={"retry_base_s": 0.2, "retry_max_s": 2})  # fmt: skip

    done = transcribe(str(talk), "-c", str(layout.config), "--json")

    assert done.returncode == 0, done.stderr
    sent = recognitions(quota_emulator)
    refused = [r for r in sent if r["status"] == 429]
    answered = [r for r in sent if r["status"] == 200]
    assert len(refused) > 8, "the quota did not refuse more often than a run of failures allows"
    assert {r["code"] for r in refused} == {"Throttling.RateQuota"}
    assert len(answered) > 3
    assert_paid_once_each(answered, json.loads(done.stdout))


def test_a_long_run_of_throttling_refusals_does_not_end_the_run(
    tmp_path: Path, emulator: Emulator, talk: Path
) -> None:
    """Twenty 429s in a row (ten attempts of two requests), more than the failures in a row after
    which other errors give up."""
    layout = Layout(tmp_path / "site", emulator.base_url, defaults={"chunk_max_s": 30},
                    dashscope={"retry_base_s": 0.05, "retry_max_s": 0.2, "concurrency": 1})  # fmt: skip
    emulator.add_fault(Fault(path="generation", status=429, code="Throttling.RateQuota", times=20))

    done = transcribe(str(talk), "-c", str(layout.config), "--json")

    assert done.returncode == 0, done.stderr
    sent = [r for r in emulator.requests() if "generation" in r["path"]]
    assert len([r for r in sent if r["status"] == 429]) == 20
    assert_paid_once_each([r for r in sent if r["status"] == 200], json.loads(done.stdout))


def test_other_transient_errors_still_give_up(tmp_path: Path, emulator: Emulator, talk: Path) -> None:
    layout = Layout(tmp_path / "site", emulator.base_url, defaults={"chunk_max_s": 30},
                    dashscope={"retry_base_s": 0.05, "retry_max_s": 0.2})  # fmt: skip
    emulator.add_fault(Fault(path="generation", status=503, code="ServiceUnavailable", times=None))

    done = transcribe(str(talk), "-c", str(layout.config), "--json")

    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["code"] == "gave_up"
