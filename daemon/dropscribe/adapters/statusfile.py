"""The service's last report for ``dropscribe status``, in a file that can be rewritten on a full disk.

The report used to live in the journal, which cannot take a write when its filesystem is full: exactly
when an operator most needs to read why the queue stopped. So the report goes to a small file beside the
journal whose blocks are allocated once (``posix_fallocate``) and then overwritten in place with
``pwrite``, which needs no new space on filesystems that overwrite in place (ext4, xfs, tmpfs). On
copy-on-write filesystems (btrfs, ZFS) an overwrite may still fail when full; the report is then stale,
and its age says so.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

SIZE = 64 * 1024


def path_for(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".status")


class StatusFile:
    """Writer side: one open descriptor for the service's lifetime."""

    def __init__(self, state_path: Path) -> None:
        self.path = path_for(state_path)
        self._fd: int | None = None
        self._allocated = False
        with contextlib.suppress(OSError):
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._allocate()

    def _allocate(self) -> None:
        if self._fd is None or self._allocated:
            return
        try:
            os.posix_fallocate(self._fd, 0, SIZE)
        except OSError:
            return  # no room yet; tried again with the next write
        self._allocated = True

    def write(self, report: dict[str, Any]) -> bool:
        """Replace the report; False if it could not be written (then the old one stays readable)."""
        if self._fd is None:
            return False
        self._allocate()
        data = _encode(report)
        try:
            os.pwrite(self._fd, data, 0)
        except OSError:
            return False
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _encode(report: dict[str, Any]) -> bytes:
    data = json.dumps(report, ensure_ascii=False).encode("utf-8", "backslashreplace")
    if len(data) >= SIZE:  # the waiting list is what grows: keep the head of it
        trimmed = dict(report)
        waiting = list(trimmed.get("waiting") or [])
        while waiting and len(data) >= SIZE:
            waiting = waiting[: len(waiting) // 2]
            trimmed["waiting"] = waiting
            trimmed["waiting_truncated"] = True
            data = json.dumps(trimmed, ensure_ascii=False).encode("utf-8", "backslashreplace")
    # padded to the allocated size, so a shorter report never leaves the tail of a longer one
    return data + b" " * (SIZE - len(data)) if len(data) < SIZE else data[:SIZE]


def read_status(state_path: Path) -> dict[str, Any] | None:
    """The last report, or None if there is none (never written, or unreadable)."""
    try:
        raw = path_for(state_path).read_bytes()
    except OSError:
        return None
    text = raw.decode("utf-8", "replace").strip().strip("\0")
    if not text:
        return None
    try:
        report = json.loads(text)
    except ValueError:
        return None
    return report if isinstance(report, dict) else None
