"""The dispatch policy on plain values: fairness, the in-flight cap, waits, pause probes, full outputs."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from dropscribe.core.dispatch import (
    InboxQueue,
    Situation,
    Start,
    head_length,
    may_start,
    next_poll_at,
    next_scan_at,
    output_probe_s,
    plan,
    woken,
)
from dropscribe.core.gate import Fingerprint

A, B, C = "/in/a", "/in/b", "/in/c"


def started(situation: Situation) -> list[tuple[str, str]]:
    return [(s.inbox, s.relpath) for s in plan(situation).starts]


def test_inboxes_take_turns_one_file_each_in_config_order() -> None:
    situation = Situation(
        queues=(InboxQueue(A, ("a1", "a2", "a3")), InboxQueue(B, ("b1",)), InboxQueue(C, ("c1", "c2"))),
        now=10.0, capacity=5,
    )  # fmt: skip

    assert started(situation) == [(A, "a1"), (B, "b1"), (C, "c1"), (A, "a2"), (C, "c2")]


def test_a_long_queue_does_not_starve_a_short_one_behind_it() -> None:
    big = tuple(f"a{i}" for i in range(1000))

    got = started(Situation(queues=(InboxQueue(A, big), InboxQueue(B, ("b1",))), now=0.0, capacity=2))

    assert got == [(A, "a0"), (B, "b1")]


def test_free_slots_are_the_cap_minus_what_is_in_flight() -> None:
    queues = (InboxQueue(A, ("a1", "a2", "a3", "a4")),)

    assert started(Situation(queues=queues, now=0.0, capacity=4, in_flight=frozenset({(B, "x")}))) == [
        (A, "a1"), (A, "a2"), (A, "a3"),
    ]  # fmt: skip
    full = Situation(queues=queues, now=0.0, capacity=2, in_flight=frozenset({(B, "x"), (B, "y")}))
    assert plan(full).starts == ()
    assert not may_start(full)


def test_a_file_already_in_flight_is_not_started_again() -> None:
    situation = Situation(queues=(InboxQueue(A, ("a1", "a2")),), now=0.0, capacity=4,
                          in_flight=frozenset({(A, "a1")}))  # fmt: skip

    assert started(situation) == [(A, "a2")]


def test_not_before_holds_a_file_back_until_its_time_and_says_when_to_look_again() -> None:
    not_before = {(A, "a1"): 12.0, (A, "a2"): 11.0}
    queues = (InboxQueue(A, ("a1", "a2", "a3")),)

    early = plan(Situation(queues=queues, now=10.0, capacity=4, not_before=not_before))
    assert [s.relpath for s in early.starts] == ["a3"]
    assert early.look_again_at == 11.0
    later = plan(Situation(queues=queues, now=11.5, capacity=4, not_before=not_before))
    assert [s.relpath for s in later.starts] == ["a2", "a3"]
    assert later.look_again_at == 12.0
    due = plan(Situation(queues=queues, now=12.0, capacity=4, not_before=not_before))
    assert [s.relpath for s in due.starts] == ["a1", "a2", "a3"]


def test_nothing_to_look_again_for_when_the_slots_are_full() -> None:
    result = plan(Situation(queues=(InboxQueue(A, ("a1", "a2")),), now=0.0, capacity=1,
                            not_before={(A, "a2"): 5.0}))  # fmt: skip

    assert result.look_again_at is None
    assert [s.relpath for s in result.starts] == ["a1"]


def test_a_refused_file_is_skipped_and_the_turn_goes_on_as_if_it_were_not_there() -> None:
    queues = (InboxQueue(A, ("a1", "a2")), InboxQueue(B, ("b1", "b2")))
    refused = Situation(queues=queues, now=0.0, capacity=3, refused=frozenset({(A, "a1")}))

    assert started(refused) == [(A, "a2"), (B, "b1"), (B, "b2")]


def test_nothing_starts_while_the_journal_disk_is_full() -> None:
    situation = Situation(queues=(InboxQueue(A, ("a1",)),), now=0.0, capacity=4, state_full=True)

    assert plan(situation).starts == ()


class TestPause:
    """Files held by a paused backend get one probe per period, only while nothing runs on it."""

    HELD: Mapping[tuple[str, str], str] = MappingProxyType(
        {(A, "a1"): "dashscope", (A, "a2"): "dashscope", (B, "b1"): "dashscope"}
    )

    def paused(
        self, now: float, probe_at: float, in_flight: frozenset[tuple[str, str]] = frozenset(),
        busy: frozenset[str] = frozenset(),
    ) -> Situation:  # fmt: skip
        return Situation(
            queues=(InboxQueue(A, ("a1", "a2")), InboxQueue(B, ("b1",))), now=now, capacity=4,
            in_flight=in_flight, held=self.HELD, busy=busy, pause_probe_at={"dashscope": probe_at},
            pause_probe_s=30.0,
        )  # fmt: skip

    def test_one_probe_file_when_the_probe_is_due_and_the_next_probe_is_a_period_later(self) -> None:
        result = plan(self.paused(now=100.0, probe_at=100.0))

        assert result.starts == (Start(A, "a1", probe=True),)
        assert result.pause_probe_at == {"dashscope": 130.0}

    def test_no_probe_before_its_time(self) -> None:
        result = plan(self.paused(now=129.9, probe_at=130.0))

        assert result.starts == ()
        assert result.pause_probe_at == {"dashscope": 130.0}

    def test_no_probe_while_a_file_of_that_backend_is_in_flight(self) -> None:
        busy = self.paused(
            now=200.0, probe_at=130.0, in_flight=frozenset({(B, "b9")}), busy=frozenset({"dashscope"})
        )
        result = plan(busy)

        assert result.starts == ()
        assert result.pause_probe_at == {"dashscope": 130.0}

    def test_probe_cadence_over_time_is_one_file_per_period(self) -> None:
        probe_at, probes = 0.0, []
        for tick in range(100):  # 25 s at four looks per second
            now = tick * 0.25
            result = plan(self.paused(now=now, probe_at=probe_at))
            probe_at = result.pause_probe_at["dashscope"]
            probes += [now for _ in result.starts]
        assert probes == [0.0]  # pause_probe_s is 30 s
        assert probe_at == 30.0

    def test_an_empty_queue_does_not_spend_the_probe(self) -> None:
        situation = Situation(queues=(InboxQueue(A, ()),), now=50.0, capacity=4, held=self.HELD,
                              pause_probe_at={"dashscope": 40.0}, pause_probe_s=30.0)  # fmt: skip

        assert plan(situation).pause_probe_at == {"dashscope": 40.0}

    def test_files_of_another_backend_go_on_while_one_backend_is_paused(self) -> None:
        situation = Situation(
            queues=(InboxQueue(A, ("a1", "a2")), InboxQueue(C, ("c1", "c2"))), now=10.0, capacity=4,
            held={(A, "a1"): "dashscope", (A, "a2"): "dashscope"}, busy=frozenset({"dashscope"}),
            pause_probe_at={"dashscope": 0.0}, pause_probe_s=30.0,
        )  # fmt: skip

        assert started(situation) == [(C, "c1"), (C, "c2")]

    def test_each_paused_backend_has_its_own_probe(self) -> None:
        situation = Situation(
            queues=(InboxQueue(A, ("a1", "a2")), InboxQueue(B, ("b1", "b2"))), now=10.0, capacity=4,
            held={(A, "a1"): "one", (A, "a2"): "one", (B, "b1"): "two", (B, "b2"): "two"},
            pause_probe_at={"one": 0.0, "two": 0.0}, pause_probe_s=30.0,
        )  # fmt: skip
        result = plan(situation)

        assert result.starts == (Start(A, "a1", probe=True), Start(B, "b1", probe=True))
        assert result.pause_probe_at == {"one": 40.0, "two": 40.0}


class TestOutputFull:
    def test_a_full_inbox_gets_one_file_per_probe_interval_and_others_go_on(self) -> None:
        situation = Situation(
            queues=(InboxQueue(A, ("a1", "a2", "a3"), output_probe_at=5.0, output_probe_s=10.0),
                    InboxQueue(B, ("b1", "b2"))),
            now=5.0, capacity=4,
        )  # fmt: skip

        result = plan(situation)

        assert [(s.inbox, s.relpath) for s in result.starts] == [(A, "a1"), (B, "b1"), (B, "b2")]
        assert result.output_probe_at == {A: 15.0}

    def test_none_before_the_probe_time_nor_while_its_probe_is_in_flight(self) -> None:
        early = Situation(queues=(InboxQueue(A, ("a1",), output_probe_at=15.0),), now=10.0, capacity=4)
        assert plan(early).starts == ()
        assert plan(early).look_again_at == 15.0

        busy = Situation(queues=(InboxQueue(A, ("a1", "a2"), output_probe_at=15.0),), now=20.0, capacity=4,
                         in_flight=frozenset({(A, "a0")}))  # fmt: skip
        assert plan(busy).starts == ()
        assert plan(busy).output_probe_at == {}

    def test_the_probe_interval_follows_the_rescan_within_one_second_and_a_minute(self) -> None:
        assert output_probe_s(0.5) == 1.0
        assert output_probe_s(20.0) == 20.0
        assert output_probe_s(600.0) == 60.0


def test_head_length_covers_free_slots_and_everything_held_back() -> None:
    assert head_length(capacity=4, waiting=10, in_flight=3) == 17


def test_an_unfinished_file_wakes_when_its_fingerprint_changes_or_it_is_gone() -> None:
    before: Fingerprint = (1, 7, 10, 1)  # dev, inode, size, mtime_ns
    incomplete = {(A, "same"): before, (A, "grew"): before, (A, "gone"): before}
    seen = {(A, "same"): before, (A, "grew"): (1, 7, 20, 2)}

    assert sorted(woken(incomplete, seen)) == [(A, "gone"), (A, "grew")]


def test_scan_and_poll_cadence() -> None:
    assert next_scan_at(100.0, 600.0, available=True) == 700.0
    assert next_scan_at(100.0, 600.0, available=False) == 130.0  # a missing share is looked for often
    assert next_scan_at(100.0, 5.0, available=False) == 105.0
    assert next_poll_at(100.0, 600.0) == 103.0
    assert next_poll_at(100.0, 1.0) == 101.0


def test_a_settling_file_is_looked_at_when_it_may_be_ready_not_at_the_next_tick() -> None:
    empty = plan(Situation(queues=(InboxQueue(A, ()),), now=10.0, capacity=4, settles_at=14.5))
    assert empty.look_again_at == 14.5
    # with files held back too, whichever comes first
    held = Situation(queues=(InboxQueue(A, ("a1",)),), now=10.0, capacity=4, not_before={(A, "a1"): 12.0},
                     settles_at=14.5)  # fmt: skip
    assert plan(held).look_again_at == 12.0
    assert plan(Situation(queues=held.queues, now=10.0, capacity=4, not_before=held.not_before,
                          settles_at=11.0)).look_again_at == 11.0  # fmt: skip
    # no free slot: a finished file wakes the loop, the settling one waits for that
    full = Situation(queues=(InboxQueue(A, ()),), now=10.0, capacity=1, in_flight=frozenset({(B, "x")}),
                     settles_at=14.5)  # fmt: skip
    assert plan(full).look_again_at is None


def test_a_settling_time_already_past_does_not_make_the_loop_spin() -> None:
    # an inbox out of reach keeps its settling files unlooked-at: no look-again time from them
    stale = plan(Situation(queues=(InboxQueue(A, ()),), now=10.0, capacity=4, settles_at=9.0))
    assert stale.look_again_at is None
