"""``dropscribe emulate`` as a separate process, the way tests of the service run it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dropscribe.emulator.cli import main
from tests.emulator.emulator_helpers import GENERATION, data_url, sha, sync_body

URL = re.compile(r"http://127\.0\.0\.1:(\d+)/api/v1")


def start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start the CLI on a free port and return the process and the base URL it printed."""
    code = f"import sys; from dropscribe.emulator.cli import main; sys.exit(main({list(args)!r}))"
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    banner = process.stdout.readline()
    match = URL.search(banner)
    if match is None:
        process.kill()
        raise AssertionError(f"no URL in {banner!r}; stderr: {process.communicate()[1]}")
    assert "not a speech recognizer" in banner
    return process, match.group(0)


def stop(process: subprocess.Popen[str], signum: int = signal.SIGTERM) -> int:
    process.send_signal(signum)
    try:
        return process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()


def test_serves_until_sigterm_then_exits_zero(tmp_path: Path, wav2: bytes) -> None:
    log_path = tmp_path / "requests.jsonl"
    process, base_url = start_cli(
        "--port", "0", "--api-key", "sk-cli", "--log", str(log_path), "--max-duration-s", "180"
    )
    try:
        reply = httpx.post(
            base_url + GENERATION,
            json=sync_body(data_url(wav2)),
            headers={"Authorization": "Bearer sk-cli"},
            timeout=10,
        )
    finally:
        status = stop(process)

    assert reply.status_code == 200
    assert status == 0
    (record,) = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    assert record["audio_sha256"] == sha(wav2)
    assert "sk-cli" not in log_path.read_text(encoding="utf-8")


def test_faults_from_the_command_line_and_sigint(wav2: bytes) -> None:
    process, base_url = start_cli("--port", "0", "--fault", "status=503,code=ServiceUnavailable,times=1")
    try:
        with httpx.Client(headers={"Authorization": "Bearer k"}, timeout=10) as http:
            first = http.post(base_url + GENERATION, json=sync_body(data_url(wav2)))
            second = http.post(base_url + GENERATION, json=sync_body(data_url(wav2)))
    finally:
        status = stop(process, signal.SIGINT)

    assert (first.status_code, second.status_code) == (503, 200)
    assert status == 0


def test_bad_fault_spec_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--fault", "colour=red"])

    assert stopped.value.code == 2
    assert "colour" in capsys.readouterr().err
