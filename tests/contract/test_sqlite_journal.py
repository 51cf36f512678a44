"""The SQLite journal held to the journal contract (``journal_contract.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dropscribe.adapters.journal import SqliteJournal
from dropscribe.core.errors import StateFullError
from dropscribe.core.ports.claims import Claims, ClaimsJournal
from dropscribe.core.ports.journal import Journal
from tests.contract.claims_contract import ClaimsContract, OpenClaims
from tests.contract.journal_contract import JournalContract, OpenJournal
from tests.support.disks import fill, small_tmpfs

_: type[Claims] = SqliteJournal


class TestSqliteJournal(JournalContract, ClaimsContract):
    @pytest.fixture
    def open_journal(self, tmp_path: Path) -> OpenJournal:
        def opened() -> Journal:
            return SqliteJournal(tmp_path / "state" / "journal.db")

        return opened

    @pytest.fixture
    def open_claims(self, tmp_path: Path) -> OpenClaims:
        def opened() -> ClaimsJournal:
            return SqliteJournal(tmp_path / "state" / "journal.db")

        return opened


# A full filesystem is particular to a local file: mounting a small one needs root (as CI has).


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "small", "1m") as target:
        yield target


def test_a_full_filesystem_stops_writes_until_there_is_room(small_fs: Path) -> None:
    journal = SqliteJournal(small_fs / "journal.db")
    try:
        job = journal.start_job("/srv/inbox", "a.wav", sha256="aa", size=1, dev=1, ino=1, mtime_ns=1,
                                result_key="rk", meta={})  # fmt: skip
        filler = fill(small_fs)
        with pytest.raises(StateFullError):
            journal.store_chunk_result("rk", 0, {"text": "x" * (2 << 20)})  # more than the whole filesystem
        assert not journal.writable()
        filler.unlink()
        assert journal.writable()
        journal.store_result("rk", {"text": "after"})
        assert journal.get(job.id) == job
        assert journal.result("rk") == {"text": "after"}
    finally:
        journal.close()


def test_opening_on_a_full_filesystem_waits_for_the_first_call(small_fs: Path) -> None:
    filler = fill(small_fs)
    journal = SqliteJournal(small_fs / "journal.db")  # opening never fails for lack of space
    try:
        with pytest.raises(StateFullError):
            journal.set_meta("paused", "x")
        filler.unlink()
        journal.set_meta("paused", "x")
        assert journal.get_meta("paused") == "x"
    finally:
        journal.close()
