"""Claims, shared slots, request spacing and hosts in the PostgreSQL journal; mixed into PostgresJournal.

Several hosts share the database, so every lease time is the server's ``clock_timestamp()`` (one clock
for all), as seconds since the epoch. Each method is one statement, so one round trip and atomic on its
own: a claim is an upsert that only takes over an expired lease or the holder's own, and a slot is the
classic ``FOR UPDATE SKIP LOCKED`` pick. The one exception is the first :meth:`take_slot` of a pool and
size in this process, which first makes sure the pool's slot rows exist, and :meth:`shared_state`, a
read-change-write under the row's lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from dropscribe.adapters.journal.claims_sqlite import claim_record, host_record
from dropscribe.adapters.journal.postgres_connections import Connection
from dropscribe.adapters.journal.postgres_paid import _Host
from dropscribe.adapters.journal.rows import path_text, path_value
from dropscribe.core.errors import LeaseLostError
from dropscribe.core.hosts import ClaimRecord, HostRecord

T = TypeVar("T")

# clock_timestamp(), not now(): a statement that waited for a row lock judges leases at the time it acts
NOW = "extract(epoch FROM clock_timestamp())::double precision"

# the claim ``token`` on the file of the job being updated still runs; FOR SHARE makes a concurrent
# take-over wait until this statement has committed (or see the take-over and refuse)
FENCE = (
    "EXISTS (SELECT 1 FROM claims c WHERE c.token=%s AND c.inbox=jobs.inbox AND c.relpath=jobs.relpath"
    f" AND c.expires_at > {NOW} FOR SHARE)"
)


class PgClaimsMixin(_Host):
    # the (pool, size) whose slot rows this journal object has made sure of; set by the host class
    _slot_pools: set[tuple[str, int]]

    # file claims -------------------------------------------------------------------------------

    def claim(self, inbox: str, relpath: str, *, holder: str, lease_s: float) -> int | None:
        rows = self._query(
            "INSERT INTO claims (inbox, relpath, holder, token, expires_at)"
            f" VALUES (%s, %s, %s, nextval('claim_tokens'), {NOW} + %s)"
            " ON CONFLICT (inbox, relpath) DO UPDATE SET holder=EXCLUDED.holder, token=EXCLUDED.token,"
            " expires_at=EXCLUDED.expires_at"
            f" WHERE claims.expires_at <= {NOW} OR claims.holder = EXCLUDED.holder"
            " RETURNING token",
            (path_value(inbox), path_value(relpath), holder, lease_s),
        )
        return int(rows[0]["token"]) if rows else None

    def holds(self, token: int, *, lease_s: float) -> bool:
        rows = self._query(
            f"UPDATE claims SET expires_at = {NOW} + %s WHERE token=%s AND expires_at > {NOW}"
            " RETURNING token",
            (lease_s, token),
        )
        return bool(rows)

    def renew(self, holder: str, *, lease_s: float) -> set[int]:
        # data-modifying CTEs run whether or not they are read: one statement, one transaction
        rows = self._query(
            f"WITH seen AS (UPDATE hosts SET seen_at = {NOW} WHERE holder=%s),"
            f" slots_kept AS (UPDATE slots SET expires_at = {NOW} + %s"
            f" WHERE holder=%s AND expires_at > {NOW})"
            f" UPDATE claims SET expires_at = {NOW} + %s WHERE holder=%s AND expires_at > {NOW}"
            " RETURNING token",
            (holder, lease_s, holder, lease_s, holder),
        )
        return {int(r["token"]) for r in rows}

    def release_claim(self, token: int) -> None:
        self._write("DELETE FROM claims WHERE token=%s", (token,))

    def claims(self) -> list[ClaimRecord]:
        rows = self._query(
            f"SELECT inbox, relpath, holder, token, expires_at - {NOW} AS expires_in_s FROM claims"
            " ORDER BY expires_at, token"
        )
        return [claim_record(r, float(r["expires_in_s"])) for r in rows]

    def _lease_lost(self, job_id: int) -> LeaseLostError:
        """The refusal of a fenced update that changed nothing, naming the job's file."""
        rows = self._query("SELECT inbox, relpath FROM jobs WHERE id=%s", (job_id,))
        if not rows:
            raise LookupError(f"no job {job_id} in the journal")
        return LeaseLostError(path_text(rows[0]["inbox"]), path_text(rows[0]["relpath"]))

    def _fence_in(self, db: Connection, job_id: int, token: int) -> None:
        """Inside the caller's transaction: the claim stays locked until it commits."""
        held = db.execute(f"SELECT 1 FROM jobs WHERE id=%s AND {FENCE}", (job_id, token)).fetchall()
        if not held:
            raise self._lease_lost(job_id)

    # shared slots and request spacing -----------------------------------------------------------

    def take_slot(self, pool: str, size: int, *, holder: str, lease_s: float) -> int | None:
        self._slot_rows(pool, size)
        rows = self._query(
            f"UPDATE slots SET holder=%s, expires_at = {NOW} + %s WHERE (pool, slot) = ("
            "SELECT pool, slot FROM slots WHERE pool=%s AND slot < %s"
            f" AND (holder IS NULL OR expires_at <= {NOW}) ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED)"
            " RETURNING slot",
            (holder, lease_s, pool, size),
        )
        return int(rows[0]["slot"]) if rows else None

    def _slot_rows(self, pool: str, size: int) -> None:
        """The pool's rows 0 … size-1 exist (free unless held), so a slot is picked by locking a row."""
        if (pool, size) in self._slot_pools:
            return
        self._write(
            "INSERT INTO slots (pool, slot) SELECT %s, n FROM generate_series(0, %s - 1) AS n"
            " ON CONFLICT (pool, slot) DO NOTHING",
            (pool, size),
        )
        self._slot_pools.add((pool, size))

    def free_slot(self, pool: str, slot: int, *, holder: str) -> None:
        self._write(
            "UPDATE slots SET holder=NULL, expires_at=0 WHERE pool=%s AND slot=%s AND holder=%s",
            (pool, slot, holder),
        )

    def next_request_in(self, pool: str, interval_s: float) -> float:
        # the reserved send time is max(next_at, now); next_at moves one interval past it
        rows = self._query(
            f"INSERT INTO rate_pools AS r (pool, next_at) VALUES (%s, {NOW} + %s)"
            f" ON CONFLICT (pool) DO UPDATE SET next_at = GREATEST(r.next_at, {NOW}) + %s"
            f" RETURNING r.next_at - %s - {NOW} AS wait",
            (pool, interval_s, interval_s, interval_s),
        )
        return max(0.0, float(rows[0]["wait"]))

    def shared_state(self, name: str, change: Callable[[str | None, float], tuple[str, T]]) -> T:
        with self._tx() as db:
            db.execute(
                "INSERT INTO shared_states (name, state) VALUES (%s, NULL) ON CONFLICT (name) DO NOTHING",
                (name,),
            )
            row = db.execute(
                f"SELECT state, {NOW} AS now FROM shared_states WHERE name=%s FOR UPDATE", (name,)
            ).fetchone()
            assert row is not None  # inserted above, and never deleted
            text, result = change(row["state"], float(row["now"]))
            db.execute("UPDATE shared_states SET state=%s WHERE name=%s", (text, name))
        return result

    # the processes sharing the journal -----------------------------------------------------------

    def host_seen(self, holder: str, *, hostname: str, pid: int, started_at: float) -> None:
        self._write(
            "INSERT INTO hosts (holder, hostname, pid, started_at, seen_at, stopped)"
            f" VALUES (%s, %s, %s, %s, {NOW}, FALSE)"
            " ON CONFLICT (holder) DO UPDATE SET hostname=EXCLUDED.hostname, pid=EXCLUDED.pid,"
            " started_at=EXCLUDED.started_at, seen_at=EXCLUDED.seen_at, stopped=FALSE",
            (holder, hostname, pid, started_at),
        )

    def host_stopped(self, holder: str) -> None:
        self._write(
            "WITH dropped AS (DELETE FROM claims WHERE holder=%s),"
            " freed AS (UPDATE slots SET holder=NULL, expires_at=0 WHERE holder=%s)"
            f" UPDATE hosts SET stopped=TRUE, seen_at={NOW} WHERE holder=%s",
            (holder, holder, holder),
        )

    def hosts(self, *, within_s: float) -> list[HostRecord]:
        rows = self._query(
            f"SELECT h.*, GREATEST({NOW} - seen_at, 0) AS seen_ago_s FROM hosts h"
            f" WHERE seen_at >= {NOW} - %s OR EXISTS (SELECT 1 FROM claims c WHERE c.holder=h.holder)"
            " ORDER BY seen_at DESC, holder",
            (within_s,),
        )
        return [host_record(r, float(r["seen_ago_s"])) for r in rows]
