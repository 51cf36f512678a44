"""What was paid for, in the PostgreSQL journal: answers, calls, tasks, uploaded objects, and reading a
file's history back for ``dropscribe explain``. Mixed into :class:`PostgresJournal`.

The same rows and the same rules as the SQLite journal's ``paid_work`` and ``history`` mixins; only the
SQL differs (upserts, ``RETURNING``, sums that are never NULL).
"""

from __future__ import annotations

import json
import time
from contextlib import AbstractContextManager
from typing import Any

from dropscribe.adapters.journal.postgres_connections import Connection
from dropscribe.adapters.journal.rows import job_from_row as _job
from dropscribe.adapters.journal.rows import path_text as _path_text
from dropscribe.adapters.journal.rows import path_value as _path_value
from dropscribe.core.history import CallRecord
from dropscribe.core.jobs import Job

# the highest code point: ``key >= p AND key < p || _TOP`` is "starts with p" as a range on the index
_TOP = "\U0010ffff"


class _Host:
    """What the mixins need of the journal they are mixed into."""

    def _tx(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        raise NotImplementedError


class PgPaidWorkMixin(_Host):
    # results -----------------------------------------------------------------------------------

    def result(self, result_key: str) -> dict[str, Any] | None:
        rows = self._query("SELECT result_json FROM results WHERE result_key=%s", (result_key,))
        return json.loads(rows[0]["result_json"]) if rows else None

    def store_result(self, result_key: str, result: dict[str, Any]) -> None:
        self._write(
            "INSERT INTO results (result_key, result_json, created_at) VALUES (%s,%s,%s)"
            " ON CONFLICT (result_key) DO UPDATE SET result_json=EXCLUDED.result_json,"
            " created_at=EXCLUDED.created_at",
            (result_key, json.dumps(result), time.time()),
        )

    def chunk_results(self, result_key: str) -> dict[int, dict[str, Any]]:
        rows = self._query("SELECT chunk, result_json FROM chunk_results WHERE result_key=%s", (result_key,))
        return {int(r["chunk"]): json.loads(r["result_json"]) for r in rows}

    def store_chunk_result(
        self, result_key: str, chunk: int, result: dict[str, Any], *, call_id: int | None = None,
        request_id: str | None = None,
    ) -> None:  # fmt: skip
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT INTO chunk_results (result_key, chunk, result_json, created_at) VALUES (%s,%s,%s,%s)"
                " ON CONFLICT (result_key, chunk) DO UPDATE SET result_json=EXCLUDED.result_json,"
                " created_at=EXCLUDED.created_at",
                (result_key, chunk, json.dumps(result), now),
            )
            if call_id is not None:
                db.execute(
                    "UPDATE calls SET ended_at=%s, outcome='ok', request_id=%s WHERE id=%s",
                    (now, request_id, call_id),
                )

    def forget_result(self, result_key: str) -> None:
        """Drop the answer, its chunk answers and any task id; the calls stay as the record of payment."""
        with self._tx() as db:
            for table in ("results", "chunk_results", "tasks"):
                db.execute(f"DELETE FROM {table} WHERE result_key=%s", (result_key,))

    def usage_seconds_total(self) -> float:
        return self._usage("", ())

    def usage_seconds_between(self, start: float, end: float) -> float:
        return self._usage(" WHERE created_at >= %s AND created_at < %s", (start, end))

    def _usage(self, where: str, args: tuple[Any, ...]) -> float:
        # summed in the database: the status page asks on every refresh, and results pile up for months
        rows = self._query(
            "SELECT COALESCE(SUM((result_json::jsonb->>'usage_seconds')::double precision), 0) AS total"
            " FROM results" + where,
            args,
        )
        return float(rows[0]["total"])

    # calls and tasks ---------------------------------------------------------------------------

    def call_started(self, result_key: str, chunk: int, kind: str) -> int:
        rows = self._query(
            "INSERT INTO calls (result_key, chunk, kind, started_at) VALUES (%s,%s,%s,%s) RETURNING id",
            (result_key, chunk, kind, time.time()),
        )
        return int(rows[0]["id"])

    def call_ended(self, call_id: int, outcome: str, request_id: str | None) -> None:
        self._write(
            "UPDATE calls SET ended_at=%s, outcome=%s, request_id=%s WHERE id=%s",
            (time.time(), outcome, request_id, call_id),
        )

    def request_ids(self, result_key: str) -> list[str]:
        rows = self._query(
            "SELECT request_id FROM calls WHERE result_key=%s AND request_id IS NOT NULL ORDER BY id",
            (result_key,),
        )
        return [str(r["request_id"]) for r in rows]

    def task(self, result_key: str) -> tuple[str | None, float] | None:
        rows = self._query("SELECT task_id, submitted_at FROM tasks WHERE result_key=%s", (result_key,))
        return (rows[0]["task_id"], float(rows[0]["submitted_at"])) if rows else None

    def task_submitting(self, result_key: str) -> None:
        self._write(
            "INSERT INTO tasks (result_key, task_id, submitted_at) VALUES (%s,NULL,%s)"
            " ON CONFLICT (result_key) DO UPDATE SET task_id=NULL, submitted_at=EXCLUDED.submitted_at,"
            " request_id=NULL",
            (result_key, time.time()),
        )

    def task_submitted(
        self, result_key: str, task_id: str, request_id: str | None, *, call_id: int | None = None
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE tasks SET task_id=%s, request_id=%s WHERE result_key=%s",
                (task_id, request_id, result_key),
            )
            if call_id is not None:
                db.execute(
                    "UPDATE calls SET ended_at=%s, outcome='submitted', request_id=%s WHERE id=%s",
                    (time.time(), request_id, call_id),
                )

    def forget_task(self, result_key: str) -> None:
        self._write("DELETE FROM tasks WHERE result_key=%s", (result_key,))

    # uploaded objects --------------------------------------------------------------------------

    def object_created(self, object_key: str) -> None:
        self._write(
            "INSERT INTO objects (object_key, created_at) VALUES (%s,%s) ON CONFLICT (object_key) DO NOTHING",
            (object_key, time.time()),
        )

    def object_deleted(self, object_key: str) -> None:
        self._write("UPDATE objects SET deleted_at=%s WHERE object_key=%s", (time.time(), object_key))

    def live_objects(self, prefix: str) -> list[str]:
        # a range in byte order (the column's "C" collation), not LIKE: no wildcards, no case folding
        rows = self._query(
            "SELECT object_key FROM objects WHERE object_key >= %s AND object_key < %s"
            " AND deleted_at IS NULL",
            (prefix, prefix + _TOP),
        )
        return [str(r["object_key"]) for r in rows]


class PgHistoryMixin(_Host):
    """Jobs by file, by final name and by content hash; calls and storage times of a result key."""

    def jobs_of_file(self, inbox: str, relpath: str) -> list[Job]:
        rows = self._query(
            "SELECT * FROM jobs WHERE inbox=%s AND relpath=%s ORDER BY id",
            (_path_value(inbox), _path_value(relpath)),
        )
        return [_job(r) for r in rows]

    def jobs_finished_as(self, inbox: str, folder: str, final_name: str) -> list[Job]:
        rows = self._query(
            "SELECT * FROM jobs WHERE inbox=%s AND final_name=%s ORDER BY id",
            (_path_value(inbox), _path_value(final_name)),
        )
        # the relpath's folder is its folder below done/ or failed/
        return [_job(r) for r in rows if _path_text(r["relpath"]).rpartition("/")[0] == folder]

    def jobs_with_sha(self, prefix: str) -> list[Job]:
        low = prefix.lower()
        rows = self._query(
            "SELECT * FROM jobs WHERE sha256 >= %s AND sha256 < %s ORDER BY id", (low, low + _TOP)
        )
        return [_job(r) for r in rows]

    def calls_of(self, result_key: str) -> list[CallRecord]:
        rows = self._query(
            "SELECT id, result_key, chunk, kind, started_at, ended_at, outcome, request_id FROM calls"
            " WHERE result_key=%s ORDER BY id",
            (result_key,),
        )
        return [CallRecord(*r.values()) for r in rows]

    def result_stored_at(self, result_key: str) -> float | None:
        rows = self._query("SELECT created_at FROM results WHERE result_key=%s", (result_key,))
        return float(rows[0]["created_at"]) if rows else None

    def chunks_stored_at(self, result_key: str) -> dict[int, float]:
        rows = self._query("SELECT chunk, created_at FROM chunk_results WHERE result_key=%s", (result_key,))
        return {int(r["chunk"]): float(r["created_at"]) for r in rows}
