"""File-transcription tasks: what one was submitted with, and its status as a function of the clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from dropscribe.emulator.audio import AudioInfo
from dropscribe.emulator.protocol import TASK_RETENTION_S


@dataclass(frozen=True)
class TaskOptions:
    """The parameters a file-transcription task was submitted with."""

    channel_ids: tuple[int, ...] = (0,)
    language: str | None = None
    enable_itn: bool = False
    enable_words: bool = False


@dataclass
class Task:
    """A file-transcription task. Its status is a function of the clock, not a background job."""

    task_id: str
    model: str
    file_url: str
    options: TaskOptions
    submitted_at: datetime
    submitted_mono: float
    run_s: float
    audio: AudioInfo | None = None
    sha256: str | None = None
    failure: tuple[str, str] | None = None  # (code, message) the task will end with
    stuck: bool = False
    canceled_mono: float | None = None
    account: str = ""  # digest of the submitting key: other accounts cannot see the task

    def status(self, now: float) -> str:
        if self.canceled_mono is not None:
            return "CANCELED"
        elapsed = now - self.submitted_mono
        if elapsed > self.run_s + TASK_RETENTION_S:
            return "UNKNOWN"
        if elapsed < self.run_s / 2:
            return "PENDING"
        if self.stuck or elapsed < self.run_s:
            return "RUNNING"
        return "FAILED" if self.failure else "SUCCEEDED"

    def scheduled_at(self) -> datetime:
        return self.submitted_at + timedelta(seconds=self.run_s / 2)

    def ended_at(self) -> datetime:
        if self.canceled_mono is not None:
            return self.submitted_at + timedelta(seconds=self.canceled_mono - self.submitted_mono)
        return self.submitted_at + timedelta(seconds=self.run_s)


class TaskStore:
    """Tasks by id, shared by the server's request threads; a task past its retention is forgotten."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}

    def add(self, task: Task) -> None:
        with self._lock:
            self._tasks[task.task_id] = task

    def get(self, task_id: str) -> Task | None:
        with self._lock:
            task = self._tasks.get(task_id)
            if task is not None and task.status(self.clock()) == "UNKNOWN":
                del self._tasks[task_id]
                return None
            return task

    def cancel(self, task_id: str) -> bool:
        """Cancel a PENDING task; False if it is unknown or already past PENDING."""
        with self._lock:
            task = self._tasks.get(task_id)
            now = self.clock()
            if task is None or task.status(now) != "PENDING":
                return False
            task.canceled_mono = now
            return True

    def of_account(self, account: str) -> list[Task]:
        """The account's tasks still kept, oldest first."""
        now = self.clock()
        with self._lock:
            kept = [t for t in self._tasks.values() if t.account == account and t.status(now) != "UNKNOWN"]
        return sorted(kept, key=lambda task: task.submitted_mono)

    def clear(self) -> None:
        with self._lock:
            self._tasks.clear()


def format_task_time(moment: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS.mmm`` as in task replies (docs/dashscope.md, "File transcription")."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
