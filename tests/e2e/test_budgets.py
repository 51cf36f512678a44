"""Budgets through the real service: files over budget wait in their inbox, reloads and reuse let files by.

A daily budget of 0.0015 h (5.4 s) takes two 2 s tones; the third waits ``over_budget`` until the day
resets, a ``budget.reached`` webhook goes out once, and raising the budget with a reload lets it through.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from dropscribe.emulator import Emulator
from tests.support.audio import make_tone
from tests.support.cli import run_cli
from tests.support.s3 import unused_port
from tests.support.service import Layout, ServiceProcess, wait_for

DAY_H = 0.0015  # 5.4 s of audio: two 2 s files fit, a third does not


class Receiver:
    """A webhook endpoint on 127.0.0.1 that keeps every JSON body it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self, name: str) -> list[dict[str, Any]]:
        return [body for body in self.bodies if body.get("event") == name]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


def budget_layout(tmp_path: Path, emulator: Emulator, receiver: Receiver, hours: float) -> Layout:
    return Layout(
        tmp_path, emulator.base_url, defaults={"budget": {"daily_audio_h": hours}},
        notify={"webhook": {"url": receiver.url, "secret_env": "HOOK_SECRET"}},
        web={"listen": f"127.0.0.1:{unused_port()}"},
    )  # fmt: skip


def status(layout: Layout) -> dict[str, Any]:
    done = run_cli("status", "-c", str(layout.config), "--json")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def over_budget(layout: Layout) -> list[dict[str, Any]]:
    return [w for w in status(layout)["waiting"] if w["reason"] == "over_budget"]


def budget_use(layout: Layout) -> float:
    with sqlite3.connect(layout.state) as db:
        return float(db.execute("SELECT TOTAL(seconds) FROM budget_use").fetchone()[0])


def drop(tmp_path: Path, layout: Layout, name: str, freq: float) -> Path:
    made = make_tone(tmp_path / name, seconds=2.0, fmt="wav", freq=freq)
    return made.rename(layout.inbox / name)


def test_a_file_over_budget_waits_until_the_budget_is_raised(
    tmp_path: Path, emulator: Emulator, receiver: Receiver, services: list[ServiceProcess]
) -> None:
    layout = budget_layout(tmp_path, emulator, receiver, DAY_H)
    service = ServiceProcess(layout.config, {"HOOK_SECRET": "s" * 20}).wait_started()
    services.append(service)
    drop(tmp_path, layout, "a.wav", 300.0)
    wait_for(lambda: (layout.done / "a.txt").exists())
    drop(tmp_path, layout, "b.wav", 400.0)
    wait_for(lambda: (layout.done / "b.txt").exists())
    drop(tmp_path, layout, "c.wav", 500.0)

    (waiting,) = wait_for(lambda: over_budget(layout))
    assert waiting["relpath"] == "c.wav"
    assert waiting["budget"]["scope"] == "defaults"
    assert waiting["budget"]["period"] == "day"
    assert waiting["until"] > 0
    assert waiting["attempts"] == 0
    assert (layout.inbox / "c.wav").exists()
    assert not layout.failed_files()
    (row,) = status(layout)["budgets"]
    assert (row["scope"], row["period"], row["limit_s"]) == ("defaults", "day", pytest.approx(5.4))
    assert row["used_s"] == pytest.approx(4.0, abs=0.2)
    assert row["reserved_s"] == 0
    reached = wait_for(lambda: receiver.events("budget.reached"))
    assert len(reached) == 1
    assert (reached[0]["scope"], reached[0]["period"], reached[0]["limit_s"]) == ("defaults", "day", 5.4)
    # the page and the metrics say the same
    base = f"http://{layout.data['web']['listen']}"
    page = httpx.get(base, timeout=10).text
    assert "<h2>Budgets</h2>" in page
    assert "4 s of 5 s</span> (1 file(s) wait for it)" in page
    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    remaining = next(
        line
        for line in metrics.splitlines()
        if line.startswith('dropscribe_budget_remaining_seconds{period="day",scope="defaults"}')
    )
    assert float(remaining.rsplit(" ", 1)[1]) == pytest.approx(1.4, abs=0.2)

    # a copy of a done file is reused: it costs nothing, so the full budget lets it through
    shutil.copyfile(layout.done / "a.wav", tmp_path / "a-again.wav")
    (tmp_path / "a-again.wav").rename(layout.inbox / "a-again.wav")
    wait_for(lambda: (layout.done / "a-again.txt").exists())
    assert (layout.inbox / "c.wav").exists()

    layout.data["defaults"] = {"budget": {"daily_audio_h": 1.0}}
    layout.write()
    service.signal(signal.SIGHUP)
    wait_for(lambda: (layout.done / "c.txt").exists())
    assert budget_use(layout) == pytest.approx(6.0, abs=0.3)  # three files billed, the copy not
    assert len(receiver.events("budget.reached")) == 1
    assert service.stop() == 0


def test_a_kill_right_after_the_reservation_neither_leaks_nor_counts_twice(
    tmp_path: Path, emulator: Emulator, receiver: Receiver, services: list[ServiceProcess]
) -> None:
    layout = budget_layout(tmp_path, emulator, receiver, 1.0)
    env = {"HOOK_SECRET": "s" * 20, "DROPSCRIBE_CRASH_AT": "after_reserve"}
    service = ServiceProcess(layout.config, env).wait_started()
    services.append(service)
    drop(tmp_path, layout, "a.wav", 300.0)
    wait_for(lambda: service.proc.poll() is not None)
    assert budget_use(layout) == pytest.approx(2.0, abs=0.1)  # the reservation, committed before the crash
    assert not emulator.requests()  # nothing was sent

    services.append(ServiceProcess(layout.config, {"HOOK_SECRET": "s" * 20}).wait_started())
    wait_for(lambda: (layout.done / "a.txt").exists())
    assert budget_use(layout) == pytest.approx(2.0, abs=0.1)  # settled once, to the billed seconds
    with sqlite3.connect(layout.state) as db:
        assert db.execute("SELECT COUNT(*) FROM budget_use WHERE settled=0").fetchone()[0] == 0
