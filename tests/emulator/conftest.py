"""Fixtures for the emulator tests: a running emulator, a client for it, a plain file server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from dropscribe.emulator import Emulator, EmulatorConfig
from tests.emulator.emulator_helpers import FileServer, api_client, sine


@pytest.fixture(scope="session")
def wav2() -> bytes:
    """Two seconds of sine as WAV."""
    return sine(2.0)


@pytest.fixture(scope="session")
def mp3_2() -> bytes:
    """Two seconds of sine as MP3."""
    return sine(2.0, fmt="mp3")


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start emulators with the given config fields; all are stopped after the test."""
    started: list[Emulator] = []

    def start(**fields: Any) -> Emulator:
        emulator = Emulator(EmulatorConfig(**fields))
        emulator.start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(start_emulator: Callable[..., Emulator]) -> Emulator:
    return start_emulator(task_run_s=0.3)


@pytest.fixture
def client(emulator: Emulator) -> Iterator[httpx.Client]:
    with api_client(emulator) as http:
        yield http


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()
