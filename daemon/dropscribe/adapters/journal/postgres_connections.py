"""Connections to the journal's PostgreSQL database: a few kept open, any broken one dropped.

Each caller (a worker thread, the loop, a web request) borrows a connection of its own for one port
method and gives it back; at most ``keep`` idle ones are kept. A connection found broken is closed rather
than returned, and an idle one the server has ended meanwhile (a restart, an administrator) is noticed
before it is used, without a round trip, so after a restart the next call simply connects again and no
statement is lost on a dead session. There are no background threads: nothing reconnects, or gives up
reconnecting, behind the service's back.

Every failure to reach the database (refused, reset, shut down by its administrator, its disk full)
becomes :class:`JournalUnreachableError`, a ``StateFullError``: nothing can be recorded, so nothing may be
done, and the service waits, probing with a write, until one commits again.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
import structlog
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from dropscribe.core.errors import JournalUnreachableError

log = structlog.get_logger(__name__)

Connection = psycopg.Connection[dict[str, Any]]


def describe(url: str) -> str:
    """The database as it may be shown in logs and messages: host, port and name, never a password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql (unparsable URL)"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    return f"postgresql://{host}:{port}/{parts.get('dbname') or ''}"


def _ended_by_server(conn: Connection) -> bool:
    """An idle session has nothing to read unless the server ended it (its farewell, then EOF)."""
    if conn.closed:
        return True
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    return bool(readable)


class Connections:
    """Borrowed connections in autocommit mode, rows as dicts; thread-safe."""

    def __init__(
        self, url: str, *, password: str | None = None, keep: int = 4, timeout_s: float = 10
    ) -> None:
        self.where = describe(url)
        self._url = url
        self._extra: dict[str, Any] = {
            "connect_timeout": max(1, int(timeout_s)),
            "application_name": "dropscribe",
        }
        if password is not None:
            self._extra["password"] = password
        self._keep = keep
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def _connect(self) -> Connection:
        return psycopg.connect(self._url, autocommit=True, row_factory=dict_row, **self._extra)

    @contextmanager
    def borrow(self) -> Iterator[Connection]:
        """A live connection for one port method; failing to reach the database is JournalUnreachableError."""
        with self._unreachable_is_an_error():
            with self._lock:
                if self._closed:
                    raise psycopg.InterfaceError("the journal is closed")
                conn = self._idle.pop() if self._idle else None
            if conn is not None and _ended_by_server(conn):
                with suppress(psycopg.Error):
                    conn.close()
                conn = None
            if conn is None:
                conn = self._connect()
            try:
                yield conn
            finally:
                self._give_back(conn)

    def _give_back(self, conn: Connection) -> None:
        healthy = not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with self._lock:
            if healthy and not self._closed and len(self._idle) < self._keep:
                self._idle.append(conn)
                return
        with suppress(psycopg.Error):
            conn.close()

    @contextmanager
    def _unreachable_is_an_error(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            # the idle ones shared the same fate (a restart closes every session): drop them too
            self.drop_idle()
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning("journal_unreachable", database=self.where, error=reason)
            raise JournalUnreachableError(
                f"the journal's database {self.where} cannot be reached: {reason}"
            ) from exc

    def drop_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            with suppress(psycopg.Error):
                conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.drop_idle()
