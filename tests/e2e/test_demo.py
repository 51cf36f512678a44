"""``./scripts/demo``: with its port taken it stops and says so, and never runs the service against
whatever holds the port; running, it serves its two folders from the emulator's two backends.

The script runs for real, in its own session, so every process it starts can be found afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import dropscribe
from tests.support.audio import make_speech
from tests.support.service import wait_for

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scripts" / "demo"
DEMO_CONFIG = REPO / "demo" / "config.yaml"


def _venv_is_current() -> bool:
    """The demo's own condition for not installing: the checkout's package with the declared dependencies.

    Checked here too so a stale ``.venv`` skips the test rather than being reinstalled under everyone.
    """
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    installed = [r for r in importlib.metadata.requires("dropscribe") or [] if "extra ==" not in r]
    here = Path(dropscribe.__file__).resolve().is_relative_to(REPO / "daemon")
    return here and sorted(project["dependencies"]) == sorted(installed)


@dataclass
class DemoRun:
    code: int
    stdout: str
    stderr: str
    elapsed_s: float
    leftovers: list[str]


def _session_members(session: int) -> list[str]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            # after "pid (comm) ": state, ppid, pgrp, session...
            state, _, _, sid = (entry / "stat").read_text().rpartition(")")[2].split()[:4]
            # a zombie has ended already; it only waits to be reaped by whoever inherited it
            if int(sid) == session and state != "Z":
                members.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return members


def run_demo(port: int, timeout: float) -> DemoRun:
    env = {**os.environ, "DROPSCRIBE_DEMO_PORT": str(port)}
    started = time.monotonic()
    proc = subprocess.Popen([str(DEMO)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stdout, stderr = "", "(timed out)"
    elapsed = time.monotonic() - started
    leftovers = _session_members(proc.pid)
    # whatever is left of the session (nothing, when the script behaves) goes with it
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return DemoRun(proc.returncode, stdout, stderr, elapsed, leftovers)


@pytest.fixture
def demo_folder() -> Iterator[None]:
    """The demo works in the checkout's demo/ folder: its tests take turns, whichever worker runs them."""
    with (REPO / ".demo-tests.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture
def config_untouched(demo_folder: None) -> Iterator[None]:
    """The demo writes its config just before ``dropscribe run``; untouched, the service never ran."""
    before = DEMO_CONFIG.stat().st_mtime_ns if DEMO_CONFIG.exists() else None
    yield
    assert (DEMO_CONFIG.stat().st_mtime_ns if DEMO_CONFIG.exists() else None) == before


def assert_refused(run: DemoRun, port: int) -> None:
    assert run.code != 0, run.stdout + run.stderr
    assert f"port {port}" in run.stderr
    assert "DROPSCRIBE_DEMO_PORT" in run.stderr
    assert "Traceback" not in run.stderr
    assert "drop audio into" not in run.stdout
    assert run.leftovers == []


def test_port_with_a_listener_stops_the_demo_at_once(config_untouched: None) -> None:
    """Something listening on the port: the demo stops before setting anything up, naming the port
    and the variable that picks another."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        run = run_demo(port, timeout=30)
    assert_refused(run, port)
    assert run.elapsed_s < 10
    assert "setting up" not in run.stdout
    assert "emulator" not in run.stdout


@pytest.mark.skipif(
    not _venv_is_current(), reason=".venv does not match pyproject.toml; the demo would install"
)
def test_port_taken_while_the_emulator_starts(config_untouched: None) -> None:
    """A port bound but not yet listening passes the first look; the emulator then cannot bind it,
    and the demo stops with the same message instead of running the service against the port."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        run = run_demo(port, timeout=90)
    assert_refused(run, port)
    assert "installing" not in run.stdout  # the .venv was current: nothing installed
    assert f"starting the DashScope emulator on 127.0.0.1:{port}" in run.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.skipif(
    not _venv_is_current(), reason=".venv does not match pyproject.toml; the demo would install"
)
def test_both_folders_come_back_each_from_its_backend(tmp_path: Path, demo_folder: None) -> None:
    """The demo's two folders: demo/inbox goes to the emulator's DashScope side, demo/inbox-local to its
    OpenAI-compatible side; each sidecar names the backend that answered."""
    port = _free_port()
    name = f"test-demo-{uuid.uuid4().hex[:8]}"
    speech = make_speech(tmp_path / "speech.wav", "hello world, this is a test", "wav", voice="en-us")
    hears = importlib.util.find_spec("pocketsphinx") is not None
    env = {**os.environ, "DROPSCRIBE_DEMO_PORT": str(port)}
    proc = subprocess.Popen([str(DEMO)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    demo = REPO / "demo"
    results = {
        "dashscope": demo / "done" / f"{name}-cloud.json",
        "local": demo / "done-local" / f"{name}-local.json",
    }
    output: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if "drop audio into" in line:
                break
        assert any("drop audio into" in line for line in output), "".join(output)
        shutil.copy(speech, tmp_path / f"{name}-cloud.wav")
        (tmp_path / f"{name}-cloud.wav").rename(demo / "inbox" / f"{name}-cloud.wav")
        shutil.copy(speech, tmp_path / f"{name}-local.wav")
        (tmp_path / f"{name}-local.wav").rename(demo / "inbox-local" / f"{name}-local.wav")
        wait_for(lambda: all(path.exists() for path in results.values()), timeout=120)
        docs = {backend: json.loads(path.read_text()) for backend, path in results.items()}
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for folder in ("inbox", "inbox-local", "done", "done-local", "failed", "failed-local"):
            for leftover in (demo / folder).glob(f"{name}-*") if (demo / folder).exists() else []:
                leftover.unlink()

    recognizer = "pocketsphinx is installed" if hears else "transcripts are placeholder text"
    assert any(recognizer in line for line in output), "".join(output)
    assert docs["dashscope"]["backend"] == "dashscope"
    assert docs["local"]["backend"] == "local"
    assert docs["local"]["model"] == "Qwen/Qwen3-ASR-1.7B"
    for doc in docs.values():
        # how well it hears is tests/emulator/test_emulator_hearing.py's concern; here: it was used
        assert doc["text"].startswith("emulated transcript") != hears, doc["text"]
    assert _session_members(proc.pid) == []
