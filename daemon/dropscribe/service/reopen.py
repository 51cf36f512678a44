"""Finished files that change afterwards: a writer that resumed after its file was moved to done/.

A recorder or a network copy may pause for longer than any settle time and then go on writing into the
same open file, which by then lies in ``done/`` (a move keeps the inode) or ``failed/``. Its sidecars
would describe bytes that are no longer there. So recently finished files are watched for a while;
one that changed has its sidecars removed at once and goes back to its inbox, where it passes the gate
again like a new file and is finished anew. Every step is idempotent, so a crash between them is
finished by the next look.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from dropscribe.adapters import files
from dropscribe.adapters.journal import Job, Journal
from dropscribe.config.model import InboxSettings
from dropscribe.core.naming import sidecar_name

SIDECAR_SUFFIXES = (".txt", ".json", ".srt", ".vtt", ".error.json")


@dataclass(frozen=True)
class Reopened:
    job_id: int
    finished: Path
    back_in: Path


def watch_window_s(inbox: InboxSettings) -> float:
    """How long a finished file is watched: twice the time an upload may stall, at least ten minutes."""
    return max(600.0, 2 * inbox.incomplete_wait_s)


def changed_since_finished(job: Job, path: Path) -> bool | None:
    """True if the file at ``path`` is no longer what the job finished; None if it is gone or unknown."""
    recorded = job.meta.get("final_identity")
    if not isinstance(recorded, dict):
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if (st.st_dev, st.st_ino) != (recorded.get("dev"), recorded.get("ino")):
        return None  # another file under that name: replaced by hand, not a resumed writer
    return (st.st_size, st.st_mtime_ns) != (recorded.get("size"), recorded.get("mtime_ns"))


def reopen_changed(journal: Journal, inbox: InboxSettings, now: float) -> list[Reopened]:
    """Send every recently finished file of ``inbox`` that changed since back through the pipeline."""
    reopened = []
    for job in journal.finished_since(str(inbox.path), now - watch_window_s(inbox)):
        if job.final_name is None:
            continue
        folder = (inbox.done if job.state == "done" else inbox.failed) / PurePosixPath(job.relpath).parent
        finished = folder / job.final_name
        if not changed_since_finished(job, finished):
            continue
        # the transcript goes first: from now on nothing in done/ describes bytes that are not there
        for suffix in SIDECAR_SUFFIXES:
            with contextlib.suppress(FileNotFoundError):
                (folder / sidecar_name(job.final_name, suffix)).unlink()
        files.fsync_dir(folder)
        back_dir = inbox.path / PurePosixPath(job.relpath).parent
        back_in = back_dir / files.choose_free_name(back_dir, PurePosixPath(job.relpath).name)
        files.move_no_clobber(finished, back_in)
        journal.reopen(job.id, f"changed after it was finished; back in the inbox as {back_in.name}")
        reopened.append(Reopened(job.id, finished, back_in))
    return reopened
