"""Named crash points: ``DROPSCRIBE_CRASH_AT=<name>[:<n>]`` makes the process die hard at the n-th pass.

They mark every side-effect boundary of the pipeline so a test harness can kill the service at each one
in turn and prove that a restart recovers. ``DROPSCRIBE_STALL_AT=<name>:<seconds>`` instead holds the
worker there for a while (logged as ``stall_point``), so that a harness can change the world at exactly
that moment, e.g. delete a source while its sidecars are being written. Unset, they cost one lookup each.
"""

from __future__ import annotations

import os
import threading
import time

POINTS = (
    "after_take",          # job row committed, nothing else done
    "after_probe",
    "after_reserve",       # budget reservation committed, nothing sent
    "after_encode",        # chunks written to staging
    "after_upload",        # object stored, call not made
    "before_call",         # call intent committed
    "after_call",          # API answered, answer not yet committed (the paid-twice window)
    "after_chunk_stored",
    "before_submit",
    "after_submit",        # task accepted, task id not yet committed
    "after_task_stored",
    "after_result_stored",
    "after_decide",        # destination name committed
    "mid_sidecars",        # some sidecars written
    "after_sidecars",
    "mid_move",            # a cross-device copy is complete in done/, the source not yet removed
    "after_move",          # source moved, job not yet marked done
    "after_finish",
)  # fmt: skip

_lock = threading.Lock()
_counts: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    spec = os.environ.get("DROPSCRIBE_CRASH_AT")
    if not spec:
        return None
    name, _, nth = spec.partition(":")
    return name, int(nth) if nth else 1


def _stall(name: str) -> None:
    spec = os.environ.get("DROPSCRIBE_STALL_AT")
    if not spec:
        return
    point, _, seconds = spec.partition(":")
    if point != name:
        return
    from dropscribe.logs import get_logger

    get_logger().warning("stall_point", point=name, seconds=float(seconds or 1))
    time.sleep(float(seconds or 1))


def crash_point(name: str) -> None:
    """Exit immediately, without cleanup, if this is the configured point and pass."""
    _stall(name)
    target = _target()
    if target is None or target[0] != name:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        if _counts[name] == target[1]:
            os._exit(137)
