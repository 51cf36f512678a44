"""The request limiters that several processes keep together, on real journals: two journal objects on
one SQLite file stand for two processes, and the PostgreSQL server is really stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from dropscribe.adapters.journal.postgres import PostgresJournal
from dropscribe.adapters.journal.sqlite import SqliteJournal
from dropscribe.adapters.shared_ratelimit import SharedAdaptiveRateLimiter
from dropscribe.core.errors import StateFullError
from tests.support.postgres import shared_server

POOL = "dashscope:https://dashscope.example"


def test_what_one_process_learns_of_the_quota_the_other_knows(tmp_path: Path) -> None:
    """A refusal answered to one process is measured on the sends of both, and holds both back."""
    journals = [SqliteJournal(tmp_path / "state.db") for _ in range(2)]
    a, b = (SharedAdaptiveRateLimiter(j, POOL, 1000, holder=h) for j, h in zip(journals, "ab", strict=True))
    try:
        for limiter in (a, b, a, b, a):  # 60 a minute at first: one a second, whoever sends
            limiter.acquire()
            limiter.release()
        a.report(429, "Throttling.RateQuota", None, sent_at=0.0)  # the fifth: four were let through
        assert b.snapshot()["limit_found"] is None  # b has not looked since
        b.report(200, None, None, sent_at=0.0)

        assert (a.snapshot()["limit_found"], b.snapshot()["limit_found"]) == (4, 4)
        assert b.snapshot()["requests_per_minute"] < 4
        assert (b.snapshot()["throttled"], b.snapshot()["accepted"]) == (1, 1)
    finally:
        for journal in journals:
            journal.close()


def test_an_answer_while_the_database_is_away_is_not_lost_to_the_rate() -> None:
    """Reporting an answer never fails the request it answers; asking to send does, holding no slot."""
    server = shared_server()
    journal = PostgresJournal(server.url(server.new_database()), timeout_s=2)
    limiter = SharedAdaptiveRateLimiter(journal, POOL, 1000, concurrency=1, holder="a", lease_s=60)
    try:
        limiter.acquire()
        server.stop()
        try:
            with structlog.testing.capture_logs() as logs:
                limiter.report(200, None, None, sent_at=0.0)
            assert [e["event"] for e in logs][-1] == "rate_answer_unrecorded"
            limiter.release()  # the slot is noted to be freed once the journal answers
            with pytest.raises(StateFullError):
                limiter.acquire()
        finally:
            server.start()
        limiter.acquire()  # the one slot is free again, and the rate lets it go
        limiter.release()
    finally:
        journal.close()
