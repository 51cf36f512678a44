"""What the emulator remembers between requests: uploads, tasks, rate windows and the request log.

Every store here is shared by the server's request threads and guards itself with a lock.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from dropscribe.emulator.audio import AudioInfo
from dropscribe.emulator.protocol import TASK_RETENTION_S, UPLOAD_VALIDITY_S


class RateLimiter:
    """At most ``limit`` events per ``window_s`` seconds for each key; ``limit`` 0 means no limit."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._events: dict[Hashable, collections.deque[float]] = {}

    def allow(self, key: Hashable) -> bool:
        """Record one event for ``key`` and say whether it fits; refused events are not counted."""
        if self._limit <= 0:
            return True
        now = self._clock()
        with self._lock:
            events = self._events.setdefault(key, collections.deque())
            while events and events[0] <= now - self._window_s:
                events.popleft()
            if len(events) >= self._limit:
                return False
            events.append(now)
            return True

    def clear(self) -> None:
        with self._lock:
            self._events.clear()


class Signer:
    """HMAC signatures for upload policies and result links, with a secret that lives per emulator."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def sign(self, text: str) -> str:
        mac = hmac.new(self._secret, text.encode("utf-8"), hashlib.sha1).digest()
        return base64.b64encode(mac).decode("ascii")

    def verify(self, text: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(text), signature)


@dataclass(frozen=True)
class UploadPolicy:
    """The decoded content of an upload certificate's ``policy`` field."""

    model: str
    upload_dir: str
    expires_at: datetime
    max_bytes: int

    def encode(self) -> str:
        # Shaped like an OSS PostObject policy, plus the model the oss:// URL will be bound to.
        document = {
            "expiration": self.expires_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "conditions": [
                ["content-length-range", 0, self.max_bytes],
                ["starts-with", "$key", self.upload_dir],
                {"bucket": "dashscope-instant"},
                {"x-oss-object-acl": "private"},
                {"x-oss-forbid-overwrite": "true"},
                {"x-dashscope-model": self.model},
            ],
        }
        return base64.b64encode(json.dumps(document).encode("utf-8")).decode("ascii")

    @classmethod
    def decode(cls, policy: str) -> UploadPolicy:
        """Raises ValueError when ``policy`` was not made by :meth:`encode`."""
        try:
            document = json.loads(base64.b64decode(policy, validate=True))
            expires_at = datetime.strptime(document["expiration"], "%Y-%m-%dT%H:%M:%S.%f%z")
            conditions = document["conditions"]
            max_bytes = int(conditions[0][2])
            upload_dir = str(conditions[1][2])
            model = str(conditions[5]["x-dashscope-model"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ValueError("the policy cannot be decoded") from exc
        return cls(model, upload_dir, expires_at, max_bytes)


@dataclass(frozen=True)
class StoredObject:
    """A file uploaded through the emulator's OSS stand-in."""

    key: str
    model: str
    data: bytes
    sha256: str
    uploaded_at: float  # time.time()

    def usable_by(self, model: str, now: float) -> bool:
        return self.model == model and now - self.uploaded_at <= UPLOAD_VALIDITY_S


class ObjectStore:
    """Uploaded objects by key; keys are never overwritten, as with ``x-oss-forbid-overwrite``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, StoredObject] = {}

    def put(self, obj: StoredObject) -> bool:
        """Store ``obj``; False if its key is taken."""
        with self._lock:
            if obj.key in self._objects:
                return False
            self._objects[obj.key] = obj
            return True

    def get(self, key: str) -> StoredObject | None:
        with self._lock:
            return self._objects.get(key)

    def clear(self) -> None:
        with self._lock:
            self._objects.clear()


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

    def clear(self) -> None:
        with self._lock:
            self._tasks.clear()


@dataclass
class Trace:
    """What the emulator learned about one request; becomes one line of the request log."""

    time: str
    method: str
    path: str
    headers: dict[str, str]
    model: str | None = None
    status: int | None = None
    code: str | None = None
    request_id: str | None = None
    audio_sha256: str | None = None
    audio_bytes: int | None = None
    duration_s: float | None = None
    asr_options: dict[str, Any] | None = None
    context: str | None = None
    audio_kind: str | None = None
    task_id: str | None = None
    parameters: dict[str, Any] | None = None
    fault: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECRET_HEADERS = {"authorization": "Bearer ***", "proxy-authorization": "***", "cookie": "***"}


def redact_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Headers as a dict, with credentials replaced so the log never holds an API key."""
    result: dict[str, str] = {}
    for name, value in headers:
        shown = _SECRET_HEADERS.get(name.lower(), value)
        result[name] = f"{result[name]}, {shown}" if name in result else shown
    return result


@dataclass
class RequestLog:
    """Every request received, in memory and optionally appended to a JSONL file."""

    path: Path | None = None
    _records: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _file: IO[str] | None = None

    def open(self) -> None:
        if self.path is not None and self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def append(self, record: dict[str, Any], *, keep_in_memory: bool = True) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str)
        with self._lock:
            if keep_in_memory:
                self._records.append(record)
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            copy: list[dict[str, Any]] = json.loads(json.dumps(self._records, default=str))
        return copy

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_task_time(moment: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS.mmm`` as in task replies (§4.2)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
