"""``dropscribe retry``: send failed files back through their inbox."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from dropscribe.adapters import files
from dropscribe.config.model import InboxSettings, Settings
from dropscribe.core.naming import sidecar_name
from dropscribe.service.journal_opening import journal_present, open_journal


def _failed_sources(inbox: InboxSettings) -> list[Path]:
    """Files in failed/ that have an ``.error.json`` of ours beside them."""
    found = []
    for entry in files.walk(inbox.failed, recursive=True, skip_dir=lambda p: p.name.startswith(".")):
        if isinstance(entry, OSError) or entry.path.name.endswith(".error.json"):
            continue
        if (entry.path.parent / sidecar_name(entry.path.name, ".error.json")).exists():
            found.append(entry.path)
    return found


def _owner(settings: Settings, path: Path) -> InboxSettings | None:
    for inbox in settings.inboxes:
        if path.is_relative_to(inbox.failed):
            return inbox
    return None


def retry_failed(settings: Settings, paths: list[Path] | None) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Move each failed source back to ``<inbox>/<relpath>``; its error report is removed.

    Its job in the journal becomes ``retried``, so ``status`` stops listing it among the failures.
    """
    targets: list[tuple[InboxSettings, Path]] = []
    problems: list[str] = []
    if paths is None:
        for inbox in settings.inboxes:
            targets.extend((inbox, p) for p in _failed_sources(inbox))
    else:
        for given in paths:
            path = Path(os.path.abspath(given))
            if path.name.endswith(".error.json"):
                stem = path.name.removesuffix(".error.json")
                matches = [p for p in path.parent.iterdir()
                           if p.name != path.name and files.split_stem(p.name) == stem]  # fmt: skip
                if not matches:
                    problems.append(f"{given}: no failed file beside this report")
                    continue
                path = matches[0]
            owner = _owner(settings, path)
            if owner is None:
                problems.append(f"{given}: not inside any inbox's failed folder")
            elif not os.path.lexists(path):
                problems.append(f"{given}: no such file")
            else:
                targets.append((owner, path))
    moved = []
    # no journal yet means no job to mark; opening one would create it
    journal = open_journal(settings) if targets and journal_present(settings) else None
    try:
        for inbox, path in targets:
            destination = _move_back(inbox, path, problems)
            if destination is None:
                continue
            moved.append((path, destination))
            if journal is not None:
                rel_dir = path.parent.relative_to(inbox.failed).as_posix()
                try:
                    journal.mark_retried(str(inbox.path), "" if rel_dir == "." else rel_dir, path.name)
                except sqlite3.Error as exc:
                    problems.append(f"{path}: moved back, but its failure stays in the journal: {exc}")
    finally:
        if journal is not None:
            journal.close()
    return moved, problems


def _move_back(inbox: InboxSettings, path: Path, problems: list[str]) -> Path | None:
    """Move one failed source back under its original name and remove its report."""
    report = path.parent / sidecar_name(path.name, ".error.json")
    rel_dir = path.parent.relative_to(inbox.failed)
    name = path.name
    try:
        original = json.loads(report.read_text(encoding="utf-8")).get("source", {}).get("original_name")
        if isinstance(original, str) and original and "/" not in original:
            name = original
    except (OSError, ValueError):
        pass
    destination_dir = inbox.path / rel_dir
    destination = destination_dir / files.choose_free_name(destination_dir, name)
    try:
        files.move_no_clobber(path, destination)
    except OSError as exc:
        problems.append(f"{path}: could not move back: {exc.strerror}")
        return None
    report.unlink(missing_ok=True)
    return destination
