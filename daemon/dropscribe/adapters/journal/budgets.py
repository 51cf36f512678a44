"""Budget reservations of the SQLite journal, mixed into :class:`SqliteJournal`.

A recognition reserves its audio seconds in every (scope, period) it counts against before anything is
sent; the rows become settled (the billed seconds) once its answer is stored, or are deleted when it
ends without one. Reserving again for the same result key replaces its open reservation, so a crash
between a reservation and its call, then a new try, never counts the file twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any


class BudgetsMixin:
    """Needs the host class's ``_tx()`` (one committed transaction) and ``_query()``."""

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    def reserve(
        self, result_key: str, scopes_periods: Sequence[tuple[str, str]], seconds: float, at: float
    ) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM budget_use WHERE result_key=? AND settled=0", (result_key,))
            db.executemany(
                "INSERT INTO budget_use (result_key, scope, period, seconds, settled, at)"
                " VALUES (?,?,?,?,0,?)",
                [(result_key, scope, period, float(seconds), at) for scope, period in scopes_periods],
            )

    def settle(self, result_key: str, billed_seconds: float) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE budget_use SET seconds=?, settled=1 WHERE result_key=? AND settled=0",
                (float(billed_seconds), result_key),
            )

    def release(self, result_key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM budget_use WHERE result_key=? AND settled=0", (result_key,))

    def budget_use(self, scope: str, period: str) -> float:
        rows = self._query(
            "SELECT TOTAL(seconds) FROM budget_use WHERE scope=? AND period=?", (scope, period)
        )
        return float(rows[0][0])

    def budget_reserved(self, scope: str, period: str) -> float:
        rows = self._query(
            "SELECT TOTAL(seconds) FROM budget_use WHERE scope=? AND period=? AND settled=0", (scope, period)
        )
        return float(rows[0][0])

    def open_reservations(self) -> list[str]:
        rows = self._query("SELECT DISTINCT result_key FROM budget_use WHERE settled=0 ORDER BY result_key")
        return [str(row[0]) for row in rows]
