"""How a take ends: its outcome, or the exceptions that send a file back to the runner for later."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from dropscribe.service.leases import check_lease


@dataclass(frozen=True)
class Outcome:
    """How a take ended: ``done``, ``failed``, or ``skipped`` (not ready or held)."""

    state: str
    job_id: int | None = None
    final_path: Path | None = None


class ParkedError(Exception):
    """The service is stopping: leave the job as it is, the journal lets a restart resume it."""


class ChangedError(Exception):
    """The source changed after it was taken; its results are stale and it must be gated again."""


class GoneError(Exception):
    """The source disappeared from the inbox before it was finished."""


class BusyError(Exception):
    """Another process still has the file open for writing: it is looked at again after ``wait_s``."""

    def __init__(self, wait_s: float) -> None:
        super().__init__("open for writing")
        self.wait_s = wait_s


class IncompleteError(Exception):
    """The file looks unfinished and changed recently: it waits ``wait_s`` and is gated again."""

    def __init__(self, code: str, wait_s: float) -> None:
        super().__init__(code)
        self.code = code
        self.wait_s = wait_s


class ClaimedElsewhereError(Exception):
    """Another process holds the file's claim: looked at again after ``wait_s``, in case that one dies."""

    def __init__(self, wait_s: float) -> None:
        super().__init__("claimed by another process")
        self.wait_s = wait_s


class RetryLaterError(Exception):
    """The journal puts the file's next try ``wait_s`` ahead (another process deferred it)."""

    def __init__(self, wait_s: float) -> None:
        super().__init__("deferred")
        self.wait_s = wait_s


def park_if_stopping(stopping: threading.Event) -> None:
    """Called right before anything is sent: nothing new goes out once the service stops.

    Nor once the file's claim is lost (several processes on one journal): the file is another's then.
    """
    if stopping.is_set():
        raise ParkedError()
    check_lease()
