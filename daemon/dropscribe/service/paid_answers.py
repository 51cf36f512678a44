"""A paid answer is held while the journal's database cannot be reached, and recorded once it answers.

Dropping it would mean asking, and paying, again after the database is back; holding it costs one worker
for the seconds a database restart or failover takes. A full local disk is not waited for (it needs
someone to act, and the queue pauses at once); a stop, or a database away for longer than ``HOLD_S``,
gives the answer up as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from dropscribe.core.errors import JournalUnreachableError
from dropscribe.logs import get_logger

HOLD_S = 120.0
RETRY_S = 1.0

log = get_logger()


def record_paid(record: Callable[[], None], stopping: threading.Event, **context: Any) -> None:
    """Run ``record`` (the journal write of a paid answer) until the journal takes it.

    Raises:
        JournalUnreachableError: Still unreachable after ``HOLD_S``, or the service is stopping.
    """
    deadline = time.monotonic() + HOLD_S
    held = False
    while True:
        try:
            record()
        except JournalUnreachableError as exc:
            if stopping.is_set() or time.monotonic() >= deadline:
                raise
            if not held:
                log.warning("answer_held", error=exc.message, action="recorded once the journal answers",
                            **context)  # fmt: skip
                held = True
            stopping.wait(RETRY_S)
            continue
        if held:
            log.info("answer_recorded", **context)
        return
