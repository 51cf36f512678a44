"""The PostgreSQL journal held to the journal contract (``journal_contract.py``), on a real server.

Beside the contract: what is particular to a database reached over the network (its sessions ended,
the server down), and the schema version kept in the database.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from dropscribe.adapters.journal.postgres import JournalUnreachableError, PostgresJournal
from dropscribe.core.errors import JournalVersionError, StateFullError
from dropscribe.core.ports.claims import Claims, ClaimsJournal
from dropscribe.core.ports.journal import Journal
from tests.contract.claims_contract import ClaimsContract, OpenClaims
from tests.contract.journal_contract import JournalContract, OpenJournal, take
from tests.support.postgres import PASSWORD, PostgresServer, shared_server

_: type[Journal] = PostgresJournal
_claims: type[Claims] = PostgresJournal


@pytest.fixture
def server() -> PostgresServer:
    return shared_server()


class TestPostgresJournal(JournalContract, ClaimsContract):
    @pytest.fixture
    def url(self, server: PostgresServer) -> str:
        return server.url(server.new_database())

    @pytest.fixture
    def open_journal(self, url: str) -> OpenJournal:
        def opened() -> Journal:
            return PostgresJournal(url)

        return opened

    @pytest.fixture
    def open_claims(self, url: str) -> OpenClaims:
        def opened() -> ClaimsJournal:
            return PostgresJournal(url)

        return opened


def test_sessions_ended_by_the_server_are_replaced_before_a_call_uses_them(
    server: PostgresServer,
) -> None:
    db = server.new_database()
    journal = PostgresJournal(server.url(db))
    try:
        job = take(journal, "a.wav")
        assert server.terminate(db) >= 1
        assert journal.get(job.id) == job
        journal.set_meta("after", "yes")
        assert journal.get_meta("after") == "yes"
    finally:
        journal.close()


def test_a_session_that_dies_during_a_call_fails_that_call_as_unreachable(
    server: PostgresServer,
) -> None:
    db = server.new_database()
    journal = PostgresJournal(server.url(db))
    killer = threading.Timer(0.3, server.terminate, (db,))
    try:
        journal.set_meta("slow", "x")
        killer.start()
        with pytest.raises(JournalUnreachableError) as raised:
            journal._write("SELECT pg_sleep(5)")  # a statement still running when its session ends
        assert isinstance(raised.value, StateFullError)  # the service pauses and probes until a write commits
        assert server.url(db) not in str(raised.value)
        assert journal.writable()
        assert journal.get_meta("slow") == "x"
    finally:
        killer.join()
        journal.close()


def test_a_server_that_is_down_pauses_every_call_until_it_is_back(server: PostgresServer) -> None:
    db = server.new_database()
    journal = PostgresJournal(server.url(db), timeout_s=2)
    try:
        journal.set_meta("paused", "before")
        server.stop()
        try:
            assert not journal.writable()
            with pytest.raises(StateFullError, match="cannot be reached"):
                journal.get_meta("paused")
        finally:
            server.start()
        assert journal.writable()
        assert journal.get_meta("paused") == "before"
    finally:
        journal.close()


def test_opening_while_the_server_is_down_waits_for_the_first_call(server: PostgresServer) -> None:
    db = server.new_database()
    server.stop()
    try:
        journal = PostgresJournal(server.url(db), timeout_s=2)  # opening never fails for it
        with pytest.raises(StateFullError):
            journal.set_meta("x", "1")
    finally:
        server.start()
    try:
        journal.set_meta("x", "1")  # the schema is created by the first call that reaches the server
        assert journal.get_meta("x") == "1"
    finally:
        journal.close()


def test_a_wrong_password_is_refused_without_showing_it(server: PostgresServer) -> None:
    url = server.url(server.new_database(), password=False)
    journal = PostgresJournal(url, password="not-the-password")
    try:
        with pytest.raises(StateFullError) as raised:
            journal.get_meta("x")
        assert "not-the-password" not in str(raised.value)
        assert "password authentication failed" in str(raised.value)
    finally:
        journal.close()
    journal = PostgresJournal(url, password=PASSWORD)
    try:
        assert journal.get_meta("x") is None
    finally:
        journal.close()


def test_a_database_written_by_a_newer_release_is_refused_untouched(server: PostgresServer) -> None:
    db = server.new_database()
    PostgresJournal(server.url(db)).close()
    server.sql("UPDATE journal_version SET version = 99", db=db)
    with pytest.raises(JournalVersionError, match="99"):
        PostgresJournal(server.url(db))
    assert server.sql("SELECT version FROM journal_version", db=db) == [(99,)]


def test_journals_opened_at_once_create_the_schema_once(server: PostgresServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    url = server.url(server.new_database())
    with ThreadPoolExecutor(4) as pool:
        journals = list(pool.map(lambda _n: PostgresJournal(url), range(4)))
    try:
        ids = {take(j, f"{n}.wav").id for n, j in enumerate(journals)}
        assert len(ids) == 4
    finally:
        for journal in journals:
            journal.close()


def test_concurrent_claims_of_the_same_files_are_won_exactly_once(server: PostgresServer) -> None:
    url = server.url(server.new_database())
    journals = [PostgresJournal(url), PostgresJournal(url)]
    files = [f"race/{n}.wav" for n in range(200)]
    start = threading.Barrier(8)

    def contend(worker: int) -> list[str]:
        journal = journals[worker % 2]
        start.wait()
        won = []
        order = files[worker * 25 :] + files[: worker * 25]  # every file once, each worker its own order
        for relpath in reversed(order) if worker % 2 else order:
            if journal.claim("/srv/inbox", relpath, holder=f"worker-{worker}", lease_s=60) is not None:
                won.append(relpath)
        return won

    try:
        with ThreadPoolExecutor(8) as pool:
            won = [relpath for winner in pool.map(contend, range(8)) for relpath in winner]
        assert sorted(won) == sorted(files)  # each file won once, by one worker, re-claims excluded
        assert len(journals[0].claims()) == 200
    finally:
        for journal in journals:
            journal.close()


def test_a_version_1_database_gains_claims_and_keeps_its_jobs(server: PostgresServer) -> None:
    import psycopg
    from psycopg.rows import dict_row

    from dropscribe.adapters.journal.postgres_schema import MIGRATIONS, found_version, migrate

    db = server.new_database()
    with psycopg.connect(server.url(db), autocommit=True, row_factory=dict_row) as conn:
        migrate(conn, db, MIGRATIONS[:1])
        assert found_version(conn) == 1
    journal = PostgresJournal(server.url(db))
    try:
        job = take(journal, "old.wav")
        assert journal.claim("/srv/inbox", "old.wav", holder="h1", lease_s=60) is not None
        assert journal.get(job.id) == job
    finally:
        journal.close()
    assert server.sql("SELECT version FROM journal_version", db=db) == [(MIGRATIONS[-1].version,)]


def test_concurrent_slots_and_request_times_are_never_handed_out_twice(server: PostgresServer) -> None:
    url = server.url(server.new_database())
    journals = [PostgresJournal(url), PostgresJournal(url)]
    start = threading.Barrier(8)
    interval = 10.0  # longer than the whole test: the n-th reservation waits about n intervals

    def contend(worker: int) -> tuple[list[int | None], list[float]]:
        journal = journals[worker % 2]
        start.wait()
        slots = [journal.take_slot("dashscope", 5, holder=f"w{worker}.{n}", lease_s=60) for n in range(4)]
        waits = [journal.next_request_in("dashscope", interval) for _n in range(4)]
        return slots, waits

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(contend, range(8)))
        slots = [slot for taken, _ in results for slot in taken]
        assert sorted(slot for slot in slots if slot is not None) == [0, 1, 2, 3, 4]
        waits = [wait for _, waited in results for wait in waited]
        assert sorted(round(wait / interval) for wait in waits) == list(range(32))
    finally:
        for journal in journals:
            journal.close()
