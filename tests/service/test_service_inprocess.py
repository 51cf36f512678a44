"""The service built through its composition root and run in a thread of the test, against real parts:
a real SQLite journal, the emulator over HTTP, real audio files in real folders.

Stopping and reloading go through methods, not signals, so each test can look at the service's own
objects (its wirings, its queue) while it runs, and still finishes in seconds.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dropscribe.adapters import writers
from dropscribe.adapters.journal import SqliteJournal
from dropscribe.emulator import Emulator, Fault
from dropscribe.service.compose import LogNotifier, compose
from dropscribe.service.runner import Service
from dropscribe.service.settings_files import load_settings
from tests.support.audio import make_tone, sha256_file
from tests.support.service import API_KEY, Layout, wait_for

ENV = {"DASHSCOPE_API_KEY": API_KEY}


@dataclass
class RecordingNotifier:
    """A notifier that keeps what it was told, and still logs it like the real one."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _log: LogNotifier = field(default_factory=LogNotifier)

    def notify(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))
        self._log.notify(event, **fields)

    def saw(self, event: str) -> bool:
        return any(name == event for name, _ in list(self.events))


@dataclass
class Running:
    service: Service
    thread: threading.Thread
    notifier: RecordingNotifier
    exit_code: list[int]

    def stop(self) -> int:
        self.service.request_stop()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the loop did not stop"
        return self.exit_code[0]


@pytest.fixture
def start(layout: Layout) -> Iterator[Any]:
    writers.ignore_lease_breaks()  # the lease probe's SIGIO must not end the test process
    started: list[Running] = []

    def start_service() -> Running:
        notifier = RecordingNotifier()
        graph = compose(load_settings(layout.config, ENV), ENV, config_path=layout.config, notifier=notifier)
        service = Service(graph)
        code: list[int] = []
        thread = threading.Thread(target=lambda: code.append(service.run()), name="loop", daemon=True)
        thread.start()
        running = Running(service, thread, notifier, code)
        started.append(running)
        return running

    yield start_service
    for running in started:
        if running.thread.is_alive():
            running.stop()


def drop(layout: Layout, tmp_path: Path, name: str, freq: float = 440.0) -> str:
    """A one-second recording renamed into the inbox whole; returns its SHA-256."""
    staging = tmp_path / "staging"
    staging.mkdir(exist_ok=True)
    source = make_tone(staging / name, seconds=1.0, fmt="wav", freq=freq)
    sha = sha256_file(source)
    source.rename(layout.inbox / name)
    return sha


def done(layout: Layout, name: str) -> bool:
    stem = Path(name).stem
    return (layout.done / name).exists() and (layout.done / f"{stem}.txt").exists()


def recognitions(emulator: Emulator, sha: str) -> list[dict[str, Any]]:
    return [
        r for r in emulator.requests() if r["path"].endswith("/generation") and r.get("audio_sha256") == sha
    ]


def test_a_dropped_file_is_recognized_once_and_finished_with_sidecars(
    layout: Layout, emulator: Emulator, tmp_path: Path, start: Any
) -> None:
    running = start()
    sha = drop(layout, tmp_path, "memo.wav")

    wait_for(lambda: done(layout, "memo.wav"), timeout=15)
    assert running.stop() == 0

    assert sha256_file(layout.done / "memo.wav") == sha
    assert sorted(p.name for p in layout.done.iterdir()) == ["memo.json", "memo.txt", "memo.wav"]
    assert (layout.done / "memo.txt").read_text(encoding="utf-8").strip()
    assert [r["status"] for r in recognitions(emulator, sha)] == [200]
    assert not layout.inbox.joinpath("memo.wav").exists()
    assert running.service.queue.stats == {"done": 1, "failed": 0, "retried": 0}
    assert running.service.open_wirings() == []  # everything it built is closed at the end


def test_a_reload_swaps_the_wiring_and_closes_the_old_one_once_its_file_is_done(
    layout: Layout, emulator: Emulator, tmp_path: Path, start: Any
) -> None:
    emulator.add_fault(Fault(path="generation", delay_s=1.5, times=1))  # the first answer comes late
    running = start()
    service = running.service
    first = service.wiring
    drop(layout, tmp_path, "slow.wav")
    wait_for(lambda: service.queue.in_flight, timeout=10)

    layout.data["dashscope"]["requests_per_minute"] = 1200
    layout.write()
    service.request_reload()
    wait_for(lambda: service.generation == 1, timeout=5)

    second = service.wiring
    assert second is not first
    assert second.client is not first.client
    assert second.pipeline is not first.pipeline
    assert second.settings.dashscope.requests_per_minute == 1200
    # the file taken before the reload still runs on the old parts: they stay open until it is done
    assert service.queue.in_flight
    assert service.open_wirings() == [first, second]
    assert not first.closed.is_set()

    wait_for(lambda: done(layout, "slow.wav"), timeout=15)
    wait_for(lambda: first.closed.is_set(), timeout=5)
    assert service.open_wirings() == [second]
    assert not second.closed.is_set()

    drop(layout, tmp_path, "after.wav", freq=550.0)  # the new wiring takes new files
    wait_for(lambda: done(layout, "after.wav"), timeout=15)
    assert running.stop() == 0
    assert service.open_wirings() == []


def test_a_transient_fault_is_retried_with_backoff_and_ends_done(
    layout: Layout, emulator: Emulator, tmp_path: Path, start: Any
) -> None:
    emulator.add_fault(Fault(path="generation", status=503, code="ServiceUnavailable", times=2))
    running = start()
    sha = drop(layout, tmp_path, "flaky.wav")

    wait_for(lambda: done(layout, "flaky.wav"), timeout=20)
    assert running.stop() == 0

    tries = [r for r in emulator.requests() if r["path"].endswith("/generation")]  # a fault has no sha
    assert [r["status"] for r in tries] == [503, 503, 200]
    assert tries[-1]["audio_sha256"] == sha
    assert running.service.queue.stats["retried"] == 2
    assert not layout.failed.exists()
    # retry_base_s is 0.2 s: waits of about 0.2 s then 0.4 s (±25 %), never a hot loop
    times = [dt.datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp() for r in tries]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.15, gaps
    assert gaps[1] >= 0.3, gaps
    journal = SqliteJournal(layout.state)
    try:
        (job,) = journal.recent("done", 5)
        assert job.attempts == 2
    finally:
        journal.close()


def test_an_account_error_pauses_the_queue_and_a_probe_resumes_it(
    layout: Layout, emulator: Emulator, tmp_path: Path, start: Any
) -> None:
    layout.data["dashscope"]["pause_probe_s"] = 1.0
    layout.write()
    emulator.add_fault(Fault(path="generation", status=400, code="Arrearage", times=None))
    running = start()
    service = running.service
    shas = {drop(layout, tmp_path, f"call-{i}.wav", freq=300 + 100 * i): f"call-{i}.wav" for i in range(3)}

    wait_for(lambda: running.notifier.saw("queue_paused"), timeout=15)
    assert service.queue.paused is not None
    assert service.queue.paused["code"] == "Arrearage"
    paused_at = time.monotonic()
    time.sleep(2.5)  # two or three probes, one file each, nothing sent to failed/
    tried = [r for r in emulator.requests() if r["path"].endswith("/generation")]
    assert len(tried) <= 2 * 2 + 3, f"{len(tried)} requests while paused"
    assert sorted(p.name for p in layout.inbox.iterdir()) == sorted(shas.values())
    assert not layout.failed.exists()

    emulator.clear_faults()
    wait_for(lambda: all(done(layout, name) for name in shas.values()), timeout=15)
    resumed = [fields for name, fields in running.notifier.events if name == "queue_resumed"]
    assert resumed == [{"backend": "dashscope", "reason": "a file went through"}]
    assert time.monotonic() - paused_at < 10
    assert running.stop() == 0
    for sha in shas:
        assert [r["status"] for r in recognitions(emulator, sha)][-1] == 200
        assert sum(r["status"] == 200 for r in recognitions(emulator, sha)) == 1
