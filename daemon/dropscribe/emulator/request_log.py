"""The request log: what the emulator learned about each request, in memory and as JSONL."""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dropscribe.emulator.protocol import new_request_id


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

    def reply_id(self) -> str:
        """The request id to put in the reply: the one logged, so a client's id finds its line."""
        return self.request_id or new_request_id()

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
