"""Filesystem events as hints: they name the paths the scanner should look at soon.

Network shares deliver no inotify events for remote writers and inotify queues can overflow silently,
so nothing depends on an event arriving; the periodic rescan is the truth.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

_log = structlog.get_logger(__name__)

NETWORK_FILESYSTEMS = {
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "ceph", "glusterfs",
    "fuse.rclone", "davfs", "fuse.s3fs", "fuse.gcsfuse",
}  # fmt: skip


def _mounts() -> list[list[str]]:
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as mounts:
            return [line.split() for line in mounts]
    except OSError:
        return []


def is_mount_point(path: Path) -> bool:
    """True if something is mounted on ``path`` itself; unlike os.path.ismount, sees bind mounts too."""
    target = str(path.resolve())
    if any(len(f) >= 2 and f[1].replace("\\040", " ") == target for f in _mounts()):
        return True
    return os.path.ismount(path)


def filesystem_type(path: Path) -> str | None:
    """The type of the mount holding ``path``, read from /proc/self/mounts (longest prefix wins)."""
    entries = _mounts()
    if not entries:
        return None
    target = str(path.resolve())
    best: tuple[int, str] | None = None
    for fields in entries:
        if len(fields) < 3:
            continue
        mount_point = fields[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) > best[0]):
            best = (len(mount_point), fields[2])
    return best[1] if best else None


def on_own_clock(path: Path) -> bool:
    """Whether file times under ``path`` are set by this machine's clock: a local disk, not a share
    (NFS, SMB and FUSE file systems take them from a server whose clock may differ)."""
    kind = filesystem_type(path)
    return kind is not None and kind not in NETWORK_FILESYSTEMS and not kind.startswith("fuse")


def wants_events(path: Path, polling: bool | str) -> bool:
    """inotify is worth it on local disks only; ``polling: auto`` decides by the mount's type."""
    if polling is True:
        return False
    if polling is False:
        return True
    return filesystem_type(path) not in NETWORK_FILESYSTEMS


_CHANGES = frozenset({"created", "deleted", "modified", "moved", "closed"})
# asked of the kernel, so that opens and reads (the service's own among them) are not even reported
_WATCHED: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileDeletedEvent, FileClosedEvent,
    DirCreatedEvent, DirMovedEvent, DirDeletedEvent,
]  # fmt: skip


class _Hint(FileSystemEventHandler):
    def __init__(self, on_event: Callable[[str, bool], None]) -> None:
        self._on_event = on_event

    def on_any_event(self, event: FileSystemEvent) -> None:
        # opening or reading a file or folder changes nothing (and the service's own scans and reads
        # cause them); a folder's "modified" only repeats what the event on its child says
        if event.event_type not in _CHANGES or (event.is_directory and event.event_type == "modified"):
            return
        # a path and whether it is a folder: the scanner looks at just that, not the whole inbox
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if path:
                self._on_event(os.fsdecode(path), event.is_directory)


class Watcher:
    """One watchdog observer for the inboxes that want events; failures degrade to rescans only."""

    def __init__(self) -> None:
        self._observer: Any = None
        self._lock = threading.Lock()

    def start(self, roots: list[tuple[Path, bool, Callable[[str, bool], None]]]) -> None:
        observer = Observer()
        watched = 0
        for root, recursive, on_event in roots:
            try:
                observer.schedule(_Hint(on_event), str(root), recursive=recursive, event_filter=_WATCHED)
                watched += 1
            except OSError as exc:
                # e.g. the inotify watch limit, or the share is not mounted yet: rescans still run
                _log.warning("watch_unavailable", inbox=str(root), error=exc.strerror or str(exc))
        if watched:
            observer.daemon = True
            observer.start()
            with self._lock:
                self._observer = observer

    def stop(self) -> None:
        with self._lock:
            observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)
