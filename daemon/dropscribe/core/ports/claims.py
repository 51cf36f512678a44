"""The claims port: which process works on which file, when several share one journal.

A claim is a row keyed by ``(inbox, relpath)`` with a lease. Its *token* is drawn from an ever-growing
sequence at each claim, so a process that lost its lease (paused, cut off) holds a token that no longer
matches, and every final step it tries is refused (fencing). Lease times are measured on the journal's
own clock (the database server's), never on the hosts' clocks, which may disagree.

Concurrency slots and request spacing are shared the same way, so that several processes together keep
to one account's quota.

Contract (checked by ``tests/contract/journal_contract.py`` for every journal):

* :meth:`claim` succeeds for one caller only while the lease runs; once it expired, any holder may
  claim again and gets a greater token;
* :meth:`renew` extends every unexpired claim and slot of ``holder`` and refreshes its heartbeat;
  an expired claim is never revived;
* a fenced ``decide`` or ``finish`` (``token=``) changes nothing and raises
  :class:`~dropscribe.core.errors.LeaseLostError` unless that token's lease still runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from dropscribe.core.hosts import ClaimRecord, HostRecord
from dropscribe.core.ports.journal import Journal

T = TypeVar("T")


class Claims(Protocol):
    def claim(self, inbox: str, relpath: str, *, holder: str, lease_s: float) -> int | None:
        """Take the file for ``holder`` for ``lease_s``: a fresh token, or None while another's lease runs.

        ``holder`` claiming again what it already holds gets a fresh token (the old one stops fencing).
        """
        ...

    def holds(self, token: int, *, lease_s: float) -> bool:
        """Whether ``token``'s lease still runs; if it does, it is extended to ``lease_s`` from now."""
        ...

    def renew(self, holder: str, *, lease_s: float) -> set[int]:
        """Extend every unexpired claim and slot of ``holder`` and note it seen; the claim tokens kept."""
        ...

    def release_claim(self, token: int) -> None:
        """Give the claim up (the file is finished, or waits for a later try); an unknown token is ignored."""
        ...

    def take_slot(self, pool: str, size: int, *, holder: str, lease_s: float) -> int | None:
        """One of ``size`` slots of ``pool`` (0 … size-1) for ``holder``, or None while all are held."""
        ...

    def free_slot(self, pool: str, slot: int, *, holder: str) -> None: ...

    def next_request_in(self, pool: str, interval_s: float) -> float:
        """Reserve the next send time of ``pool``, ``interval_s`` after the one before; seconds to wait."""
        ...

    def shared_state(self, name: str, change: Callable[[str | None, float], tuple[str, T]]) -> T:
        """Run ``change(text, now)`` on the text stored under ``name`` (None at first) while no other
        process can change it, store the text it returns, and return its other result.

        ``now`` is the journal's clock, in seconds. Used for what the processes learn together, such as
        the request rate an ``auto`` quota allows.
        """
        ...

    def host_seen(self, holder: str, *, hostname: str, pid: int, started_at: float) -> None:
        """Register or refresh a process (at start; :meth:`renew` refreshes it afterwards)."""
        ...

    def host_stopped(self, holder: str) -> None:
        """A clean stop: the process is shown as stopped, its claims and slots are released."""
        ...

    def hosts(self, *, within_s: float) -> list[HostRecord]:
        """Processes seen within ``within_s``, or still holding claims, most recently seen first."""
        ...

    def claims(self) -> list[ClaimRecord]:
        """Every file claim, soonest to expire first."""
        ...


class ClaimsJournal(Journal, Claims, Protocol):
    """A journal that also keeps the claims: both implementations are one (on SQLite, for one process)."""
