"""Reading a file's whole history back out of the SQLite journal, for ``dropscribe explain``.

A mixin of :class:`~dropscribe.adapters.journal.sqlite.SqliteJournal`: it only reads, through the
journal's ``_query``, so it shares the connection, its lock and its full-disk handling.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from dropscribe.adapters.journal.rows import job_from_row as _job
from dropscribe.adapters.journal.rows import path_text as _path_text
from dropscribe.adapters.journal.rows import path_value as _path_value
from dropscribe.core.history import CallRecord
from dropscribe.core.jobs import Job


class JournalHistory:
    """Jobs by file, by final name and by content hash; calls and storage times of a result key."""

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError  # the journal's own, which comes first in its method order

    def jobs_of_file(self, inbox: str, relpath: str) -> list[Job]:
        rows = self._query(
            "SELECT * FROM jobs WHERE inbox=? AND relpath=? ORDER BY id",
            (_path_value(inbox), _path_value(relpath)),
        )
        return [_job(r) for r in rows]

    def jobs_finished_as(self, inbox: str, folder: str, final_name: str) -> list[Job]:
        rows = self._query(
            "SELECT * FROM jobs WHERE inbox=? AND final_name=? ORDER BY id",
            (_path_value(inbox), _path_value(final_name)),
        )
        # the relpath's folder is its folder below done/ or failed/
        return [_job(r) for r in rows if _path_text(r["relpath"]).rpartition("/")[0] == folder]

    def jobs_with_sha(self, prefix: str) -> list[Job]:
        # a range on the text, not LIKE (which folds case and treats _ and % as wildcards)
        low = prefix.lower()
        rows = self._query(
            "SELECT * FROM jobs WHERE sha256 >= ? AND sha256 < ? ORDER BY id", (low, low + "\U0010ffff")
        )
        return [_job(r) for r in rows]

    def calls_of(self, result_key: str) -> list[CallRecord]:
        rows = self._query(
            "SELECT id, result_key, chunk, kind, started_at, ended_at, outcome, request_id FROM calls"
            " WHERE result_key=? ORDER BY id",
            (result_key,),
        )
        return [CallRecord(*tuple(r)) for r in rows]

    def result_stored_at(self, result_key: str) -> float | None:
        rows = self._query("SELECT created_at FROM results WHERE result_key=?", (result_key,))
        return float(rows[0][0]) if rows else None

    def chunks_stored_at(self, result_key: str) -> dict[int, float]:
        rows = self._query("SELECT chunk, created_at FROM chunk_results WHERE result_key=?", (result_key,))
        return {int(r[0]): float(r[1]) for r in rows}
