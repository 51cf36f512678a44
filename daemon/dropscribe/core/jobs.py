"""A job: one file taken from an inbox, as the journal remembers it.

Its ``state`` moves ``working`` → ``finishing`` (where it goes and under which name is decided) →
``done`` | ``failed``; or ends ``gone`` (the file left by other hands), ``reopened`` (the finished file
changed in place) or ``retried`` (a failed file was moved back to its inbox).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Job:
    id: int
    inbox: str
    relpath: str
    state: str
    sha256: str | None
    size: int | None
    dev: int | None
    ino: int | None
    mtime_ns: int | None
    result_key: str | None
    attempts: int
    next_attempt_at: float
    last_error: str | None
    outcome: str | None
    final_name: str | None
    error: dict[str, Any] | None
    meta: dict[str, Any]
    created_at: float
    started_at: float | None
    finished_at: float | None
