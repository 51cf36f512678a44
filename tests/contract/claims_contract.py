"""The claims contract: what every journal must do for processes that share it (``core.ports.claims``).

Mixed into a journal's contract class beside :class:`~tests.contract.journal_contract.JournalContract`;
the class provides ``open_claims``, opening the same store as ``open_journal`` (as a second process
would). Leases are short (0.3 s) where they must run out; their end is awaited on the journal's own
clock (a claim listed with a negative ``expires_in_s``), never slept through.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterator

import pytest

from dropscribe.core.errors import LeaseLostError
from dropscribe.core.ports.claims import Claims, ClaimsJournal
from dropscribe.core.ports.journal import Journal
from tests.contract.journal_contract import INBOX, ODD_NAME, take
from tests.support.service import wait_for

OpenClaims = Callable[[], ClaimsJournal]

SHORT = 0.3  # a lease that runs out during the test
LONG = 60.0  # one that does not


class ClaimsContract:
    @pytest.fixture
    def two(self, open_claims: OpenClaims) -> Iterator[tuple[Claims, Claims]]:
        """Two journal objects on the same store, as two processes have."""
        a, b = open_claims(), open_claims()
        yield a, b
        a.close()
        b.close()

    @pytest.fixture
    def claims(self, open_claims: OpenClaims) -> Iterator[Claims]:
        claims = open_claims()
        yield claims
        claims.close()

    def _let_run_out(self, claims: Claims, lease_s: float) -> None:
        """Wait until a lease of ``lease_s`` taken now has run out, on the journal's own clock."""
        token = claims.claim(INBOX, "clock", holder="clock", lease_s=lease_s)
        assert token is not None
        wait_for(lambda: [c.expires_in_s < 0 for c in claims.claims() if c.token == token] == [True], 10)
        claims.release_claim(token)

    def _claim_after_expiry(self, claims: Claims, relpath: str, holder: str) -> int:
        token = wait_for(lambda: claims.claim(INBOX, relpath, holder=holder, lease_s=LONG), timeout=10)
        assert isinstance(token, int)
        return token

    # file claims -------------------------------------------------------------------------------

    def test_one_claim_wins_while_its_lease_runs(self, two: tuple[Claims, Claims]) -> None:
        a, b = two
        first = a.claim(INBOX, ODD_NAME, holder="h1", lease_s=LONG)
        assert first is not None
        assert b.claim(INBOX, ODD_NAME, holder="h2", lease_s=LONG) is None
        assert a.claim(INBOX, ODD_NAME, holder="h2", lease_s=LONG) is None
        assert b.claim("/srv/other", ODD_NAME, holder="h2", lease_s=LONG) is not None  # another file
        again = b.claim(INBOX, ODD_NAME, holder="h1", lease_s=LONG)  # the holder itself claims again
        assert again is not None
        assert again > first
        assert not a.holds(first, lease_s=LONG)  # the old token no longer fences
        assert b.holds(again, lease_s=LONG)
        [mine] = [c for c in a.claims() if c.token == again]
        assert (mine.inbox, mine.relpath, mine.holder) == (INBOX, ODD_NAME, "h1")
        assert LONG - 5 < mine.expires_in_s <= LONG

    def test_an_expired_claim_goes_to_another_holder_with_a_greater_token(
        self, two: tuple[Claims, Claims]
    ) -> None:
        a, b = two
        first = a.claim(INBOX, "x.wav", holder="h1", lease_s=SHORT)
        assert first is not None
        taken = self._claim_after_expiry(b, "x.wav", "h2")
        assert taken > first
        assert not a.holds(first, lease_s=LONG)
        assert [(c.holder, c.token) for c in a.claims()] == [("h2", taken)]
        assert a.claim(INBOX, "x.wav", holder="h1", lease_s=LONG) is None

    def test_holds_extends_a_running_lease_only(self, two: tuple[Claims, Claims]) -> None:
        a, b = two
        token = a.claim(INBOX, "x.wav", holder="h1", lease_s=SHORT)
        assert token is not None
        assert a.holds(token, lease_s=LONG)
        self._let_run_out(b, SHORT)  # had holds not extended it, the lease would have run out
        assert b.claim(INBOX, "x.wav", holder="h2", lease_s=LONG) is None
        assert not a.holds(token + 1000, lease_s=LONG)

    def test_renew_keeps_the_running_claims_and_never_revives_an_expired_one(
        self, two: tuple[Claims, Claims]
    ) -> None:
        a, b = two
        short = a.claim(INBOX, "short.wav", holder="h1", lease_s=SHORT)
        long = a.claim(INBOX, "long.wav", holder="h1", lease_s=SHORT * 10)
        other = b.claim(INBOX, "other.wav", holder="h2", lease_s=LONG)
        assert short is not None
        assert long is not None
        assert other is not None
        wait_for(lambda: [c.relpath for c in a.claims() if c.expires_in_s < 0] == ["short.wav"], timeout=10)
        assert a.renew("h1", lease_s=LONG) == {long}
        assert not a.holds(short, lease_s=LONG)
        expires = {c.relpath: c.expires_in_s for c in b.claims()}
        assert expires["short.wav"] < 0
        assert expires["long.wav"] > LONG - 5
        assert b.claim(INBOX, "short.wav", holder="h2", lease_s=LONG) is not None
        assert a.renew("nobody", lease_s=LONG) == set()

    def test_a_released_claim_is_free_at_once(self, two: tuple[Claims, Claims]) -> None:
        a, b = two
        token = a.claim(INBOX, "x.wav", holder="h1", lease_s=LONG)
        assert token is not None
        a.release_claim(token)
        a.release_claim(token)  # an unknown token is ignored
        assert not a.holds(token, lease_s=LONG)
        assert a.claims() == []
        assert b.claim(INBOX, "x.wav", holder="h2", lease_s=LONG) is not None

    def test_claims_are_listed_soonest_to_expire_first(self, two: tuple[Claims, Claims]) -> None:
        a, b = two
        late = a.claim(INBOX, "late.wav", holder="h1", lease_s=LONG)
        soon = b.claim("/srv/other", ODD_NAME, holder="h2", lease_s=LONG / 2)
        assert [(c.inbox, c.relpath, c.holder, c.token) for c in a.claims()] == [
            ("/srv/other", ODD_NAME, "h2", soon),
            (INBOX, "late.wav", "h1", late),
        ]

    # fencing -----------------------------------------------------------------------------------

    def test_a_fenced_decide_and_finish_take_effect_while_the_lease_runs(
        self, journal: Journal, claims: Claims
    ) -> None:
        job = take(journal, ODD_NAME)
        token = claims.claim(INBOX, ODD_NAME, holder="h1", lease_s=LONG)
        assert token is not None
        journal.decide(job.id, outcome="done", final_name="out.wav", token=token)
        assert journal.get(job.id).state == "finishing"
        journal.finish(job.id, {"dev": 1, "ino": 2}, token=token)
        ended = journal.get(job.id)
        assert (ended.state, ended.final_name) == ("done", "out.wav")
        assert ended.meta == {"final_identity": {"dev": 1, "ino": 2}}

    def test_a_fenced_decide_or_finish_after_the_lease_ran_out_changes_nothing(
        self, journal: Journal, claims: Claims
    ) -> None:
        job = take(journal, ODD_NAME)
        token = claims.claim(INBOX, ODD_NAME, holder="h1", lease_s=SHORT)
        assert token is not None
        wait_for(lambda: claims.claims()[0].expires_in_s < 0, timeout=10)
        with pytest.raises(LeaseLostError) as lost:
            journal.decide(job.id, outcome="done", final_name="out.wav", token=token)
        assert (lost.value.inbox, lost.value.relpath) == (INBOX, ODD_NAME)
        assert journal.get(job.id) == job

        token = self._claim_after_expiry(claims, ODD_NAME, "h1")
        journal.decide(job.id, outcome="done", final_name="out.wav", token=token)
        decided = journal.get(job.id)
        claims.release_claim(token)  # given up, or taken over by another: the same for the fence
        for identity in (None, {"dev": 1, "ino": 2}):
            with pytest.raises(LeaseLostError):
                journal.finish(job.id, identity, token=token)
            assert journal.get(job.id) == decided
        journal.finish(job.id)  # without a token, as before
        assert journal.get(job.id).state == "done"

    def test_a_token_fences_only_the_file_it_claims(self, journal: Journal, claims: Claims) -> None:
        job = take(journal, "a.wav")
        other = claims.claim(INBOX, "b.wav", holder="h1", lease_s=LONG)
        assert other is not None
        with pytest.raises(LeaseLostError):
            journal.decide(job.id, outcome="failed", final_name="a.wav", token=other)
        assert journal.get(job.id) == job

    # slots and request spacing -----------------------------------------------------------------

    def test_slots_are_never_handed_out_beyond_the_size(self, two: tuple[Claims, Claims]) -> None:
        a, b = two
        taken = [(a, b)[n % 2].take_slot("dashscope", 3, holder=f"h{n}", lease_s=LONG) for n in range(6)]
        assert sorted(s for s in taken if s is not None) == [0, 1, 2]
        assert taken[3:] == [None, None, None]
        assert b.take_slot("other", 1, holder="h9", lease_s=LONG) == 0  # pools are apart

    def test_only_its_holder_frees_a_slot_and_a_freed_one_is_taken_again(
        self, two: tuple[Claims, Claims]
    ) -> None:
        a, b = two
        assert a.take_slot("p", 1, holder="h1", lease_s=LONG) == 0
        b.free_slot("p", 0, holder="h2")  # not h2's to free
        assert b.take_slot("p", 1, holder="h2", lease_s=LONG) is None
        a.free_slot("p", 0, holder="h1")
        assert b.take_slot("p", 1, holder="h2", lease_s=LONG) == 0

    def test_an_expired_slot_is_taken_again_and_renew_keeps_running_ones(
        self, two: tuple[Claims, Claims]
    ) -> None:
        a, b = two
        assert a.take_slot("expired", 1, holder="h1", lease_s=SHORT) == 0
        self._let_run_out(a, SHORT)
        assert a.take_slot("running", 1, holder="h1", lease_s=SHORT) == 0
        assert a.renew("h1", lease_s=LONG) == set()
        self._let_run_out(a, SHORT)
        assert b.take_slot("expired", 1, holder="h2", lease_s=LONG) == 0  # not revived by renew
        assert b.take_slot("running", 1, holder="h2", lease_s=LONG) is None  # renewed

    def test_requests_are_spaced_across_journals(self, two: tuple[Claims, Claims]) -> None:
        a, b = two
        interval = 0.5
        start = time.time()
        for n in range(6):
            wait = (a, b)[n % 2].next_request_in("dashscope", interval)
            # the n-th request is reserved n intervals after the first, whoever asks; what the journal
            # was told later than that is due at once (a slow machine), never sooner
            assert n * interval - (time.time() - start) - 0.01 <= wait <= n * interval + 0.01, (n, wait)
        assert a.next_request_in("other", interval) == 0.0
        assert b.next_request_in("unspaced", 0) == 0.0

    def test_a_shared_state_is_changed_by_one_process_at_a_time(self, open_claims: OpenClaims) -> None:
        """Read, change and write back from several journal objects at once: no change is lost, and each
        sees the one before it. ``now`` is the journal's clock."""
        journals = [open_claims() for _ in range(3)]
        seen_now: list[float] = []

        def add_one(text: str | None, now: float) -> tuple[str, int]:
            count = int(text or "0")
            time.sleep(0.002)  # a slow change: another writer in between would lose one
            seen_now.append(now)
            return str(count + 1), count

        def work(journal: Claims) -> list[int]:
            return [journal.shared_state("counter", add_one) for _ in range(20)]

        try:
            with concurrent.futures.ThreadPoolExecutor(len(journals)) as pool:
                before = sorted(b for got in pool.map(work, journals) for b in got)
            assert before == list(range(60))
            assert journals[0].shared_state("counter", lambda text, now: (text or "", text)) == "60"
            assert journals[1].shared_state("other", lambda text, now: ("x", text)) is None
            assert all(abs(now - time.time()) < 60 for now in seen_now)
        finally:
            for journal in journals:
                journal.close()

    # the processes sharing the journal ---------------------------------------------------------

    def test_hosts_are_listed_most_recently_seen_first_and_stop_cleanly(
        self, two: tuple[Claims, Claims]
    ) -> None:
        a, b = two
        a.host_seen("nas:10:x", hostname="nas", pid=10, started_at=1000.0)
        b.host_seen("pi:20:y", hostname="pi", pid=20, started_at=2000.0)
        b.renew("nas:10:x", lease_s=LONG)  # a heartbeat
        nas, pi = a.hosts(within_s=LONG)
        assert (nas.holder, nas.hostname, nas.pid, nas.started_at, nas.stopped) == (
            "nas:10:x", "nas", 10, 1000.0, False,
        )  # fmt: skip
        assert (pi.holder, pi.hostname, pi.pid, pi.stopped) == ("pi:20:y", "pi", 20, False)
        assert 0 <= nas.seen_ago_s <= pi.seen_ago_s < 5

        assert a.claim(INBOX, "x.wav", holder="nas:10:x", lease_s=LONG) is not None
        assert a.take_slot("p", 1, holder="nas:10:x", lease_s=LONG) == 0
        a.host_stopped("nas:10:x")
        listed = [(h.holder, h.stopped) for h in b.hosts(within_s=LONG)]
        assert listed == [("nas:10:x", True), ("pi:20:y", False)]
        assert b.claims() == []
        assert b.take_slot("p", 1, holder="pi:20:y", lease_s=LONG) == 0

    def test_hosts_long_unseen_are_listed_only_while_they_hold_claims(
        self, two: tuple[Claims, Claims]
    ) -> None:
        a, b = two
        a.host_seen("gone:1:x", hostname="gone", pid=1, started_at=1.0)
        a.host_seen("dead:2:y", hostname="dead", pid=2, started_at=2.0)
        assert b.claim(INBOX, "x.wav", holder="dead:2:y", lease_s=SHORT) is not None
        # both were seen at about the same time: "gone" drops out first, "dead" stays for its claim
        wait_for(lambda: [(h.holder, h.seen_ago_s >= SHORT) for h in b.hosts(within_s=SHORT)]
                 == [("dead:2:y", True)], timeout=10)  # fmt: skip
        a.host_seen("gone:1:x", hostname="gone", pid=1, started_at=1.0)  # seen again: listed again
        assert [h.holder for h in b.hosts(within_s=SHORT)] == ["gone:1:x", "dead:2:y"]
