"""Talking to systemd: readiness, reloading, status, watchdog and stopping notifications.

Uses systemd-python when the ``[systemd]`` extra is installed, and otherwise writes the datagram to
``$NOTIFY_SOCKET`` itself; outside systemd both are silent no-ops.
"""

from __future__ import annotations

import importlib
import os
import socket
import time
from typing import Any

_sd_daemon: Any
try:  # the optional extra; it compiles against libsystemd
    _sd_daemon = importlib.import_module("systemd.daemon")
except ImportError:  # pragma: no cover - depends on the machine
    _sd_daemon = None


def notify(message: str) -> bool:
    """Send one sd_notify message such as ``READY=1`` or ``STATUS=...``; True if someone listened."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if _sd_daemon is not None:
        return bool(_sd_daemon.notify(message))
    target: Any = "\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(target)
            sock.sendall(message.encode("utf-8", "replace"))
        except OSError:
            return False
    return True


def reloading() -> bool:
    """Tell systemd a reload has begun (``READY=1`` ends it); True if someone listened.

    ``Type=notify-reload`` units (systemd 253 and later) need ``MONOTONIC_USEC`` with it: the
    timestamp lets systemd match the notification to the reload it asked for.
    """
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def watchdog_interval_s() -> float | None:
    """Half the unit's WatchdogSec, as systemd recommends; None when no watchdog is armed."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return None
