"""What was paid for, in the SQLite journal: stored answers, the calls that bought them, file-transcription
tasks and uploaded objects. Mixed into :class:`SqliteJournal`.

These rows are why nothing is paid twice: an answer is looked up by its result key before any call, a
call is journaled before it is sent, a task id right after its submit, an object before it is put.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import AbstractContextManager
from typing import Any


class PaidWorkMixin:
    """Needs the host class's ``_tx()`` (one committed transaction) and ``_query()``."""

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

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
        rows = self._query("SELECT chunk, result_json FROM chunk_results WHERE result_key=?", (result_key,))
        return {r[0]: json.loads(r[1]) for r in rows}

    def store_chunk_result(
        self, result_key: str, chunk: int, result: dict[str, Any], *, call_id: int | None = None,
        request_id: str | None = None,
    ) -> None:  # fmt: skip
        now = time.time()
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO chunk_results (result_key, chunk, result_json, created_at)"
                " VALUES (?,?,?,?)",
                (result_key, chunk, json.dumps(result), now),
            )
            if call_id is not None:
                db.execute(
                    "UPDATE calls SET ended_at=?, outcome='ok', request_id=? WHERE id=?",
                    (now, request_id, call_id),
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
        rows = self._query("SELECT task_id, submitted_at FROM tasks WHERE result_key=?", (result_key,))
        return (rows[0][0], rows[0][1]) if rows else None

    def task_submitting(self, result_key: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO tasks (result_key, task_id, submitted_at) VALUES (?,NULL,?)",
                (result_key, time.time()),
            )

    def task_submitted(
        self, result_key: str, task_id: str, request_id: str | None, *, call_id: int | None = None
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE tasks SET task_id=?, request_id=? WHERE result_key=?",
                (task_id, request_id, result_key),
            )
            if call_id is not None:
                db.execute(
                    "UPDATE calls SET ended_at=?, outcome='submitted', request_id=? WHERE id=?",
                    (time.time(), request_id, call_id),
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
            db.execute("UPDATE objects SET deleted_at=? WHERE object_key=?", (time.time(), object_key))

    def live_objects(self, prefix: str) -> list[str]:
        # a key range, not LIKE: SQLite's LIKE is case-insensitive and so cannot use the primary key,
        # which made every finished file scan all objects ever uploaded
        rows = self._query(
            "SELECT object_key FROM objects WHERE object_key >= ? AND object_key < ? AND deleted_at IS NULL",
            (prefix, prefix + "\U0010ffff"),
        )
        return [r[0] for r in rows]

    def forget_result(self, result_key: str) -> None:
        """Drop a stored answer, its chunk answers and any task id, so the next lookup recognizes again.

        The calls made for it stay: they are the record of what was paid.
        """
        with self._tx() as db:
            db.execute("DELETE FROM results WHERE result_key=?", (result_key,))
            db.execute("DELETE FROM chunk_results WHERE result_key=?", (result_key,))
            db.execute("DELETE FROM tasks WHERE result_key=?", (result_key,))
