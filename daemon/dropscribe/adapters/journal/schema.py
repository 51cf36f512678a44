"""The journal's SQLite schema, its version and the forward migrations that bring an old file up to it.

The version is SQLite's ``PRAGMA user_version``. Migration *n* turns a version *n-1* journal into a
version *n* one and runs in one transaction with the version stamp, so a crash leaves the journal at
*n-1* or at *n*, never between. Migrations are only ever appended: a journal from any earlier release
opens after an upgrade; one from a later release is refused before anything is written to it.

Version 1 is the schema of the releases that recorded no version. Those journals read as version 0, and
version 1's script creates only what is missing (``IF NOT EXISTS``), so the same script creates a new
journal and stamps an unversioned one, adding the indexes that earlier releases created on each open.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass

from dropscribe.core.errors import JournalVersionError

SCHEMA_V1 = """
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


@dataclass(frozen=True)
class Migration:
    """The SQL that turns a journal of ``version - 1`` into one of ``version``."""

    version: int
    script: str


# the notification outbox: one row per notification and channel, committed before it is sent
SCHEMA_V2 = """
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    channel TEXT NOT NULL,          -- webhook | people
    payload_json TEXT NOT NULL,
    job_id INTEGER,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    delivered_at REAL,
    dropped_at REAL,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox(channel, next_attempt_at)
    WHERE delivered_at IS NULL AND dropped_at IS NULL;
CREATE INDEX outbox_job ON outbox(job_id) WHERE job_id IS NOT NULL;
"""

# A finished job whose file event was never considered for the outbox (a crash between the finish and
# the commit) is found again by its empty ``notified_at``; jobs finished before this version count as told.
SCHEMA_V3 = """
ALTER TABLE jobs ADD COLUMN notified_at REAL;
UPDATE jobs SET notified_at = updated_at WHERE state IN ('done', 'failed');
CREATE INDEX jobs_to_notify ON jobs(state) WHERE notified_at IS NULL;
"""

# Budgets: the audio seconds a recognition counts against each budget (scope) in each period, reserved
# before anything is sent and settled to what was billed once the answer is stored.
SCHEMA_V4 = """
CREATE TABLE budget_use (
    id INTEGER PRIMARY KEY,
    result_key TEXT NOT NULL,
    scope TEXT NOT NULL,
    period TEXT NOT NULL,           -- day:YYYY-MM-DD | month:YYYY-MM, in the budget's zone
    seconds REAL NOT NULL,
    settled INTEGER NOT NULL DEFAULT 0,
    at REAL NOT NULL
);
CREATE INDEX budget_use_period ON budget_use(scope, period);
CREATE INDEX budget_use_result ON budget_use(result_key) WHERE settled = 0;
"""

# Several processes sharing one journal: who works on which file (a claim with a lease and a fencing
# token), the concurrency slots and request spacing they share, and the processes themselves. Tokens are
# drawn from ``claim_tokens``, never from the claims, which are deleted: a token is never handed out twice.
SCHEMA_V5 = """
CREATE TABLE claim_tokens (last INTEGER NOT NULL);
INSERT INTO claim_tokens (last) VALUES (0);
CREATE TABLE claims (
    inbox BLOB NOT NULL,
    relpath BLOB NOT NULL,
    holder TEXT NOT NULL,
    token INTEGER NOT NULL UNIQUE,
    expires_at REAL NOT NULL,
    PRIMARY KEY (inbox, relpath)
);
CREATE INDEX claims_holder ON claims(holder);
CREATE TABLE slots (
    pool TEXT NOT NULL,
    slot INTEGER NOT NULL,
    holder TEXT,                    -- NULL when free
    expires_at REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (pool, slot)
);
CREATE INDEX slots_holder ON slots(holder) WHERE holder IS NOT NULL;
CREATE TABLE rate_pools (
    pool TEXT PRIMARY KEY,
    next_at REAL NOT NULL           -- the earliest time the next request of the pool may be sent
);
CREATE TABLE hosts (
    holder TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    seen_at REAL NOT NULL,
    stopped INTEGER NOT NULL DEFAULT 0
);
"""

# What the processes sharing the journal learn together, one text per name (the controller of an
# ``auto`` request rate).
SCHEMA_V6 = """
CREATE TABLE shared_states (
    name TEXT PRIMARY KEY,
    state TEXT
);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, SCHEMA_V1),
    Migration(2, SCHEMA_V2),
    Migration(3, SCHEMA_V3),
    Migration(4, SCHEMA_V4),
    Migration(5, SCHEMA_V5),
    Migration(6, SCHEMA_V6),
)


def known_version(migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    return migrations[-1].version if migrations else 0


def pending(found: int, migrations: tuple[Migration, ...], path: str) -> tuple[Migration, ...]:
    """The migrations a journal at version ``found`` still needs, oldest first; refuses a newer one."""
    known = known_version(migrations)
    if found > known:
        raise JournalVersionError(path, found, known)
    return tuple(m for m in migrations if m.version > found)


def statements(script: str) -> list[str]:
    """A script cut into single statements (``executescript`` would commit the caller's transaction)."""
    found, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            found.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"unterminated statement in migration: {current.strip()[:60]!r}")
    return found


def user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def check_version(db: sqlite3.Connection, path: str, migrations: tuple[Migration, ...] = MIGRATIONS) -> None:
    """Refuse a journal from a newer release; reading the version writes nothing."""
    pending(user_version(db), migrations, path)


def migrate(db: sqlite3.Connection, path: str, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Bring the journal up to the newest version; returns the version it had before.

    ``db`` must be in autocommit mode (``isolation_level=None``). The version is read again inside each
    transaction: another process opening the same journal may have migrated it meanwhile.
    """
    before = user_version(db)
    for migration in pending(before, migrations, path):
        db.execute("BEGIN IMMEDIATE")
        try:
            if user_version(db) < migration.version:
                for statement in statements(migration.script):
                    db.execute(statement)
                # a PRAGMA takes no parameters; the version is an int from MIGRATIONS
                db.execute(f"PRAGMA user_version={int(migration.version)}")
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
    return before
