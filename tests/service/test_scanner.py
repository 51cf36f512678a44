"""The inbox scanner on real folders: a full walk as the truth, incremental looks in between.

Time is passed in (``now``), so settling is tested without sleeping; everything else is the real
filesystem and the real rule cache.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dropscribe.config.model import InboxSettings
from dropscribe.core.ruleset import RuleSet
from dropscribe.service.rule_cache import RuleCache
from dropscribe.service.scanner import InboxScanner

SETTLE = 5.0


@pytest.fixture
def scanner(tmp_path: Path) -> InboxScanner:
    inbox = tmp_path / "inbox"
    (inbox / "a").mkdir(parents=True)
    settings = InboxSettings(path=inbox, done=tmp_path / "done", failed=tmp_path / "failed", settle_s=SETTLE)
    return InboxScanner(settings, RuleCache(settings, RuleSet()))


def write(path: Path, data: bytes = b"x" * 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_full_walk_settles_files_after_settle_time(scanner: InboxScanner) -> None:
    write(scanner.inbox.path / "one.wav")
    write(scanner.inbox.path / "a" / "two.wav")
    write(scanner.inbox.path / ".hidden.wav")
    result = scanner.scan(0.0, set())
    assert result.ready == []
    assert sorted(scanner.settling) == ["a/two.wav", "one.wav"]
    scanner.scan(SETTLE, set())
    assert sorted(scanner.candidates) == ["a/two.wav", "one.wav"]
    assert scanner.settling == {}


def test_due_files_settle_without_a_walk(scanner: InboxScanner) -> None:
    write(scanner.inbox.path / "one.wav")
    scanner.scan(0.0, set())
    scanner.refresh(SETTLE - 0.1, set(), poll=False)
    assert "one.wav" in scanner.settling
    scanner.refresh(SETTLE, set(), poll=False)
    assert list(scanner.candidates) == ["one.wav"]


def test_a_growing_file_keeps_settling(scanner: InboxScanner) -> None:
    path = write(scanner.inbox.path / "one.wav")
    scanner.scan(0.0, set())
    with open(path, "ab") as out:
        out.write(b"more")
    scanner.refresh(SETTLE, set(), poll=False)
    assert "one.wav" not in scanner.candidates
    assert scanner.settling["one.wav"] == 2 * SETTLE  # seen changed at SETTLE: settles SETTLE later


def test_polling_finds_new_names_through_folder_mtimes(scanner: InboxScanner) -> None:
    write(scanner.inbox.path / "old.wav")
    scanner.scan(0.0, set())
    scanner.scan(SETTLE, set())
    write(scanner.inbox.path / "a" / "new.wav")
    write(scanner.inbox.path / "b" / "c" / "deep.wav")  # a new folder tree
    (scanner.inbox.path / "old.wav").unlink()
    os.utime(scanner.inbox.path / "a", ns=(1, 1))  # an mtime that cannot be the listed one
    scanner.refresh(SETTLE + 1, set(), poll=False)
    assert "a/new.wav" not in scanner.observations, "without events or polling nothing is looked at"
    scanner.refresh(SETTLE + 1, set(), poll=True)
    assert sorted(scanner.settling) == ["a/new.wav", "b/c/deep.wav"]
    assert "old.wav" not in scanner.candidates
    assert "old.wav" not in scanner.observations
    scanner.refresh(2 * SETTLE + 1, set(), poll=True)
    assert sorted(scanner.candidates) == ["a/new.wav", "b/c/deep.wav"]


def test_an_event_names_the_one_path_to_look_at(scanner: InboxScanner) -> None:
    scanner.scan(0.0, set())
    path = write(scanner.inbox.path / "a" / "event.wav")
    scanner.note_event(str(path), False)
    scanner.refresh(1.0, set(), poll=False)
    assert scanner.settling == {"a/event.wav": pytest.approx(1.0 + SETTLE, abs=0.5)}
    path.unlink()
    scanner.note_event(str(path), False)
    scanner.refresh(2.0, set(), poll=False)
    assert scanner.observations == {}
    assert scanner.settling == {}


def test_recheck_sends_a_changed_candidate_back_to_the_gate(scanner: InboxScanner) -> None:
    path = write(scanner.inbox.path / "one.wav")
    scanner.scan(0.0, set())
    scanner.scan(SETTLE, set())
    assert scanner.recheck("one.wav", SETTLE, set())
    write(path, b"y" * 200)
    assert not scanner.recheck("one.wav", SETTLE + 1, set())
    assert "one.wav" in scanner.settling
    path.unlink()
    assert not scanner.recheck("one.wav", SETTLE + 2, set())
    assert "one.wav" not in scanner.observations


def test_an_unreachable_inbox_is_not_an_empty_one(scanner: InboxScanner, tmp_path: Path) -> None:
    write(scanner.inbox.path / "one.wav")
    scanner.scan(0.0, set())
    scanner.inbox.path.rename(tmp_path / "away")
    scanner.refresh(1.0, set(), poll=True)
    assert "one.wav" in scanner.observations, "a share that went away keeps what was seen"
    assert scanner.full_scan_wanted
    result = scanner.scan(2.0, set())
    assert not result.available
    assert "one.wav" in scanner.observations


QUICK = 0.5  # a settle time short enough to let files grow older than it in a test


def quick_scanner(tmp_path: Path, *, own_clock: bool | None = None) -> InboxScanner:
    inbox = tmp_path / "inbox"
    settings = InboxSettings(path=inbox, done=tmp_path / "done", failed=tmp_path / "failed", settle_s=QUICK)
    return InboxScanner(settings, RuleCache(settings, RuleSet()), own_clock=own_clock)


def test_on_a_local_disk_a_file_quiet_longer_than_the_settle_time_is_ready_at_first_sight(
    tmp_path: Path,
) -> None:
    scanner = quick_scanner(tmp_path)
    assert scanner.own_clock  # pytest's temporary folder is on a local disk
    write(scanner.inbox.path / "old.wav")
    time.sleep(QUICK + 0.1)
    write(scanner.inbox.path / "new.wav")
    scanner.scan(0.0, set())
    assert list(scanner.candidates) == ["old.wav"]
    assert 0.0 < scanner.settling["new.wav"] <= QUICK


def test_a_file_whose_mtime_was_set_back_counts_as_just_changed(tmp_path: Path) -> None:
    scanner = quick_scanner(tmp_path)
    path = write(scanner.inbox.path / "copied.wav")
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))  # as cp -p or rsync -t leave a copy: its ctime is now
    scanner.scan(0.0, set())
    assert scanner.candidates == {}
    assert scanner.settling["copied.wav"] == pytest.approx(QUICK, abs=0.2)


def test_on_a_share_file_times_are_not_trusted(tmp_path: Path) -> None:
    scanner = quick_scanner(tmp_path, own_clock=False)
    write(scanner.inbox.path / "old.wav")
    time.sleep(QUICK + 0.1)
    scanner.scan(0.0, set())
    assert scanner.candidates == {}
    assert scanner.settling == {"old.wav": QUICK}


def test_an_old_file_that_changes_while_watched_waits_the_whole_settle_time(tmp_path: Path) -> None:
    scanner = quick_scanner(tmp_path)
    path = write(scanner.inbox.path / "one.wav")
    time.sleep(QUICK + 0.1)
    scanner.scan(0.0, set())
    assert list(scanner.candidates) == ["one.wav"]
    with open(path, "ab") as out:
        out.write(b"more")
    scanner.scan(1.0, set())
    assert scanner.candidates == {}
    assert scanner.settling == {"one.wav": 1.0 + QUICK}
