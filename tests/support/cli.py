"""Running a ``dropscribe`` command inside the test process, as ``dropscribe.cli.main(argv)``.

A subprocess costs about a second and a half under coverage; tests that read what a command prints
and its exit code, and not the process around it, call ``main`` directly. Each command's own process
(argv as bytes, signals, the console script) keeps at least one subprocess test.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import structlog

from dropscribe.cli import main


@dataclass(frozen=True)
class Ran:
    """What ``subprocess.run(..., capture_output=True, text=True)`` would have given."""

    returncode: int
    stdout: str
    stderr: str


class _OneThread(io.StringIO):
    """Keeps what the calling thread writes; other threads (an emulator's log lines) go on as before."""

    def __init__(self, others: TextIO) -> None:
        # set before the buffer exists: another thread may print the moment it is installed
        self._owner = threading.get_ident()
        self._others = others
        super().__init__()

    def write(self, text: str) -> int:
        others: TextIO | None = getattr(self, "_others", None)
        if others is None or threading.get_ident() == getattr(self, "_owner", None):
            return super().write(text)
        return others.write(text)


@contextlib.contextmanager
def kept_logging() -> Iterator[None]:
    """Put back what a command may set up for the process: later tests in this worker log as before."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.configure(**config)


@contextlib.contextmanager
def environment(extra: Mapping[str, str]) -> Iterator[None]:
    """``extra`` in ``os.environ`` for the call, as a child's environment would carry it; then as before."""
    before = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_cli(*argv: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Ran:
    """``dropscribe ARGV`` in this process: its exit code and what it printed to stdout and stderr."""
    out, err = _OneThread(sys.stdout), _OneThread(sys.stderr)
    where = contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext()
    with (
        kept_logging(),
        where,
        environment(env or {}),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's own errors, as the console script would exit
            code = exc.code if isinstance(exc.code, int) else 1
    return Ran(code, out.getvalue(), err.getvalue())
