"""The notification outbox and the budget reservations of the PostgreSQL journal, mixed into
:class:`PostgresJournal`. The same rows and rules as the SQLite journal's ``outbox`` and ``budgets``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from dropscribe.adapters.journal.outbox import entry_from_row
from dropscribe.adapters.journal.postgres_paid import _Host
from dropscribe.core.outbox import OutboxEntry

_PENDING = "delivered_at IS NULL AND dropped_at IS NULL"


class PgOutboxMixin(_Host):
    def add_notification(
        self, event: str, channels: Sequence[str], payload: dict[str, Any], *, job_id: int | None = None
    ) -> list[str]:
        ids = [uuid.uuid4().hex for _channel in channels]
        body, now = json.dumps(payload), time.time()
        with self._tx() as db:
            with db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO outbox (id, event, channel, payload_json, job_id, created_at,"
                    " next_attempt_at) VALUES (%s,%s,%s,%s,%s,%s,%s)",
                    [
                        (id_, event, channel, body, job_id, now, now)
                        for id_, channel in zip(ids, channels, strict=True)
                    ],
                )
            if job_id is not None:  # in the same transaction: the job's event is told exactly once
                db.execute("UPDATE jobs SET notified_at=%s WHERE id=%s", (now, job_id))
        return ids

    def job_notified(self, job_id: int) -> None:
        self._write("UPDATE jobs SET notified_at=%s WHERE id=%s", (time.time(), job_id))

    def jobs_to_notify(self) -> list[int]:
        rows = self._query(
            "SELECT id FROM jobs WHERE state IN ('done', 'failed') AND notified_at IS NULL ORDER BY id"
        )
        return [int(row["id"]) for row in rows]

    def due_notifications(self, channel: str, now: float, limit: int = 100) -> list[OutboxEntry]:
        rows = self._query(
            f"SELECT * FROM outbox WHERE channel=%s AND {_PENDING} AND next_attempt_at<=%s"
            " ORDER BY created_at, seq LIMIT %s",
            (channel, now, limit),
        )
        return [entry_from_row(row) for row in rows]

    def next_notification_at(self, channel: str) -> float | None:
        rows = self._query(
            f"SELECT MIN(next_attempt_at) AS due FROM outbox WHERE channel=%s AND {_PENDING}", (channel,)
        )
        return None if rows[0]["due"] is None else float(rows[0]["due"])

    def notifications_delivered(self, ids: Sequence[str]) -> None:
        self._mark(ids, "delivered_at=%s", (time.time(),))

    def notifications_failed(self, ids: Sequence[str], *, error: str, next_attempt_at: float) -> None:
        self._mark(ids, "attempts=attempts+1, last_error=%s, next_attempt_at=%s", (error, next_attempt_at))

    def notifications_dropped(self, ids: Sequence[str], reason: str) -> None:
        self._mark(ids, "dropped_at=%s, last_error=%s", (time.time(), reason))

    def notifications_for_job(self, job_id: int) -> list[OutboxEntry]:
        rows = self._query("SELECT * FROM outbox WHERE job_id=%s ORDER BY created_at, seq", (job_id,))
        return [entry_from_row(row) for row in rows]

    def notification(self, notification_id: str) -> OutboxEntry | None:
        rows = self._query("SELECT * FROM outbox WHERE id=%s", (notification_id,))
        return entry_from_row(rows[0]) if rows else None

    def _mark(self, ids: Sequence[str], assignments: str, values: tuple[Any, ...]) -> None:
        # only a pending row changes: a late answer never revives a dropped one
        self._write(
            f"UPDATE outbox SET {assignments} WHERE id = ANY(%s) AND {_PENDING}", (*values, list(ids))
        )


class PgBudgetsMixin(_Host):
    def reserve(
        self, result_key: str, scopes_periods: Sequence[tuple[str, str]], seconds: float, at: float
    ) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM budget_use WHERE result_key=%s AND NOT settled", (result_key,))
            with db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO budget_use (result_key, scope, period, seconds, settled, at)"
                    " VALUES (%s,%s,%s,%s,FALSE,%s)",
                    [(result_key, scope, period, float(seconds), at) for scope, period in scopes_periods],
                )

    def settle(self, result_key: str, billed_seconds: float) -> None:
        self._write(
            "UPDATE budget_use SET seconds=%s, settled=TRUE WHERE result_key=%s AND NOT settled",
            (float(billed_seconds), result_key),
        )

    def release(self, result_key: str) -> None:
        self._write("DELETE FROM budget_use WHERE result_key=%s AND NOT settled", (result_key,))

    def budget_use(self, scope: str, period: str) -> float:
        return self._budget_sum(scope, period, "")

    def budget_reserved(self, scope: str, period: str) -> float:
        return self._budget_sum(scope, period, " AND NOT settled")

    def _budget_sum(self, scope: str, period: str, extra: str) -> float:
        rows = self._query(
            "SELECT COALESCE(SUM(seconds), 0) AS total FROM budget_use WHERE scope=%s AND period=%s" + extra,
            (scope, period),
        )
        return float(rows[0]["total"])

    def open_reservations(self) -> list[str]:
        rows = self._query("SELECT DISTINCT result_key FROM budget_use WHERE NOT settled ORDER BY result_key")
        return [str(row["result_key"]) for row in rows]
