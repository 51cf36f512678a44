"""Staged audio nobody will send again is removed: at start, and after a clean stop.

A folder of the staging area holds one recording's re-encoded chunks and plan (``staging/<key[:32]>``);
the process that finishes the recording removes it. When several processes share a journal, a process
killed mid-recording leaves its folder on its own disk while another finishes the recording, so each
folder names its owner (``owner.json``: result key and content hash) and is removed once its answer is
stored or no unfinished job is about those bytes any more. Folders without an owner file are left alone.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

from dropscribe.core.ports.journal import Journal
from dropscribe.logs import get_logger

log = get_logger()

OWNER_FILE = "owner.json"


def note_owner(staging: Path, result_key: str, sha256: str) -> None:
    """Name the recording a staging folder belongs to (once; the folder outlives restarts)."""
    owner = staging / OWNER_FILE
    if not owner.exists():
        owner.write_text(json.dumps({"result_key": result_key, "sha256": sha256}))


def sweep_staging(staging_dir: Path, journal: Journal) -> int:
    """Remove the folders whose recording needs them no more; call only while this process sends nothing."""
    try:
        folders = [p for p in staging_dir.iterdir() if p.is_dir()]
    except OSError:
        return 0
    if not folders:
        return 0
    active = {job.sha256 for job in journal.jobs_in("working", "finishing")}
    removed = 0
    for folder in folders:
        try:
            owner = json.loads((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        key, sha = str(owner.get("result_key", "")), str(owner.get("sha256", ""))
        if sha in active and journal.result(key) is None:
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)
            removed += 1
    if removed:
        log.info("staging_swept", folders=removed, staging=str(staging_dir))
    return removed
