"""The real service with its journal in PostgreSQL (``state.url``), on a real server started for the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from dropscribe.adapters.journal.postgres import PostgresJournal
from dropscribe.emulator import Emulator, Fault
from tests.support.audio import make_tone
from tests.support.cli import Ran, run_cli
from tests.support.postgres import PASSWORD, PostgresServer, shared_server
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for

PASSWORD_ENV = "DROPSCRIBE_TEST_PG_PASSWORD"


@pytest.fixture
def server() -> PostgresServer:
    return shared_server()


@pytest.fixture
def database(layout: Layout, server: PostgresServer) -> str:
    """A fresh database, named in the layout's config; the password comes from the environment."""
    db = server.new_database()
    layout.data["state"] = {
        "path": str(layout.state), "url": server.url(db, password=False), "password_env": PASSWORD_ENV,
        "staging": str(layout.root / "staging"),
    }  # fmt: skip
    layout.write()
    return db


def start(layout: Layout) -> ServiceProcess:
    return ServiceProcess(layout.config, env={PASSWORD_ENV: PASSWORD}).wait_started()


def command(layout: Layout, *args: str) -> Ran:
    return run_cli(*args, "-c", str(layout.config), env={PASSWORD_ENV: PASSWORD})


def done(layout: Layout, *names: str) -> bool:
    return all(
        (layout.done / name).exists() and (layout.done / f"{name[:-4]}.txt").exists() for name in names
    )


def test_files_are_transcribed_with_the_journal_in_postgres(
    layout: Layout,
    database: str,
    server: PostgresServer,
    services: list[ServiceProcess],
) -> None:
    make_tone(layout.inbox / "one.wav", seconds=1.0, fmt="wav")
    make_tone(layout.inbox / "two.wav", seconds=1.5, fmt="wav", freq=660.0)
    service = start(layout)
    services.append(service)
    wait_for(lambda: done(layout, "one.wav", "two.wav"))
    assert layout.failed_files() == []
    assert not layout.state.exists()  # no SQLite journal beside the status file
    journal = PostgresJournal(server.url(database))
    try:
        assert journal.counts() == {"done": 2}
        assert sorted(j.relpath for j in journal.recent("done")) == ["one.wav", "two.wav"]
    finally:
        journal.close()
    assert PASSWORD not in service.output()


def test_status_and_explain_read_the_same_journal(
    layout: Layout, database: str, services: list[ServiceProcess]
) -> None:
    make_tone(layout.inbox / "one.wav", seconds=1.0, fmt="wav")
    services.append(start(layout))
    wait_for(lambda: done(layout, "one.wav"))
    status = command(layout, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"] == {"done": 1}
    explained = command(layout, "explain", str(layout.done / "one.wav"), "--json")
    assert explained.returncode == 0, explained.stderr
    document = json.loads(explained.stdout)
    (entry,) = document["files"]
    assert (entry["relpath"], entry["state"]) == ("one.wav", "done")
    assert document["journal"].startswith("postgresql://127.0.0.1:")
    assert PASSWORD not in explained.stdout + status.stdout


def test_a_database_restart_mid_run_loses_nothing_and_pays_nothing_twice(
    layout: Layout, database: str, server: PostgresServer,
    emulator: Emulator, services: list[ServiceProcess],
) -> None:  # fmt: skip
    service = start(layout)
    services.append(service)
    make_tone(layout.inbox / "before.wav", seconds=1.0, fmt="wav")
    wait_for(lambda: done(layout, "before.wav"))

    # the next answer takes a while; the database restarts while it is on its way
    emulator.add_fault(Fault(delay_s=3.0, times=1))
    make_tone(layout.inbox / "during.wav", seconds=1.2, fmt="wav", freq=550.0)
    wait_for(lambda: len(recognitions(emulator)) == 2)
    server.restart()
    make_tone(layout.inbox / "after.wav", seconds=1.4, fmt="wav", freq=770.0)
    wait_for(lambda: done(layout, "during.wav", "after.wav"), timeout=60)

    assert layout.failed_files() == []
    assert service.proc.poll() is None
    assert len(recognitions(emulator)) == 3  # each file recognized once
    journal = PostgresJournal(server.url(database))
    try:
        assert journal.counts() == {"done": 3}
    finally:
        journal.close()


def recognitions(emulator: Emulator) -> list[dict[str, Any]]:
    return [r for r in emulator.requests() if "generation" in str(r.get("path", ""))]


def test_a_bad_url_is_refused_by_check_without_showing_it(layout: Layout) -> None:
    layout.data["state"] = {"path": str(layout.state), "url": "mysql://app:hunter22@db/journal"}
    layout.write()
    checked = command(layout, "check")
    assert checked.returncode == 78
    assert "state.url" in checked.stdout + checked.stderr
    assert "hunter22" not in checked.stdout + checked.stderr


def test_a_password_variable_that_is_not_set_stops_the_start(layout: Layout, database: str) -> None:
    run = subprocess.run([sys.executable, "-m", "dropscribe", "run", "-c", str(layout.config)],
                         capture_output=True, text=True, env={**os.environ, "DASHSCOPE_API_KEY": API_KEY},
                         timeout=60, check=False)  # fmt: skip
    assert run.returncode == 78
    assert PASSWORD_ENV in run.stdout + run.stderr
