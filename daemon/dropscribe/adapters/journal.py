"""The job journal: a local SQLite file (WAL, synchronous=FULL) that survives kill -9 and power loss.

Every side effect is preceded by a committed intent and followed by a committed outcome, so a restart
can tell what was done. Results are stored by *result key* (content hash + everything that shapes the
request), which is what keeps a recognition from being paid for twice: a file with the same bytes and
options, dropped again or resumed after a crash, finds its result here.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    inbox BLOB NOT NULL,
    relpath BLOB NOT NULL,
    state TEXT NOT NULL,            -- working | finishing | done | failed | gone
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
class Job:
    id: int
    inbox: str
    relpath: str
    state: str
    sha256: str | None
    size: int | None
    dev: int | None
    ino: int | None
    mtime_ns: int | None
    result_key: str | None
    attempts: int
    next_attempt_at: float
    last_error: str | None
    outcome: str | None
    final_name: str | None
    error: dict[str, Any] | None
    meta: dict[str, Any]
    created_at: float
    started_at: float | None
    finished_at: float | None


def _path_value(text: str) -> bytes:
    """Paths are stored as their raw bytes: a name that is not UTF-8 must still round-trip."""
    return text.encode("utf-8", "surrogateescape")


def _path_text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"], inbox=_path_text(row["inbox"]), relpath=_path_text(row["relpath"]),
        state=row["state"],
        sha256=row["sha256"], size=row["size"], dev=row["dev"], ino=row["ino"],
        mtime_ns=row["mtime_ns"], result_key=row["result_key"], attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"], last_error=row["last_error"],
        outcome=row["outcome"],
        final_name=_path_text(row["final_name"]) if row["final_name"] is not None else None,
        error=json.loads(row["error_json"]) if row["error_json"] else None,
        meta=json.loads(row["meta_json"]) if row["meta_json"] else {},
        created_at=row["created_at"], started_at=row["started_at"],
        finished_at=row["finished_at"],
    )  # fmt: skip


class Journal:
    """Thread-safe access to the journal; one connection, short transactions."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed intent or result must survive power loss, not only a process crash
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=30000")
        # executescript manages its own transaction; CREATE ... IF NOT EXISTS makes it idempotent
        with self._lock:
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args))

    # jobs -------------------------------------------------------------------------------------

    def active_job(self, inbox: str, relpath: str) -> Job | None:
        rows = self._query(
            "SELECT * FROM jobs WHERE inbox=? AND relpath=? AND state IN ('working','finishing')",
            (_path_value(inbox), _path_value(relpath)),
        )
        return _job(rows[0]) if rows else None

    def get(self, job_id: int) -> Job:
        return _job(self._query("SELECT * FROM jobs WHERE id=?", (job_id,))[0])

    def start_job(
        self, inbox: str, relpath: str, *, sha256: str, size: int, dev: int, ino: int,
        mtime_ns: int, result_key: str | None, meta: dict[str, Any],
    ) -> Job:  # fmt: skip
        """Record that a file was taken, or refresh an active job whose file changed since."""
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM jobs WHERE inbox=? AND relpath=? AND state IN ('working','finishing')",
                (_path_value(inbox), _path_value(relpath)),
            ).fetchone()
            if row is None:
                cur = db.execute(
                    "INSERT INTO jobs (inbox, relpath, state, sha256, size, dev, ino, mtime_ns,"
                    " result_key, meta_json, created_at, updated_at, started_at)"
                    " VALUES (?,?,'working',?,?,?,?,?,?,?,?,?,?)",
                    (_path_value(inbox), _path_value(relpath), sha256, size, dev, ino, mtime_ns, result_key,
                     json.dumps(meta), now, now, now),
                )  # fmt: skip
                job_id = cur.lastrowid
            else:
                job_id = row["id"]
                db.execute(
                    "UPDATE jobs SET state='working', sha256=?, size=?, dev=?, ino=?, mtime_ns=?,"
                    " result_key=?, meta_json=?, outcome=NULL, final_name=NULL, error_json=NULL,"
                    " updated_at=? WHERE id=?",
                    (sha256, size, dev, ino, mtime_ns, result_key, json.dumps(meta), now, job_id),
                )
        assert job_id is not None
        return self.get(job_id)

    def set_result_key(self, job_id: int, result_key: str, meta: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET result_key=?, meta_json=?, updated_at=? WHERE id=?",
                (result_key, json.dumps(meta), time.time(), job_id),
            )

    def defer(self, job_id: int, *, until: float, error: str, count_attempt: bool = True) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET attempts=attempts+?, next_attempt_at=?, last_error=?, updated_at=?"
                " WHERE id=?",
                (1 if count_attempt else 0, until, error, time.time(), job_id),
            )

    def decide(
        self, job_id: int, *, outcome: str, final_name: str, error: dict[str, Any] | None = None
    ) -> None:
        """Commit where the file goes and under which name, before any sidecar is written."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state='finishing', outcome=?, final_name=?, error_json=?,"
                " updated_at=? WHERE id=?",
                (outcome, _path_value(final_name), json.dumps(error) if error else None, time.time(), job_id),
            )

    def finish(self, job_id: int) -> None:
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state=outcome, finished_at=?, updated_at=? WHERE id=?",
                (now, now, job_id),
            )

    def restart(self, job_id: int) -> None:
        """The source changed under us: forget the decision, the file goes through the gate again."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state='working', outcome=NULL, final_name=NULL, error_json=NULL,"
                " updated_at=? WHERE id=?",
                (time.time(), job_id),
            )

    def abandon(self, job_id: int, reason: str) -> None:
        """The file left the inbox by other hands (deleted, renamed away): nothing more to do."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state='gone', last_error=?, finished_at=?, updated_at=? WHERE id=?",
                (reason, now, now, job_id),
            )

    def jobs_in(self, *states: str) -> list[Job]:
        marks = ",".join("?" * len(states))
        return [_job(r) for r in self._query(
            f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id", states)]  # fmt: skip

    def recent(self, state: str, limit: int = 10) -> list[Job]:
        sql = "SELECT * FROM jobs WHERE state=? ORDER BY finished_at DESC LIMIT ?"
        return [_job(r) for r in self._query(sql, (state, limit))]

    def counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._query("SELECT state, COUNT(*) FROM jobs GROUP BY state")}

    def usage_seconds_total(self) -> float:
        rows = self._query("SELECT result_json FROM results")
        return float(sum(json.loads(r[0]).get("usage_seconds", 0) for r in rows))

    # results -----------------------------------------------------------------------------------

    def result(self, result_key: str) -> dict[str, Any] | None:
        rows = self._query("SELECT result_json FROM results WHERE result_key=?", (result_key,))
        return json.loads(rows[0][0]) if rows else None

    def store_result(self, result_key: str, result: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO results (result_key, result_json, created_at) VALUES (?,?,?)",
                (result_key, json.dumps(result), time.time()),
            )

    def chunk_results(self, result_key: str) -> dict[int, dict[str, Any]]:
        rows = self._query(
            "SELECT chunk, result_json FROM chunk_results WHERE result_key=?", (result_key,)
        )
        return {r[0]: json.loads(r[1]) for r in rows}

    def store_chunk_result(self, result_key: str, chunk: int, result: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO chunk_results (result_key, chunk, result_json, created_at)"
                " VALUES (?,?,?,?)",
                (result_key, chunk, json.dumps(result), time.time()),
            )

    # calls and tasks ---------------------------------------------------------------------------

    def call_started(self, result_key: str, chunk: int, kind: str) -> int:
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO calls (result_key, chunk, kind, started_at) VALUES (?,?,?,?)",
                (result_key, chunk, kind, time.time()),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def call_ended(self, call_id: int, outcome: str, request_id: str | None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE calls SET ended_at=?, outcome=?, request_id=? WHERE id=?",
                (time.time(), outcome, request_id, call_id),
            )

    def request_ids(self, result_key: str) -> list[str]:
        rows = self._query(
            "SELECT request_id FROM calls WHERE result_key=? AND request_id IS NOT NULL ORDER BY id",
            (result_key,),
        )
        return [r[0] for r in rows]

    def task(self, result_key: str) -> tuple[str | None, float] | None:
        rows = self._query(
            "SELECT task_id, submitted_at FROM tasks WHERE result_key=?", (result_key,)
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def task_submitting(self, result_key: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO tasks (result_key, task_id, submitted_at) VALUES (?,NULL,?)",
                (result_key, time.time()),
            )

    def task_submitted(self, result_key: str, task_id: str, request_id: str | None) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE tasks SET task_id=?, request_id=? WHERE result_key=?",
                (task_id, request_id, result_key),
            )

    def forget_task(self, result_key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM tasks WHERE result_key=?", (result_key,))

    # uploaded objects --------------------------------------------------------------------------

    def object_created(self, object_key: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO objects (object_key, created_at) VALUES (?,?)",
                (object_key, time.time()),
            )

    def object_deleted(self, object_key: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE objects SET deleted_at=? WHERE object_key=?", (time.time(), object_key)
            )

    def live_objects(self, prefix: str) -> list[str]:
        rows = self._query(
            "SELECT object_key FROM objects WHERE deleted_at IS NULL AND object_key LIKE ?",
            (prefix.replace("%", r"\%") + "%",),
        )
        return [r[0] for r in rows]

    # meta --------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str | None) -> None:
        with self._tx() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key=?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?,?)", (key, value))
