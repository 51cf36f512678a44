"""The notification outbox of the SQLite journal, mixed into :class:`SqliteJournal`.

A notification is a row per channel, committed before it is sent; a delivery ends when the row is
marked delivered (a 2xx, a message handed over) or dropped (too old). Until then it is due again at
``next_attempt_at``, across restarts.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from dropscribe.adapters.journal.rows import Row
from dropscribe.core.outbox import OutboxEntry

_PENDING = "delivered_at IS NULL AND dropped_at IS NULL"


def entry_from_row(row: Row) -> OutboxEntry:
    return OutboxEntry(
        id=row["id"], event=row["event"], channel=row["channel"], payload=json.loads(row["payload_json"]),
        job_id=row["job_id"], created_at=row["created_at"], attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"], delivered_at=row["delivered_at"],
        dropped_at=row["dropped_at"], last_error=row["last_error"],
    )  # fmt: skip


class OutboxMixin:
    """Needs the host class's ``_tx()`` (one committed transaction) and ``_query()``."""

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    def add_notification(
        self, event: str, channels: Sequence[str], payload: dict[str, Any], *, job_id: int | None = None
    ) -> list[str]:
        ids = [uuid.uuid4().hex for _channel in channels]
        body, now = json.dumps(payload), time.time()
        with self._tx() as db:
            db.executemany(
                "INSERT INTO outbox (id, event, channel, payload_json, job_id, created_at, next_attempt_at)"
                " VALUES (?,?,?,?,?,?,?)",
                [
                    (id_, event, channel, body, job_id, now, now)
                    for id_, channel in zip(ids, channels, strict=True)
                ],
            )
            if job_id is not None:  # in the same transaction: the job's event is told exactly once
                db.execute("UPDATE jobs SET notified_at=? WHERE id=?", (now, job_id))
        return ids

    def job_notified(self, job_id: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET notified_at=? WHERE id=?", (time.time(), job_id))

    def jobs_to_notify(self) -> list[int]:
        rows = self._query(
            "SELECT id FROM jobs WHERE state IN ('done', 'failed') AND notified_at IS NULL ORDER BY id"
        )
        return [int(row[0]) for row in rows]

    def due_notifications(self, channel: str, now: float, limit: int = 100) -> list[OutboxEntry]:
        rows = self._query(
            f"SELECT * FROM outbox WHERE channel=? AND {_PENDING} AND next_attempt_at<=?"
            " ORDER BY created_at, rowid LIMIT ?",
            (channel, now, limit),
        )
        return [entry_from_row(row) for row in rows]

    def next_notification_at(self, channel: str) -> float | None:
        rows = self._query(
            f"SELECT MIN(next_attempt_at) FROM outbox WHERE channel=? AND {_PENDING}", (channel,)
        )
        return None if rows[0][0] is None else float(rows[0][0])

    def notifications_delivered(self, ids: Sequence[str]) -> None:
        self._mark(ids, "delivered_at=?", (time.time(),))

    def notifications_failed(self, ids: Sequence[str], *, error: str, next_attempt_at: float) -> None:
        self._mark(ids, "attempts=attempts+1, last_error=?, next_attempt_at=?", (error, next_attempt_at))

    def notifications_dropped(self, ids: Sequence[str], reason: str) -> None:
        self._mark(ids, "dropped_at=?, last_error=?", (time.time(), reason))

    def notifications_for_job(self, job_id: int) -> list[OutboxEntry]:
        rows = self._query("SELECT * FROM outbox WHERE job_id=? ORDER BY created_at, rowid", (job_id,))
        return [entry_from_row(row) for row in rows]

    def notification(self, notification_id: str) -> OutboxEntry | None:
        rows = self._query("SELECT * FROM outbox WHERE id=?", (notification_id,))
        return entry_from_row(rows[0]) if rows else None

    def _mark(self, ids: Sequence[str], assignments: str, values: tuple[Any, ...]) -> None:
        # only a pending row changes: a late answer never revives a dropped one
        with self._tx() as db:
            db.executemany(
                f"UPDATE outbox SET {assignments} WHERE id=? AND {_PENDING}",
                [(*values, id_) for id_ in ids],
            )
