"""Full disks: the journal's filesystem or done/ runs out of space; the service says so and loses nothing.

Each test mounts a small tmpfs (so it needs root, as CI has) for the journal or for done/, fills it to the
last byte with a filler file, and watches the real service: no crash and no crash loop, one clear log
line a minute instead of a traceback per file, the reason in ``dropscribe status`` and ``/healthz``,
files left in their inbox, no transcript in done/ without its recording, and everything finished once
the filler is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dropscribe.emulator import Emulator
from tests.support.audio import make_tone
from tests.support.checker import recognition_requests
from tests.support.disks import fill, small_tmpfs
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "small", "16m") as target:
        yield target


def events(service: ServiceProcess, name: str) -> list[dict[str, Any]]:
    return [e for e in list(service.events) if e.get("event") == name]


def status_json(layout: Layout) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "dropscribe", "status", "-c", str(layout.config), "--json"],
        capture_output=True, text=True, check=False, env={**os.environ, "DASHSCOPE_API_KEY": API_KEY},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    status: dict[str, Any] = json.loads(out.stdout)
    return status


def start(layout: Layout, services: list[ServiceProcess]) -> ServiceProcess:
    service = ServiceProcess(layout.config).wait_started()
    services.append(service)
    return service


def test_full_journal_disk_pauses_and_resumes_without_a_crash(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess], small_fs: Path
) -> None:
    layout = Layout(tmp_path, emulator.base_url, state={"path": str(small_fs / "journal.db")})
    service = start(layout, services)
    make_tone(layout.inbox / "before.wav", seconds=1.0, fmt="wav")
    wait_for(lambda: service.saw("job_done"))

    filler = fill(small_fs)
    for index in range(5):
        make_tone(layout.inbox / f"f{index}.wav", seconds=1.0, fmt="wav", freq=300 + 50 * index)
    wait_for(lambda: service.saw("state_full"), timeout=30)
    time.sleep(3)  # many scans and probes: still one line, no traceback, nothing moved
    assert service.proc.poll() is None
    assert len(events(service, "state_full")) == 1
    assert not events(service, "job_crashed")
    assert sorted(p.name for p in layout.inbox.iterdir()) == [f"f{i}.wav" for i in range(5)]
    report = status_json(layout)
    assert "state disk full" in report["service"]["text"]

    # a restart while the disk is still full starts, says why, and does not exit
    assert service.stop(timeout=60) == 0
    again = start(layout, services)
    wait_for(lambda: again.saw("state_full"), timeout=30)
    time.sleep(2)
    assert again.proc.poll() is None
    assert not events(again, "job_done")

    filler.unlink()
    wait_for(lambda: again.saw("state_space_back"), timeout=30)
    wait_for(lambda: len(events(again, "job_done")) == 5, timeout=60)
    assert not list(layout.inbox.iterdir())
    assert len(recognition_requests(emulator)) == 6


def test_full_done_folder_keeps_files_in_the_inbox_and_no_orphan_transcripts(
    tmp_path: Path, emulator: Emulator, services: list[ServiceProcess], small_fs: Path
) -> None:
    layout = Layout(tmp_path, emulator.base_url, inbox={"done": str(small_fs / "done")})
    (small_fs / "done").mkdir()
    filler = fill(small_fs)
    for index in range(4):
        make_tone(layout.inbox / f"f{index}.wav", seconds=1.0, fmt="wav", freq=300 + 50 * index)
    service = start(layout, services)
    wait_for(lambda: service.saw("output_full"), timeout=30)
    time.sleep(3)
    assert service.proc.poll() is None
    assert len(events(service, "output_full")) == 1, "one line a minute, not one per file"
    assert not events(service, "job_crashed")
    assert [p.name for p in (small_fs / "done").iterdir()] == []
    assert sorted(p.name for p in layout.inbox.iterdir()) == [f"f{i}.wav" for i in range(4)]
    assert "output full" in status_json(layout)["service"]["text"]

    filler.unlink()
    wait_for(lambda: len(events(service, "job_done")) == 4, timeout=60)
    with contextlib.suppress(FileNotFoundError):
        assert not list(layout.inbox.iterdir())
    names = sorted(p.name for p in (small_fs / "done").iterdir())
    assert names == sorted(f"f{i}.{ext}" for i in range(4) for ext in ("wav", "txt", "json"))
    assert len(recognition_requests(emulator)) == 4, "results kept while done/ was full are not paid again"
