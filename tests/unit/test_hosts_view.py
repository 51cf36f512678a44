"""The hosts view: which process is alive, silent or stopped, and who holds which file, on plain values."""

from __future__ import annotations

from dropscribe.core.hosts import ClaimRecord, HostRecord
from dropscribe.core.hosts_view import (
    claim_of,
    claim_text,
    claims_per_host,
    headline,
    host_lines,
    host_state,
    hosts_view,
)

LEASE_S = 5.0


def host(name: str, pid: int, seen_ago_s: float, stopped: bool = False) -> HostRecord:
    return HostRecord(f"{name}:{pid}:abc123", name, pid, 1_700_000_000.0, seen_ago_s, stopped)


def claim(holder: str, relpath: str, expires_in_s: float, inbox: str = "/srv/inbox") -> ClaimRecord:
    return ClaimRecord(inbox, relpath, holder, 7, expires_in_s)


def test_a_host_is_alive_within_a_lease_silent_after_it_and_stopped_after_a_clean_stop() -> None:
    assert host_state(host("a", 1, 4.9), LEASE_S) == "alive"
    assert host_state(host("a", 1, 5.0), LEASE_S) == "alive"
    assert host_state(host("a", 1, 5.1), LEASE_S) == "silent"
    assert host_state(host("a", 1, 0.1, stopped=True), LEASE_S) == "stopped"


def test_files_are_listed_under_their_holder_and_expired_claims_apart() -> None:
    a, b = host("nas-a", 11, 1.0), host("nas-b", 22, 30.0)
    view = hosts_view(
        [a, b],
        [claim(b.holder, "old.wav", -12.0), claim(a.holder, "new.wav", 4.0),
         claim(a.holder, "content:sha256-key", 3.0, inbox=""),
         claim(a.holder, "budgets", 3.0, inbox="")],
        LEASE_S,
    )  # fmt: skip
    assert view["running"] is True
    assert view["counts"] == {"alive": 1, "silent": 1, "stopped": 0}
    first, second = view["hosts"]
    assert (first["hostname"], first["state"], second["state"]) == ("nas-a", "alive", "silent")
    assert first["files"] == [{"inbox": "/srv/inbox", "relpath": "new.wav", "expires_in_s": 4.0}]
    assert first["content_locks"] == 1  # a result key's lock is not a file
    assert second["files"] == []
    assert view["expired"] == [{"inbox": "/srv/inbox", "relpath": "old.wav", "holder": b.holder,
                                "hostname": "nas-b", "pid": 22, "expired_s": 12.0}]  # fmt: skip
    assert claims_per_host(view) == {"nas-a": 1, "nas-b": 0}


def test_no_alive_host_means_not_running() -> None:
    view = hosts_view([host("a", 1, 60.0), host("b", 2, 1.0, stopped=True)], [], LEASE_S)
    assert view["running"] is False
    assert headline(view) == "not running on any host"
    assert hosts_view([], [], LEASE_S)["counts"] == {"alive": 0, "silent": 0, "stopped": 0}


def test_a_claim_whose_host_row_is_gone_is_named_from_its_holder_id() -> None:
    view = hosts_view([], [claim("far-host:4242:ffeedd", "x.wav", -1.5)], LEASE_S)
    assert (view["expired"][0]["hostname"], view["expired"][0]["pid"]) == ("far-host", 4242)


def test_a_file_s_claim_in_words() -> None:
    a, b = host("nas-a", 11, 1.0), host("nas-b", 22, 30.0)
    view = hosts_view([a, b], [claim(a.holder, "held.wav", 4.0), claim(b.holder, "lost.wav", -12.0)], LEASE_S)
    held = claim_of(view, "/srv/inbox", "held.wav")
    lost = claim_of(view, "/srv/inbox", "lost.wav")
    assert held is not None
    assert lost is not None
    assert claim_of(view, "/srv/inbox", "other.wav") is None
    assert claim_text(held) == "being processed by nas-a pid 11 (lease runs 4 s more)"
    assert claim_text(lost) == (
        "claimed by nas-b pid 22, whose lease expired 12 s ago; it waits for another process to take it over"
    )


def test_the_status_lines_name_each_host_its_files_and_the_expired_claims() -> None:
    a, b = host("nas-a", 11, 1.0), host("nas-b", 22, 30.0)
    view = hosts_view([a, b], [claim(a.holder, "held.wav", 4.0), claim(b.holder, "lost.wav", -12.0)], LEASE_S)
    lines = host_lines(view, shown=lambda inbox, rel: rel, clock=lambda at: "12:00:00")
    assert lines == [
        "hosts (lease 5 s):",
        "  nas-a pid 11: alive, last seen 1 s ago, up since 12:00:00",
        "    holds held.wav (lease runs 4 s more)",
        "  nas-b pid 22: silent (presumed dead, its leases run out), last seen 30 s ago, up since 12:00:00",
        "  expired: lost.wav (held by nas-b pid 22, lease expired 12 s ago; waits to be taken over)",
    ]
    assert headline(view) == "running on 1 host(s) (nas-a pid 11)"
