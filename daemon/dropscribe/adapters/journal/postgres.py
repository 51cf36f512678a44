"""The journal in a PostgreSQL database (``state.url``), for a service whose state lives off the host.

The same contract as :class:`~dropscribe.adapters.journal.sqlite.SqliteJournal`, checked by the same
suite. Each port method is atomic: one statement in autocommit mode, or one transaction when it needs
several. Rows are kept as the SQLite journal keeps them (``rows.job_from_row`` reads both).

psycopg is imported only by this package's PostgreSQL modules, which ``service.compose`` imports only
when ``state.url`` is set: a service on SQLite never needs the driver installed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from dropscribe.adapters.journal.postgres_claims import FENCE, PgClaimsMixin
from dropscribe.adapters.journal.postgres_connections import Connection, Connections
from dropscribe.adapters.journal.postgres_outbox import PgBudgetsMixin, PgOutboxMixin
from dropscribe.adapters.journal.postgres_paid import PgHistoryMixin, PgPaidWorkMixin
from dropscribe.adapters.journal.postgres_schema import check_version, migrate
from dropscribe.adapters.journal.rows import job_from_row as _job
from dropscribe.adapters.journal.rows import path_text as _path_text
from dropscribe.adapters.journal.rows import path_value as _path_value
from dropscribe.core.errors import JournalUnreachableError, StateFullError
from dropscribe.core.jobs import Job

_ACTIVE = "state IN ('working','finishing')"


class PostgresJournal(PgPaidWorkMixin, PgHistoryMixin, PgOutboxMixin, PgBudgetsMixin, PgClaimsMixin):
    """Thread-safe; while the database cannot be reached every call raises ``JournalUnreachableError``.

    Opening never fails because the database is down (the first call does, and the schema is checked
    and migrated on the first call that reaches it); it fails at once for a newer release's schema.
    """

    def __init__(self, url: str, *, password: str | None = None, timeout_s: float = 10) -> None:
        self._connections = Connections(url, password=password, timeout_s=timeout_s)
        self.where = self._connections.where
        self._ready = False
        self._ready_lock = threading.Lock()
        self._slot_pools = set()
        with suppress(JournalUnreachableError):
            self._ensure_ready()

    def _ensure_ready(self) -> None:
        with self._ready_lock:
            if self._ready:
                return
            with self._connections.borrow() as db:
                check_version(db, self.where)  # before anything is written
                migrate(db, self.where)
            self._ready = True

    def close(self) -> None:
        self._connections.close()

    @contextmanager
    def _conn(self) -> Iterator[Connection]:
        if not self._ready:
            self._ensure_ready()
        with self._connections.borrow() as db:
            yield db

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self._conn() as db, db.transaction():
            yield db

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._conn() as db:
            return db.execute(sql, args).fetchall()

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        """One statement: atomic on its own, one round trip."""
        with self._conn() as db:
            db.execute(sql, args)

    def writable(self) -> bool:
        try:
            self.set_meta("probe", str(time.time()))
        except StateFullError:
            return False
        return True

    # jobs -------------------------------------------------------------------------------------

    def active_job(self, inbox: str, relpath: str) -> Job | None:
        rows = self._query(
            f"SELECT * FROM jobs WHERE inbox=%s AND relpath=%s AND {_ACTIVE}",
            (_path_value(inbox), _path_value(relpath)),
        )
        return _job(rows[0]) if rows else None

    def get(self, job_id: int) -> Job:
        return _job(self._query("SELECT * FROM jobs WHERE id=%s", (job_id,))[0])

    def start_job(
        self, inbox: str, relpath: str, *, sha256: str, size: int, dev: int, ino: int,
        mtime_ns: int, result_key: str | None, meta: dict[str, Any],
    ) -> Job:  # fmt: skip
        """One upsert on the active-job index: a new job, or the active one refreshed (same id)."""
        now = time.time()
        rows = self._query(
            "INSERT INTO jobs (inbox, relpath, state, sha256, size, dev, ino, mtime_ns, result_key,"
            " meta_json, created_at, updated_at, started_at)"
            " VALUES (%s,%s,'working',%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
            f" ON CONFLICT (inbox, relpath) WHERE {_ACTIVE} DO UPDATE SET state='working',"
            " sha256=EXCLUDED.sha256, size=EXCLUDED.size, dev=EXCLUDED.dev, ino=EXCLUDED.ino,"
            " mtime_ns=EXCLUDED.mtime_ns, result_key=EXCLUDED.result_key, meta_json=EXCLUDED.meta_json,"
            " outcome=NULL, final_name=NULL, error_json=NULL, updated_at=EXCLUDED.updated_at"
            " RETURNING *",
            (_path_value(inbox), _path_value(relpath), sha256, size, dev, ino, mtime_ns, result_key,
             json.dumps(meta), now, now, now),
        )  # fmt: skip
        return _job(rows[0])

    def set_result_key(self, job_id: int, result_key: str, meta: dict[str, Any]) -> None:
        self._write(
            "UPDATE jobs SET result_key=%s, meta_json=%s, updated_at=%s WHERE id=%s",
            (result_key, json.dumps(meta), time.time(), job_id),
        )

    def defer(self, job_id: int, *, until: float, error: str, count_attempt: bool = True) -> None:
        self._write(
            "UPDATE jobs SET attempts=attempts+%s, next_attempt_at=%s, last_error=%s, updated_at=%s"
            " WHERE id=%s",
            (1 if count_attempt else 0, until, error, time.time(), job_id),
        )

    def decide(
        self, job_id: int, *, outcome: str, final_name: str, error: dict[str, Any] | None = None,
        token: int | None = None,
    ) -> None:  # fmt: skip
        self._fenced(
            "UPDATE jobs SET state='finishing', outcome=%s, final_name=%s, error_json=%s, updated_at=%s"
            " WHERE id=%s",
            (outcome, _path_value(final_name), json.dumps(error) if error else None, time.time(), job_id),
            job_id, token,
        )  # fmt: skip

    def finish(
        self, job_id: int, final_identity: dict[str, int] | None = None, *, token: int | None = None
    ) -> None:
        now = time.time()
        if final_identity is None:  # meta stays as it is: one statement
            self._fenced(
                "UPDATE jobs SET state=outcome, finished_at=%s, updated_at=%s WHERE id=%s",
                (now, now, job_id), job_id, token,
            )  # fmt: skip
            return
        with self._tx() as db:
            if token is not None:
                self._fence_in(db, job_id, token)
            row = db.execute("SELECT meta_json FROM jobs WHERE id=%s FOR UPDATE", (job_id,)).fetchone()
            meta = json.loads(row["meta_json"]) if row and row["meta_json"] else {}
            meta["final_identity"] = final_identity
            db.execute(
                "UPDATE jobs SET state=outcome, meta_json=%s, finished_at=%s, updated_at=%s WHERE id=%s",
                (json.dumps(meta), now, now, job_id),
            )

    def _fenced(self, sql: str, args: tuple[Any, ...], job_id: int, token: int | None) -> None:
        """``sql`` (an UPDATE of the job), run only while ``token``'s claim runs, in the same statement."""
        if token is None:
            self._write(sql, args)
        elif not self._query(f"{sql} AND {FENCE} RETURNING id", (*args, token)):
            raise self._lease_lost(job_id)

    def restart(self, job_id: int) -> None:
        self._write(
            "UPDATE jobs SET state='working', outcome=NULL, final_name=NULL, error_json=NULL, updated_at=%s"
            " WHERE id=%s",
            (time.time(), job_id),
        )

    def abandon(self, job_id: int, reason: str) -> None:
        now = time.time()
        self._write(
            "UPDATE jobs SET state='gone', last_error=%s, finished_at=%s, updated_at=%s WHERE id=%s",
            (reason, now, now, job_id),
        )

    def reopen(self, job_id: int, reason: str) -> None:
        self._write(
            "UPDATE jobs SET state='reopened', last_error=%s, updated_at=%s WHERE id=%s",
            (reason, time.time(), job_id),
        )

    def mark_retried(self, inbox: str, folder: str, final_name: str) -> int | None:
        """The newest ``failed`` job of that name whose relpath is in ``folder`` becomes ``retried``."""
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, relpath FROM jobs WHERE inbox=%s AND state='failed' AND final_name=%s"
                " ORDER BY id DESC FOR UPDATE",
                (_path_value(inbox), _path_value(final_name)),
            ).fetchall()
            for row in rows:
                if _path_text(row["relpath"]).rpartition("/")[0] == folder:
                    db.execute(
                        "UPDATE jobs SET state='retried', updated_at=%s WHERE id=%s", (time.time(), row["id"])
                    )
                    return int(row["id"])
        return None

    def finished_since(self, inbox: str, since: float) -> list[Job]:
        rows = self._query(
            "SELECT * FROM jobs WHERE inbox=%s AND state IN ('done','failed') AND finished_at>=%s"
            " ORDER BY finished_at, id",
            (_path_value(inbox), since),
        )
        return [_job(r) for r in rows]

    def jobs_in(self, *states: str) -> list[Job]:
        return [
            _job(r)
            for r in self._query("SELECT * FROM jobs WHERE state = ANY(%s) ORDER BY id", (list(states),))
        ]

    def recent(self, state: str, limit: int = 10) -> list[Job]:
        sql = "SELECT * FROM jobs WHERE state=%s ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT %s"
        return [_job(r) for r in self._query(sql, (state, limit))]

    def counts(self) -> dict[str, int]:
        rows = self._query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return {r["state"]: int(r["n"]) for r in rows}

    # meta --------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key=%s", (key,))
        return str(rows[0]["value"]) if rows else None

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._write("DELETE FROM meta WHERE key=%s", (key,))
        else:
            self._write(
                "INSERT INTO meta (key, value) VALUES (%s,%s)"
                " ON CONFLICT (key) DO UPDATE SET value=EXCLUDED.value",
                (key, value),
            )


__all__ = ["JournalUnreachableError", "PostgresJournal"]
