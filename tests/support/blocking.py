"""Calling something that must not block (opening a FIFO would), with a deadline instead of a hang."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def finishes(call: Callable[[], T], timeout: float = 5.0) -> T:
    """What ``call`` returns or raises, failing the test if it blocks instead."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - raised again in the test's thread
            failure.append(exc)

    # a daemon thread: one stuck for good does not keep the test run from ending
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), "the call blocked"
    if failure:
        raise failure[0]
    return outcome[0]
