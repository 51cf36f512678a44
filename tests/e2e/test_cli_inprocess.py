"""The in-process runner the command tests use gives what the console script gives, and leaves no trace."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

import structlog

from tests.support.cli import run_cli
from tests.support.service import API_KEY, Layout


def test_a_command_that_sets_up_logging_leaves_the_process_as_it_found_it(
    layout: Layout, tmp_path: Path
) -> None:
    """``transcribe`` configures logging for its process; after it, this worker logs as before."""
    bogus = tmp_path / "bogus.mp3"
    bogus.write_text("hello")
    root = logging.getLogger()
    handlers, level, config = list(root.handlers), root.level, structlog.get_config()

    done = run_cli("transcribe", str(bogus), "-c", str(layout.config), env={"DASHSCOPE_API_KEY": API_KEY})

    assert done.returncode == 1
    assert "not_audio" in done.stderr
    assert (list(root.handlers), root.level) == (handlers, level)
    assert structlog.get_config() == config


def test_output_and_exit_codes_are_those_of_the_console_script(layout: Layout) -> None:
    """Same code and words for a bad config and a bad command line; another thread's prints are not taken."""
    layout.config.write_text("dashscope:\n  model: qwen9\n")
    stop = threading.Event()

    def chatter() -> None:  # as the emulator's log lines do, from its own threads
        while not stop.wait(0.001):
            print("from another thread")

    noise = threading.Thread(target=chatter)
    noise.start()
    try:
        for argv in (["check", "-c", str(layout.config)], ["status"]):
            inside = run_cli(*argv)
            child = subprocess.run([sys.executable, "-m", "dropscribe", *argv], capture_output=True,
                                   text=True, timeout=60)  # fmt: skip
            assert (inside.returncode, inside.stdout, inside.stderr) == (
                child.returncode, child.stdout, child.stderr
            )  # fmt: skip
            assert inside.returncode in (2, 78)
    finally:
        stop.set()
        noise.join()


def test_version_is_the_installed_release() -> None:
    from importlib.metadata import version

    ran = run_cli("--version")
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, f"dropscribe {version('dropscribe')}\n", "")
