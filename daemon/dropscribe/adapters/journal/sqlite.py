"""The journal on a local SQLite file (WAL, synchronous=FULL) that survives kill -9 and power loss.

One process may share the file with others (``dropscribe transcribe`` beside a running service): WAL
lets readers and one writer work at once, and each write is one short ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dropscribe.adapters.journal.budgets import BudgetsMixin
from dropscribe.adapters.journal.claims_sqlite import ClaimsMixin
from dropscribe.adapters.journal.history import JournalHistory
from dropscribe.adapters.journal.outbox import OutboxMixin
from dropscribe.adapters.journal.paid_work import PaidWorkMixin
from dropscribe.adapters.journal.rows import job_from_row as _job
from dropscribe.adapters.journal.rows import path_text as _path_text
from dropscribe.adapters.journal.rows import path_value as _path_value
from dropscribe.adapters.journal.schema import check_version, migrate
from dropscribe.core.errors import StateFullError
from dropscribe.core.jobs import Job

_LOW_SPACE_BYTES = 1 << 20


def _is_full(exc: sqlite3.Error, folder: Path) -> bool:
    """SQLite says SQLITE_FULL, or an I/O or open error while the filesystem has no room left."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == sqlite3.SQLITE_FULL:
        return True
    if "database or disk is full" in str(exc):
        return True
    if code is not None and code & 0xFF not in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN):
        return False
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < _LOW_SPACE_BYTES


class SqliteJournal(PaidWorkMixin, JournalHistory, OutboxMixin, BudgetsMixin, ClaimsMixin):
    """Thread-safe access to the journal; one connection, short transactions.

    A full filesystem is an operating condition, not a crash: every call then raises
    ``StateFullError`` (nothing can be recorded, so nothing may be done), and the connection is set up
    again on a later call once there is room. Opening never fails for lack of space; the first call does.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        with contextlib.suppress(StateFullError):
            self._connect()

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            db.row_factory = sqlite3.Row
            # before anything that writes, switching to WAL included: a newer release's journal is
            # refused as it was found
            check_version(db, str(self.path))
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed intent or result must survive power loss, not only a process crash
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=30000")
            migrate(db, str(self.path))
        except sqlite3.Error as exc:
            db.close()
            if _is_full(exc, self.path.parent):
                raise StateFullError(f"no space left for the journal in {self.path.parent}") from exc
            raise
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    @contextmanager
    def _full_is_an_error(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            if _is_full(exc, self.path.parent):
                raise StateFullError(f"no space left for the journal in {self.path.parent}") from exc
            raise

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._full_is_an_error():
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            try:
                db.execute("COMMIT")
            except sqlite3.Error:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock, self._full_is_an_error():
            return list(self._connect().execute(sql, args))

    def writable(self) -> bool:
        """Whether a write commits now (used to find out when a full disk has room again)."""
        try:
            self.set_meta("probe", str(time.time()))
        except StateFullError:
            return False
        return True

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
        self, job_id: int, *, outcome: str, final_name: str, error: dict[str, Any] | None = None,
        token: int | None = None,
    ) -> None:  # fmt: skip
        """Commit where the file goes and under which name, before any sidecar is written."""
        with self._tx() as db:
            self._fence(db, job_id, token)
            db.execute(
                "UPDATE jobs SET state='finishing', outcome=?, final_name=?, error_json=?,"
                " updated_at=? WHERE id=?",
                (outcome, _path_value(final_name), json.dumps(error) if error else None, time.time(), job_id),
            )

    def finish(
        self, job_id: int, final_identity: dict[str, int] | None = None, *, token: int | None = None
    ) -> None:
        """Mark the job done or failed; ``final_identity`` is how the moved file looked in place."""
        now = time.time()
        with self._tx() as db:
            self._fence(db, job_id, token)
            row = db.execute("SELECT meta_json FROM jobs WHERE id=?", (job_id,)).fetchone()
            meta = json.loads(row[0]) if row and row[0] else {}
            if final_identity is not None:
                meta["final_identity"] = final_identity
            db.execute(
                "UPDATE jobs SET state=outcome, meta_json=?, finished_at=?, updated_at=? WHERE id=?",
                (json.dumps(meta), now, now, job_id),
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

    def finished_since(self, inbox: str, since: float) -> list[Job]:
        """Jobs of ``inbox`` that ended done or failed after ``since`` (their files are still watched)."""
        rows = self._query(
            "SELECT * FROM jobs WHERE inbox=? AND state IN ('done','failed') AND finished_at>=?"
            " ORDER BY finished_at",
            (_path_value(inbox), since),
        )
        return [_job(r) for r in rows]

    def reopen(self, job_id: int, reason: str) -> None:
        """The finished file changed in place (its writer resumed): this job no longer describes it."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state='reopened', last_error=?, updated_at=? WHERE id=?",
                (reason, time.time(), job_id),
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

    def usage_seconds_between(self, start: float, end: float) -> float:
        # summed inside SQLite: the status page asks on every refresh, and results pile up for months
        rows = self._query(
            "SELECT TOTAL(json_extract(result_json, '$.usage_seconds')) FROM results"
            " WHERE created_at >= ? AND created_at < ?",
            (start, end),
        )
        return float(rows[0][0])

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

    def mark_retried(self, inbox: str, folder: str, final_name: str) -> int | None:
        """A failed file was moved back to its inbox: its job leaves the failures as ``retried``.

        ``folder`` is the file's folder below ``failed/`` (``""`` at the top), which is its relpath's
        folder; with ``final_name`` it identifies the job. The newest match wins: an older job may have
        had the same name in failed/ before its file was removed by hand. Returns the job id, if any.
        """
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, relpath FROM jobs WHERE inbox=? AND state='failed' AND final_name=?"
                " ORDER BY id DESC",
                (_path_value(inbox), _path_value(final_name)),
            ).fetchall()
            for row in rows:
                if _path_text(row["relpath"]).rpartition("/")[0] == folder:
                    db.execute(
                        "UPDATE jobs SET state='retried', updated_at=? WHERE id=?", (time.time(), row["id"])
                    )
                    return int(row["id"])
        return None
