"""Shared fixtures: the project's DashScope emulator and the service layout, on real loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dropscribe.emulator import Emulator, EmulatorConfig
from tests.support.service import API_KEY, Layout, ServiceProcess


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, api_keys={API_KEY}, task_run_s=0.5))
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def layout(tmp_path: Path, emulator: Emulator) -> Layout:
    return Layout(tmp_path, emulator.base_url)


@pytest.fixture
def services() -> Iterator[list[ServiceProcess]]:
    """Every service started through this list is stopped when the test ends (killed if it lingers)."""
    started: list[ServiceProcess] = []
    yield started
    for service in started:
        # SIGTERM first: a service that exits by itself also leaves its coverage data behind
        service.stop(timeout=5.0)
