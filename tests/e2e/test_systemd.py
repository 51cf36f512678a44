"""systemd integration: the service speaks sd_notify on $NOTIFY_SOCKET like a Type=notify unit expects."""

from __future__ import annotations

import os
import socket
from pathlib import Path

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
