"""Running the real ``dropscribe run`` process in tests, and waiting on what it does to the disk."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

API_KEY = "sk-test-0123456789abcdef"


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
        time.sleep(interval)


class Layout:
    """A deployment in a temp folder: inbox, done, failed, state and a config file."""

    def __init__(self, root: Path, base_url: str, **overrides: Any) -> None:
        self.root = root
        self.inbox = root / "inbox"
        self.done = root / "done"
        self.failed = root / "failed"
        self.state = root / "state" / "journal.db"
        self.config = root / "dropscribe.yaml"
        self.inbox.mkdir(parents=True, exist_ok=True)
        inbox: dict[str, Any] = {"path": str(self.inbox), "settle_s": 0.3, "rescan_s": 0.5,
                                 "incomplete_wait_s": 0.5}  # fmt: skip
        inbox.update(overrides.pop("inbox", {}))
        self.data: dict[str, Any] = {
            "dashscope": {"base_url": base_url, "concurrency": 2, "requests_per_minute": 600,
                          "timeout_s": 30, "retry_base_s": 0.2, "retry_max_s": 2},
            "storage": {"type": "inline"},
            "state": {"path": str(self.state)},
            "inboxes": [inbox],
            "logging": {"format": "json", "level": "debug"},
        }  # fmt: skip
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(self.data.get(key), dict):
                self.data[key].update(value)
            else:
                self.data[key] = value
        self.write()

    def write(self) -> None:
        self.config.write_text(yaml.safe_dump(self.data, sort_keys=False))

    def done_files(self) -> list[str]:
        return sorted(p.relative_to(self.done).as_posix() for p in self.done.rglob("*") if p.is_file())

    def failed_files(self) -> list[str]:
        return sorted(p.relative_to(self.failed).as_posix() for p in self.failed.rglob("*") if p.is_file())


class ServiceProcess:
    """``dropscribe run -c CONFIG`` as a child process, with its JSON log lines collected."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        full_env = {**os.environ, "DASHSCOPE_API_KEY": API_KEY, "PYTHONUNBUFFERED": "1"}
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dropscribe", "run", "-c", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env,
        )  # fmt: skip
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            with contextlib.suppress(ValueError):
                self.events.append(json.loads(line))

    def saw(self, event: str, **fields: Any) -> bool:
        return any(
            e.get("event") == event and all(e.get(k) == v for k, v in fields.items())
            for e in list(self.events)
        )

    def wait_started(self, timeout: float = 30.0) -> ServiceProcess:
        wait_for(lambda: self.saw("service_started") or self.proc.poll() is not None, timeout)
        if self.proc.poll() is not None:
            self._reader.join(timeout=5)
            raise AssertionError("service exited at start:\n" + "\n".join(self.lines))
        return self

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=5)

    def output(self) -> str:
        return "\n".join(self.lines)
