"""``requests_per_minute: auto`` in the real service, against an emulator whose quota it is not told."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dropscribe.emulator import Emulator, EmulatorConfig
from tests.support.audio import make_tone
from tests.support.cli import run_cli
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for

QUOTA = 50  # reached after about 30 s of slow start from 60 per minute
FILES = 60


@pytest.fixture
def limited() -> Iterator[Emulator]:
    emu = Emulator(EmulatorConfig(api_keys={API_KEY}, requests_per_minute=QUOTA))
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def recognitions(emulator: Emulator) -> list[dict[str, Any]]:
    return [r for r in emulator.requests() if "generation" in r["path"]]


@pytest.mark.thorough  # a minute of the emulator's quota window: in CI's run
def test_auto_finds_the_quota_and_fails_nothing(
    tmp_path: Path, limited: Emulator, services: list[ServiceProcess]
) -> None:
    layout = Layout(tmp_path, limited.base_url, dashscope={"requests_per_minute": "auto"})
    for i in range(FILES):  # distinct content: the same audio twice would be answered from the first
        make_tone(layout.inbox / f"t{i:02d}.wav", seconds=0.3, fmt="wav", freq=200.0 + 10 * i)
    service = ServiceProcess(layout.config)
    services.append(service)
    service.wait_started()

    found = wait_for(lambda: [e for e in service.events if e.get("event") == "rate_limit_found"], timeout=60)
    assert found[0]["backend"] == "dashscope"
    assert 0.9 * QUOTA <= found[0]["rate"] <= QUOTA

    def reported() -> dict[str, Any] | None:
        # the log line comes first; the service's next report (every half second) carries it too
        status = json.loads(run_cli("status", "--json", "-c", str(layout.config)).stdout)
        rate: dict[str, Any] = status["service"]["rates"]["dashscope"]
        return rate if rate.get("limit_found") is not None else None

    rate = wait_for(reported, timeout=10)
    assert rate["mode"] == "auto"
    assert 0.9 * QUOTA <= rate["limit_found"] <= QUOTA
    assert rate["requests_per_minute"] < QUOTA

    wait_for(lambda: len(list(layout.done.glob("*.wav"))) == FILES, timeout=90)
    assert not layout.failed.exists() or not any(layout.failed.iterdir())
    statuses = [r["status"] for r in recognitions(limited)]
    throttled = statuses.count(429)
    assert statuses.count(200) == FILES
    # the one refusal that found the quota, and at most one more already on its way (concurrency 2)
    assert 1 <= throttled <= 2, statuses


def test_check_refuses_a_rate_that_is_not_a_number_or_auto(tmp_path: Path, limited: Emulator) -> None:
    layout = Layout(tmp_path, limited.base_url, dashscope={"requests_per_minute": "fast"})
    done = run_cli("check", "-c", str(layout.config))
    assert done.returncode == 78
    assert "requests_per_minute" in done.stdout + done.stderr
    assert "a whole number ≥ 1 or auto" in done.stdout + done.stderr
    layout.data["dashscope"].update(requests_per_minute="auto", max_requests_per_minute=0)
    layout.write()
    done = run_cli("check", "-c", str(layout.config))
    assert done.returncode == 78
    assert "max_requests_per_minute" in done.stdout + done.stderr
