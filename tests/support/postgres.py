"""A real PostgreSQL server for the tests: one per test session, a fresh database per test.

The cluster lives in a temp folder, listens on 127.0.0.1 on a free port and runs without fsync (the
tests prove behaviour, not durability of the test machine). ``initdb`` refuses to run as root, so as
root the server runs as ``nobody``. Tests are skipped, saying why, only when the binaries are absent.

Two roles: ``postgres`` (trusted, for the tests' own setup) and ``dropscribe``, which must give its
password, as a deployment's would.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

PASSWORD = "pg-test-Secret-7f3a"
_RUN_AS = "nobody"


def _binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: Debian keeps them off PATH, under its version's folder."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    on_path = shutil.which("initdb")
    if on_path:
        found.append(Path(on_path).resolve().parent)
    usable = [d for d in found if (d / "pg_ctl").exists()]
    return (
        max(usable, key=lambda d: [int(n) for n in d.parent.name.split(".") if n.isdigit()])
        if usable
        else None
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A throwaway cluster; ``url(db)`` is how the service reaches one of its databases."""

    def __init__(self, bindir: Path, options: str = "") -> None:
        self.bindir = bindir
        self.options = options  # further server settings, e.g. "-c shared_preload_libraries=..."
        self.root = Path(tempfile.mkdtemp(prefix="dropscribe-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self._names = itertools.count(1)
        self._lock = threading.Lock()
        self._user = pwd.getpwnam(_RUN_AS) if os.geteuid() == 0 else None
        if self._user is not None:
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")  # fmt: skip
        with open(self.data / "pg_hba.conf", "w") as hba:
            hba.write("local all all trust\nhost all postgres 127.0.0.1/32 trust\n"
                      "host all all 127.0.0.1/32 scram-sha-256\n")  # fmt: skip
        self.start()
        self.sql(f"CREATE ROLE dropscribe LOGIN CREATEDB PASSWORD '{PASSWORD}'")

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        user = self._user

        def drop_root() -> None:
            if user is not None:
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)

        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(self.root)}
        done = subprocess.run([str(self.bindir / tool), *args], capture_output=True, text=True, env=env,
                              preexec_fn=drop_root, cwd=self.root, timeout=120, check=False)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
            )
        return done

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
                   " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
                   f" {self.options}")  # fmt: skip
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start"
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def sql(self, statement: str, db: str = "postgres") -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=db, autocommit=True
        ) as conn:
            cur = conn.execute(statement.encode())
            return cur.fetchall() if cur.description else []

    def rows(self, statement: str, db: str) -> list[dict[str, Any]]:
        """The rows of one statement on ``db`` by column name, read as the administrator."""
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=db, autocommit=True,
            row_factory=dict_row,
        ) as conn:  # fmt: skip
            return list(conn.execute(statement.encode()).fetchall())

    def url(self, db: str, *, password: bool = True) -> str:
        secret = f":{PASSWORD}" if password else ""
        return f"postgresql://dropscribe{secret}@127.0.0.1:{self.port}/{db}"

    def new_database(self) -> str:
        """An empty database owned by the service's role; returns its name."""
        with self._lock:
            name = f"journal_{next(self._names)}"
        self.sql(f"CREATE DATABASE {name} OWNER dropscribe TEMPLATE template0 STRATEGY FILE_COPY")
        return name

    def terminate(self, db: str) -> int:
        """End every session on ``db`` as an administrator would; returns how many there were."""
        rows = self.sql(
            f"SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = '{db}'"
            " AND pid <> pg_backend_pid()"
        )
        return len(rows)

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def private_server(options: str = "") -> PostgresServer:
    """A server of one's own (to restart, or to start with other settings); ``destroy()`` it after use."""
    bindir = _binaries()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no pg_ctl on PATH or in /usr/lib/postgresql)")
    return PostgresServer(bindir, options)


_server: PostgresServer | None = None
_server_lock = threading.Lock()


def shared_server() -> PostgresServer:
    """The session's server, started on first use and removed when the test process exits."""
    global _server
    with _server_lock:
        if _server is None:
            bindir = _binaries()
            if bindir is None:
                pytest.skip("PostgreSQL is not installed (no pg_ctl on PATH or in /usr/lib/postgresql)")
            try:
                import psycopg  # noqa: F401
            except ImportError:
                pytest.skip("the psycopg driver is not installed (pip install '.[postgres]')")
            _server = PostgresServer(bindir)
            atexit.register(_server.destroy)
        return _server
