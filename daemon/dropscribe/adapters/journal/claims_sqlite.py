"""Claims, shared slots, request spacing and hosts in the SQLite journal, mixed into :class:`SqliteJournal`.

A SQLite journal lives on one host, so lease times are that host's ``time.time()``. Every method is one
``BEGIN IMMEDIATE`` transaction: processes sharing the file take turns, so a check and the change it
allows cannot be separated by another process's change.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from dropscribe.adapters.journal.rows import Row, path_text, path_value
from dropscribe.core.errors import LeaseLostError
from dropscribe.core.hosts import ClaimRecord, HostRecord

T = TypeVar("T")


def claim_record(row: Row, expires_in_s: float) -> ClaimRecord:
    return ClaimRecord(
        inbox=path_text(row["inbox"]), relpath=path_text(row["relpath"]), holder=row["holder"],
        token=int(row["token"]), expires_in_s=expires_in_s,
    )  # fmt: skip


def host_record(row: Row, seen_ago_s: float) -> HostRecord:
    return HostRecord(
        holder=row["holder"], hostname=row["hostname"], pid=int(row["pid"]),
        started_at=float(row["started_at"]), seen_ago_s=seen_ago_s, stopped=bool(row["stopped"]),
    )  # fmt: skip


class ClaimsMixin:
    """Needs the host class's ``_tx()`` (one committed transaction) and ``_query()``."""

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    # file claims -------------------------------------------------------------------------------

    def claim(self, inbox: str, relpath: str, *, holder: str, lease_s: float) -> int | None:
        now = time.time()
        key = (path_value(inbox), path_value(relpath))
        with self._tx() as db:
            row = db.execute(
                "SELECT holder, expires_at FROM claims WHERE inbox=? AND relpath=?", key
            ).fetchone()
            if row is not None and row["expires_at"] > now and row["holder"] != holder:
                return None
            token = int(db.execute("UPDATE claim_tokens SET last=last+1 RETURNING last").fetchone()[0])
            db.execute(
                "INSERT INTO claims (inbox, relpath, holder, token, expires_at) VALUES (?,?,?,?,?)"
                " ON CONFLICT (inbox, relpath) DO UPDATE SET holder=excluded.holder,"
                " token=excluded.token, expires_at=excluded.expires_at",
                (*key, holder, token, now + lease_s),
            )
        return token

    def holds(self, token: int, *, lease_s: float) -> bool:
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "UPDATE claims SET expires_at=? WHERE token=? AND expires_at>?", (now + lease_s, token, now)
            )
            return cur.rowcount > 0

    def renew(self, holder: str, *, lease_s: float) -> set[int]:
        now = time.time()
        with self._tx() as db:
            kept = db.execute(
                "UPDATE claims SET expires_at=? WHERE holder=? AND expires_at>? RETURNING token",
                (now + lease_s, holder, now),
            ).fetchall()
            db.execute(
                "UPDATE slots SET expires_at=? WHERE holder=? AND expires_at>?", (now + lease_s, holder, now)
            )
            db.execute("UPDATE hosts SET seen_at=? WHERE holder=?", (now, holder))
        return {int(row[0]) for row in kept}

    def release_claim(self, token: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM claims WHERE token=?", (token,))

    def claims(self) -> list[ClaimRecord]:
        now = time.time()
        rows = self._query("SELECT * FROM claims ORDER BY expires_at, token")
        return [claim_record(r, float(r["expires_at"]) - now) for r in rows]

    def _fence(self, db: sqlite3.Connection, job_id: int, token: int | None) -> None:
        """Inside the caller's transaction: refuse unless ``token`` is this job's file's running claim."""
        if token is None:
            return
        row = db.execute(
            "SELECT j.inbox, j.relpath, c.expires_at FROM jobs j LEFT JOIN claims c"
            " ON c.inbox=j.inbox AND c.relpath=j.relpath AND c.token=? WHERE j.id=?",
            (token, job_id),
        ).fetchone()
        if row is None:
            raise LookupError(f"no job {job_id} in the journal")
        if row["expires_at"] is None or row["expires_at"] <= time.time():
            raise LeaseLostError(path_text(row["inbox"]), path_text(row["relpath"]))

    # shared slots and request spacing -----------------------------------------------------------

    def take_slot(self, pool: str, size: int, *, holder: str, lease_s: float) -> int | None:
        now = time.time()
        with self._tx() as db:
            held = {
                int(r[0])
                for r in db.execute(
                    "SELECT slot FROM slots WHERE pool=? AND slot<? AND holder IS NOT NULL AND expires_at>?",
                    (pool, size, now),
                )
            }
            free = next((n for n in range(size) if n not in held), None)
            if free is None:
                return None
            db.execute(
                "INSERT INTO slots (pool, slot, holder, expires_at) VALUES (?,?,?,?)"
                " ON CONFLICT (pool, slot) DO UPDATE SET holder=excluded.holder,"
                " expires_at=excluded.expires_at",
                (pool, free, holder, now + lease_s),
            )
        return free

    def free_slot(self, pool: str, slot: int, *, holder: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE slots SET holder=NULL, expires_at=0 WHERE pool=? AND slot=? AND holder=?",
                (pool, slot, holder),
            )

    def next_request_in(self, pool: str, interval_s: float) -> float:
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "INSERT INTO rate_pools (pool, next_at) VALUES (?, ?+?)"
                " ON CONFLICT (pool) DO UPDATE SET next_at=MAX(next_at, ?)+? RETURNING next_at",
                (pool, now, interval_s, now, interval_s),
            ).fetchone()
        return max(0.0, float(row[0]) - interval_s - now)

    def shared_state(self, name: str, change: Callable[[str | None, float], tuple[str, T]]) -> T:
        with self._tx() as db:
            row = db.execute("SELECT state FROM shared_states WHERE name=?", (name,)).fetchone()
            text, result = change(None if row is None else str(row[0]), time.time())
            db.execute(
                "INSERT INTO shared_states (name, state) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET state=excluded.state",
                (name, text),
            )
        return result

    # the processes sharing the journal -----------------------------------------------------------

    def host_seen(self, holder: str, *, hostname: str, pid: int, started_at: float) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO hosts (holder, hostname, pid, started_at, seen_at, stopped) VALUES (?,?,?,?,?,0)"
                " ON CONFLICT (holder) DO UPDATE SET hostname=excluded.hostname, pid=excluded.pid,"
                " started_at=excluded.started_at, seen_at=excluded.seen_at, stopped=0",
                (holder, hostname, pid, started_at, time.time()),
            )

    def host_stopped(self, holder: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM claims WHERE holder=?", (holder,))
            db.execute("UPDATE slots SET holder=NULL, expires_at=0 WHERE holder=?", (holder,))
            db.execute("UPDATE hosts SET stopped=1, seen_at=? WHERE holder=?", (time.time(), holder))

    def hosts(self, *, within_s: float) -> list[HostRecord]:
        now = time.time()
        rows = self._query(
            "SELECT * FROM hosts h WHERE seen_at>=?"
            " OR EXISTS (SELECT 1 FROM claims c WHERE c.holder=h.holder) ORDER BY seen_at DESC, holder",
            (now - within_s,),
        )
        return [host_record(r, max(0.0, now - float(r["seen_at"]))) for r in rows]
