"""systemd integration: the service speaks sd_notify on $NOTIFY_SOCKET like a Type=notify unit expects."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dropscribe.emulator import Emulator
from tests.support.audio import make_tone
from tests.support.service import Layout, ServiceProcess, wait_for


def test_ready_status_watchdog_and_stopping(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess], tmp_path: Path
) -> None:
    """READY=1 after start-up, STATUS= lines, WATCHDOG=1 pings from the loop, STOPPING=1 on SIGTERM."""
    address = str(tmp_path / "notify.sock")
    messages: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(address)
        sock.settimeout(0.1)

        def drain() -> list[str]:
            while True:
                try:
                    messages.append(sock.recv(4096).decode())
                except TimeoutError:
                    return messages

        make_tone(layout.inbox / "a.wav", seconds=1.0, fmt="wav")
        # WATCHDOG_PID must name the service itself; the test learns the pid only after the start, so
        # it leaves WATCHDOG_PID unset, which sd_notify treats as "this process"
        service = ServiceProcess(layout.config, {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"})
        services.append(service)
        wait_for(lambda: "READY=1" in drain(), timeout=30)
        wait_for(lambda: (layout.done / "a.txt").exists())
        wait_for(lambda: sum(m == "WATCHDOG=1" for m in drain()) >= 3, timeout=10)
        wait_for(lambda: any(m.startswith("STATUS=") and "1 done" in m for m in drain()), timeout=10)
        assert service.stop() == 0
        drain()
    assert "STOPPING=1" in messages
    assert messages.index("READY=1") < messages.index("STOPPING=1")
    assert os.path.exists(address)


# Run in a child so the module picks its path at import, as the service does; with "socket" the
# optional systemd-python is made unimportable there, which forces the module's own datagram code.
RELOADING_CHILD = """
import sys, time
if sys.argv[1] == "socket":
    sys.modules["systemd"] = None
from dropscribe.adapters import systemd
assert (systemd._sd_daemon is None) == (sys.argv[1] == "socket")
before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
sent = systemd.reloading()
after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
print(before, sent, after)
"""


def _native_available() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import systemd.daemon"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.parametrize(
    "path",
    [
        "socket",
        pytest.param(
            "native",
            marks=pytest.mark.skipif(not _native_available(), reason="systemd-python is not installed"),
        ),
    ],
)
@pytest.mark.parametrize("abstract", [False, True], ids=["file", "abstract"])
def test_reloading_carries_monotonic_usec(tmp_path: Path, path: str, abstract: bool) -> None:
    """RELOADING=1 comes with MONOTONIC_USEC (CLOCK_MONOTONIC, µs), which Type=notify-reload requires."""
    name = f"dropscribe-test-{os.getpid()}-{path}" if abstract else str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name if abstract else name)
        sock.settimeout(10)
        env = {**os.environ, "NOTIFY_SOCKET": "@" + name if abstract else name}
        done = subprocess.run([sys.executable, "-c", RELOADING_CHILD, path], capture_output=True, text=True,
                              env=env, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        message = sock.recv(4096).decode()
    before, sent, after = done.stdout.split()
    assert sent == "True"
    lines = message.split("\n")
    assert lines[0] == "RELOADING=1"
    assert len(lines) == 2
    key, _, usec = lines[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert int(before) <= int(usec) <= int(after)


def test_reloading_outside_systemd_is_a_no_op() -> None:
    """Without NOTIFY_SOCKET there is nobody to tell: nothing is sent and nothing fails."""
    env = {key: value for key, value in os.environ.items() if key != "NOTIFY_SOCKET"}
    done = subprocess.run(
        [sys.executable, "-c", "from dropscribe.adapters.systemd import reloading; print(reloading())"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
