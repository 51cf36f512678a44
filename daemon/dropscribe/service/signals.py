"""The service's signals: SIGTERM and SIGINT stop it, SIGHUP reloads it."""

from __future__ import annotations

import signal
from types import FrameType

from dropscribe.adapters import writers
from dropscribe.service.runner import Service


def install_signal_handlers(service: Service) -> None:
    """SIGTERM and SIGINT stop the loop, SIGHUP reloads; only from the main thread, before ``run``.

    A handler runs in the main thread between two bytecodes, possibly while that thread holds the lock
    inside ``wake.wait()``/``wake.clear()``; setting an Event from here could deadlock on it (it did,
    once in a few thousand SIGHUPs). So handlers only set plain flags; the loop looks at them at least
    every TICK_S.
    """

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        service.stop_requested = True

    def on_reload(signum: int, _frame: FrameType | None) -> None:
        service.reload_requested = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_reload)
    writers.ignore_lease_breaks()
