"""Finished files that change afterwards: a writer that resumed after its file was moved to done/.

A recorder or a network copy may pause for longer than any settle time and then go on writing into the
same open file, which by then lies in ``done/`` (a move keeps the inode) or ``failed/``. Its sidecars
would describe bytes that are no longer there. So recently finished files are watched for a while;
one that changed has its sidecars removed at once and goes back to its inbox, where it passes the gate
again like a new file and is finished anew. Every step is idempotent, so a crash between them is
finished by the next look.

The watch list lives in memory (read from the journal once per inbox at start): a look costs one
``lstat`` per watched file, however busy the journal is.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from dropscribe.adapters import files
from dropscribe.config.model import InboxSettings
from dropscribe.core.naming import sidecar_name
from dropscribe.core.ports.journal import Journal

SIDECAR_SUFFIXES = (".txt", ".json", ".srt", ".vtt", ".error.json")


@dataclass(frozen=True)
class Reopened:
    job_id: int
    finished: Path
    back_in: Path


@dataclass(frozen=True)
class _Watched:
    job_id: int
    relpath: str
    path: Path
    identity: tuple[int, int, int, int]  # dev, inode, size, mtime_ns as it was finished
    until: float


def watch_window_s(inbox: InboxSettings) -> float:
    """How long a finished file is watched: twice the time an upload may stall, at least ten minutes."""
    return max(600.0, 2 * inbox.incomplete_wait_s)


def _identity(value: Any) -> tuple[int, int, int, int] | None:
    if not isinstance(value, dict):
        return None
    try:
        return (int(value["dev"]), int(value["ino"]), int(value["size"]), int(value["mtime_ns"]))
    except (KeyError, TypeError, ValueError):
        return None


class FinishedFiles:
    """The recently finished files of every inbox, and what each looked like when it was finished."""

    def __init__(self) -> None:
        self._watched: dict[str, dict[int, _Watched]] = {}

    def load(self, journal: Journal, inbox: InboxSettings, now: float) -> None:
        """Start watching ``inbox``'s files finished within the window (after a start or a reload)."""
        watched = self._watched.setdefault(str(inbox.path), {})
        for job in journal.finished_since(str(inbox.path), now - watch_window_s(inbox)):
            identity = _identity(job.meta.get("final_identity"))
            if job.final_name is None or identity is None or job.finished_at is None:
                continue
            path = _folder(inbox, job.state, job.relpath) / job.final_name
            watched[job.id] = _Watched(
                job.id, job.relpath, path, identity, job.finished_at + watch_window_s(inbox)
            )

    def forget_inbox(self, inbox: str) -> None:
        self._watched.pop(inbox, None)

    def add(
        self, inbox: InboxSettings, job_id: int, relpath: str, path: Path, now: float,
        journaled: object = None,
    ) -> None:  # fmt: skip
        """Watch a file just finished. ``journaled`` is the identity recorded at the move: a writer that
        goes on at once may already have changed the file by now, and a fresh look would miss that."""
        identity = _identity(journaled)
        if identity is None:
            try:
                st = os.lstat(path)
            except OSError:
                return
            identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        watched = self._watched.setdefault(str(inbox.path), {})
        watched[job_id] = _Watched(job_id, relpath, path, identity, now + watch_window_s(inbox))

    def __len__(self) -> int:
        return sum(len(watched) for watched in self._watched.values())

    def check(self, journal: Journal, inbox: InboxSettings, now: float) -> list[Reopened]:
        """Send every watched file of ``inbox`` that changed since it was finished back to the inbox."""
        watched = self._watched.get(str(inbox.path), {})
        reopened = []
        for job_id, item in list(watched.items()):
            if item.until < now:
                del watched[job_id]
                continue
            try:
                st = os.lstat(item.path)
            except OSError:
                continue  # moved away or deleted by someone: nothing describes it any more
            if (st.st_dev, st.st_ino) != item.identity[:2]:
                del watched[job_id]  # another file under that name: replaced by hand, not resumed
                continue
            if (st.st_size, st.st_mtime_ns) == item.identity[2:]:
                continue
            del watched[job_id]
            reopened.append(_reopen(journal, inbox, item))
        return reopened


def _folder(inbox: InboxSettings, state: str, relpath: str) -> Path:
    return (inbox.done if state == "done" else inbox.failed) / PurePosixPath(relpath).parent


def _reopen(journal: Journal, inbox: InboxSettings, item: _Watched) -> Reopened:
    folder, name = item.path.parent, item.path.name
    # the transcript goes first: from now on nothing in done/ describes bytes that are not there
    for suffix in SIDECAR_SUFFIXES:
        with contextlib.suppress(FileNotFoundError):
            (folder / sidecar_name(name, suffix)).unlink()
    files.fsync_dir(folder)
    back_dir = inbox.path / PurePosixPath(item.relpath).parent
    back_in = back_dir / files.choose_free_name(back_dir, PurePosixPath(item.relpath).name)
    files.move_no_clobber(item.path, back_in)
    journal.reopen(item.job_id, f"changed after it was finished; back in the inbox as {back_in.name}")
    return Reopened(item.job_id, item.path, back_in)
