"""The SQLite journal's schema version: old journals open after an upgrade, newer ones are refused untouched.

The journals here are made the way the releases before schema versions made them: their exact DDL
(copied below, not imported, so a later change to the schema cannot change the fixture), WAL mode,
and rows written with plain SQL.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dropscribe.adapters.journal import SqliteJournal
from dropscribe.adapters.journal.schema import (
    MIGRATIONS,
    Migration,
    known_version,
    migrate,
    pending,
    statements,
)
from dropscribe.core.errors import JournalVersionError
from tests.support.service import API_KEY, Layout

# the schema of the releases that recorded no version (adapters/journal.py, SCHEMA, until this change)
UNVERSIONED_DDL = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    inbox BLOB NOT NULL,
    relpath BLOB NOT NULL,
    state TEXT NOT NULL,            -- working | finishing | done | failed | gone | reopened | retried
    sha256 TEXT,
    size INTEGER, dev INTEGER, ino INTEGER, mtime_ns INTEGER,
    result_key TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    outcome TEXT,                   -- done | failed, decided before the finishing steps
    final_name BLOB,                -- chosen free name in done/ or failed/, kept across restarts
    error_json TEXT,
    meta_json TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_active ON jobs(inbox, relpath)
    WHERE state IN ('working', 'finishing');
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(inbox, finished_at);
CREATE TABLE IF NOT EXISTS results (
    result_key TEXT PRIMARY KEY,
    result_json TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunk_results (
    result_key TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    result_json TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (result_key, chunk)
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    result_key TEXT NOT NULL,
    chunk INTEGER NOT NULL,
    kind TEXT NOT NULL,             -- sync | submit
    started_at REAL NOT NULL,
    ended_at REAL,
    outcome TEXT,
    request_id TEXT
);
CREATE INDEX IF NOT EXISTS calls_result ON calls(result_key);
CREATE TABLE IF NOT EXISTS tasks (
    result_key TEXT PRIMARY KEY,
    task_id TEXT,                   -- NULL while the submit is in flight
    submitted_at REAL NOT NULL,
    request_id TEXT
);
CREATE TABLE IF NOT EXISTS objects (
    object_key TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    deleted_at REAL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

ROWS = """
INSERT INTO jobs (id, inbox, relpath, state, sha256, size, dev, ino, mtime_ns, result_key, attempts,
                  next_attempt_at, last_error, outcome, final_name, error_json, meta_json, created_at,
                  updated_at, started_at, finished_at)
VALUES (1, CAST('/srv/inbox' AS BLOB), CAST('sub/a.wav' AS BLOB), 'done', 'aa', 10, 1, 2, 3, 'rk1', 0,
        0, NULL, 'done', CAST('a.wav' AS BLOB), NULL,
        '{"final_identity": {"dev": 1, "ino": 5, "size": 10, "mtime_ns": 3}}', 100.0, 101.0, 100.0, 101.0),
       (2, CAST('/srv/inbox' AS BLOB), CAST('b.wav' AS BLOB), 'working', 'bb', 20, 1, 3, 4, 'rk2', 2,
        500.0, 'throttled', NULL, NULL, NULL, '{}', 200.0, 201.0, 200.0, NULL);
INSERT INTO results VALUES ('rk1', '{"text": "hello", "usage_seconds": 4.0}', 101.0);
INSERT INTO chunk_results VALUES ('rk2', 0, '{"text": "part"}', 202.0);
INSERT INTO calls (result_key, chunk, kind, started_at, ended_at, outcome, request_id)
VALUES ('rk1', 0, 'sync', 100.5, 100.9, 'ok', 'req-1'), ('rk2', 0, 'sync', 201.5, 201.9, 'ok', 'req-2');
INSERT INTO tasks VALUES ('rk3', 'task-3', 300.0, 'req-3');
INSERT INTO objects VALUES ('up/rk2/0.flac', 202.0, NULL), ('up/rk1/0.flac', 100.6, 101.0);
INSERT INTO meta VALUES ('paused', '{"reason": "Arrearage"}');
"""


def make_journal(path: Path, ddl: str, *, version: int = 0, mode: str = "wal") -> None:
    """A journal as an earlier (``version`` 0) or a later release left it: closed, rows in the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA journal_mode={mode}")
    db.executescript(ddl)
    db.executescript(ROWS)
    if version:
        db.execute(f"PRAGMA user_version={version}")
    db.close()


def user_version(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def schema_of(path: Path) -> set[tuple[str, str]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {(r[0], r[1]) for r in db.execute("SELECT name, sql FROM sqlite_master")}
    finally:
        db.close()


# opening what earlier releases left -------------------------------------------------------------


def test_an_unversioned_journal_opens_with_its_rows_and_is_stamped_current(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    make_journal(path, UNVERSIONED_DDL)
    journal = SqliteJournal(path)
    try:
        done, working = journal.get(1), journal.get(2)
        assert (done.inbox, done.relpath, done.state, done.final_name) == (
            "/srv/inbox",
            "sub/a.wav",
            "done",
            "a.wav",
        )
        assert done.meta == {"final_identity": {"dev": 1, "ino": 5, "size": 10, "mtime_ns": 3}}
        assert journal.active_job("/srv/inbox", "b.wav") == working
        assert (working.attempts, working.next_attempt_at, working.last_error) == (2, 500.0, "throttled")
        assert [j.id for j in journal.finished_since("/srv/inbox", 0)] == [1]
        assert journal.mark_retried("/srv/inbox", "sub", "x.wav") is None
        assert journal.result("rk1") == {"text": "hello", "usage_seconds": 4.0}
        assert journal.chunk_results("rk2") == {0: {"text": "part"}}
        assert journal.request_ids("rk1") == ["req-1"]
        assert journal.task("rk3") == ("task-3", 300.0)
        assert journal.live_objects("up/") == ["up/rk2/0.flac"]
        assert journal.get_meta("paused") == '{"reason": "Arrearage"}'
        assert journal.counts() == {"done": 1, "working": 1}
        assert journal.jobs_to_notify() == []  # finished before this release: counts as told
        assert journal.start_job("/srv/inbox", "c.wav", sha256="cc", size=1, dev=1, ino=9, mtime_ns=1,
                                 result_key=None, meta={}).id == 3  # fmt: skip
    finally:
        journal.close()
    assert user_version(path) == known_version() >= 1


def test_version_1_is_the_unversioned_schema_exactly(tmp_path: Path) -> None:
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    make_journal(old, UNVERSIONED_DDL)
    db = sqlite3.connect(new, isolation_level=None)
    try:
        migrate(db, str(new), MIGRATIONS[:1])
    finally:
        db.close()
    assert user_version(new) == 1
    assert schema_of(new) == schema_of(old)


def test_a_new_journal_is_made_at_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "state" / "journal.db"
    SqliteJournal(path).close()
    assert user_version(path) == known_version()


def test_indexes_an_earlier_release_lacked_are_added_when_stamped(tmp_path: Path) -> None:
    """Releases before the key-range and finished-files work made journals without two indexes."""
    path = tmp_path / "journal.db"
    ddl = "\n".join(
        line
        for line in UNVERSIONED_DDL.splitlines()
        if "jobs_finished" not in line and "calls_result" not in line
    )
    make_journal(path, ddl)
    SqliteJournal(path).close()
    names = {name for name, _ in schema_of(path)}
    assert {"jobs_finished", "calls_result"} <= names
    assert user_version(path) == known_version()


# refusing what a later release left -------------------------------------------------------------


@pytest.mark.parametrize("mode", ["wal", "delete"])
def test_a_journal_from_a_newer_release_is_refused_untouched(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "journal.db"
    newer = known_version() + 1
    make_journal(path, UNVERSIONED_DDL, version=newer, mode=mode)
    before = path.read_bytes()
    files = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(JournalVersionError) as refused:
        SqliteJournal(path)
    assert (refused.value.found, refused.value.known) == (newer, known_version())
    assert str(path) in str(refused.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == files


def test_the_cli_says_why_it_will_not_open_a_newer_journal(tmp_path: Path) -> None:
    layout = Layout(tmp_path, "http://127.0.0.1:9")
    make_journal(layout.state, UNVERSIONED_DDL, version=known_version() + 1)
    before = layout.state.read_bytes()
    env = {**os.environ, "DASHSCOPE_API_KEY": API_KEY}
    for command in ("status", "run"):
        out = subprocess.run(
            [sys.executable, "-m", "dropscribe", command, "-c", str(layout.config)],
            capture_output=True, text=True, check=False, env=env, timeout=60,
        )  # fmt: skip
        assert out.returncode == 1, (command, out.stdout, out.stderr)
        assert f"schema version {known_version() + 1}, newer than this release knows" in out.stderr
        assert "Traceback" not in out.stderr
    assert layout.state.read_bytes() == before


# the migration steps ----------------------------------------------------------------------------

# the step after the newest this release knows
STEP_2 = Migration(
    known_version() + 1, "CREATE TABLE later (name TEXT PRIMARY KEY);\nINSERT INTO later VALUES ('a');\n"
)


def test_migrations_run_in_order_and_stamp_each_version(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    make_journal(path, UNVERSIONED_DDL)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(db, str(path), (*MIGRATIONS, STEP_2)) == 0
        assert db.execute("SELECT name FROM later").fetchall() == [("a",)]
        assert db.execute("SELECT COUNT(*) FROM jobs").fetchone() == (2,)
        assert migrate(db, str(path), (*MIGRATIONS, STEP_2)) == STEP_2.version  # nothing left to do
    finally:
        db.close()
    assert user_version(path) == STEP_2.version


def test_a_failing_migration_leaves_the_journal_at_the_version_before(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    make_journal(path, UNVERSIONED_DDL)
    broken = Migration(
        known_version() + 1, "CREATE TABLE later (name TEXT);\nINSERT INTO no_such_table VALUES (1);\n"
    )
    db = sqlite3.connect(path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError):
            migrate(db, str(path), (*MIGRATIONS, broken))
        assert not db.in_transaction
    finally:
        db.close()
    assert user_version(path) == known_version()
    assert "later" not in {name for name, _ in schema_of(path)}


def test_a_version_1_journal_gains_the_outbox_and_keeps_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    make_journal(path, UNVERSIONED_DDL)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(db, str(path), MIGRATIONS[:1])
    finally:
        db.close()
    journal = SqliteJournal(path)
    try:
        assert journal.counts()  # the rows of the older release
        # files finished before notifications existed are not told after the upgrade
        assert journal.jobs_to_notify() == []
        ids = journal.add_notification("queue.paused", ["webhook"], {"code": "Arrearage"})
        assert [e.id for e in journal.due_notifications("webhook", time.time())] == ids
    finally:
        journal.close()
    assert user_version(path) == known_version() >= 2


def test_a_version_3_journal_gains_budget_reservations_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    make_journal(path, UNVERSIONED_DDL)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(db, str(path), MIGRATIONS[:3])
    finally:
        db.close()
    assert user_version(path) == 3
    journal = SqliteJournal(path)
    try:
        assert journal.counts()  # the rows of the older release
        assert journal.budget_use("defaults", "day:2026-05-05") == 0.0  # nothing was counted before
        journal.reserve("rk", [("defaults", "day:2026-05-05")], 4.0, at=1.0)
        assert journal.budget_use("defaults", "day:2026-05-05") == 4.0
    finally:
        journal.close()
    assert user_version(path) == known_version() >= 4


def test_a_version_4_journal_gains_claims_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    make_journal(path, UNVERSIONED_DDL)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(db, str(path), MIGRATIONS[:4])
    finally:
        db.close()
    assert user_version(path) == 4
    journal = SqliteJournal(path)
    try:
        counts = journal.counts()
        assert counts  # the rows of the older release
        first = journal.claim("/srv/inbox", "a.wav", holder="h1", lease_s=60)
        assert first == 1
        journal.release_claim(first)
        assert journal.claim("/srv/inbox", "a.wav", holder="h2", lease_s=60) == 2  # never handed out twice
        assert journal.counts() == counts
    finally:
        journal.close()
    assert user_version(path) == known_version() >= 5


# the decisions, with plain values ---------------------------------------------------------------


def test_pending_is_every_later_step_and_refuses_a_newer_journal() -> None:
    steps = (Migration(1, "a;"), Migration(2, "b;"), Migration(3, "c;"))
    assert [m.version for m in pending(0, steps, "j")] == [1, 2, 3]
    assert [m.version for m in pending(2, steps, "j")] == [3]
    assert pending(3, steps, "j") == ()
    with pytest.raises(JournalVersionError, match="schema version 4, newer than this release knows"):
        pending(4, steps, "j")


def test_statements_are_cut_where_sqlite_says_they_end() -> None:
    script = "CREATE TABLE t (\n  a TEXT -- not; the end\n);\nINSERT INTO t VALUES ('x;y');\n"
    assert statements(script) == [
        "CREATE TABLE t (\n  a TEXT -- not; the end\n);",
        "INSERT INTO t VALUES ('x;y');",
    ]
    assert len(statements(MIGRATIONS[0].script)) == 11  # 7 tables, 4 indexes
    with pytest.raises(ValueError, match="unterminated"):
        statements("CREATE TABLE t (a TEXT)")
