"""Claims on files, held with leases, when several processes share one journal (``state.url``).

Every process scans every inbox; a file is worked on only by the process that claims it. A claim's
lease is renewed by one thread for all the files this process holds; a process that stops renewing
(killed, paused, cut off from the database) loses its claims after ``state.lease_s`` and another
process resumes the files from the journal.

The lease of the file a thread works on travels with it in a context variable (chunk pools copy the
context), so the checks need no extra arguments: :func:`check_lease` before each paid request (cheap
unless the last renewal is old), :func:`confirm_lease` before each final step (always asks the
database, and extends the lease), and :func:`lease_token` for the journal writes fenced by it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

from dropscribe.core.errors import LeaseLostError, StateFullError
from dropscribe.core.ports.claims import Claims
from dropscribe.logs import get_logger

log = get_logger()

_current: ContextVar[Lease | None] = ContextVar("dropscribe_lease", default=None)
NOT_A_FILE = ""  # the inbox of claims that lock something else than a file (no inbox has an empty path)
_EXCLUSIVE_POLL_S = 0.2


def new_holder() -> str:
    """This process's name in the claims table: host, pid and a nonce (a pid is reused after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class Lease:
    """One claimed file; its times are on ``time.monotonic()``, which goes on while the process is paused."""

    inbox: str
    relpath: str
    token: int
    renewed_at: float
    leases: Leases = field(repr=False)
    lost: bool = False
    held_since: float = field(default_factory=time.monotonic)  # once the claim was committed

    def check(self) -> None:
        """Before a paid request: raise if the lease is known lost, or turns out lost after a long silence."""
        if self.lost:
            raise LeaseLostError(self.inbox, self.relpath)
        if time.monotonic() - self.renewed_at > self.leases.lease_s / 2:
            self.confirm()

    def confirm(self) -> None:
        """Before a final step: the database says whether the lease still runs, and extends it if so."""
        if self.lost:
            raise LeaseLostError(self.inbox, self.relpath)
        asked_at = time.monotonic()
        if not self.leases.claims.holds(self.token, lease_s=self.leases.lease_s):
            self.lost = True
            log.warning("lease_lost", inbox=self.inbox, relpath=self.relpath, token=self.token,
                        action="leaving the file to the process that holds it now")  # fmt: skip
            raise LeaseLostError(self.inbox, self.relpath)
        self.renewed_at = asked_at


class Leases:
    """This process's claims, and the thread that renews them (and its heartbeat) every third of a lease."""

    def __init__(self, claims: Claims, *, lease_s: float, holder: str | None = None) -> None:
        self.claims = claims
        self.lease_s = lease_s
        self.holder = holder or new_holder()
        self._held: dict[int, Lease] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._registered = False
        self._unreleased: set[int] = set()  # claims whose release failed (the journal was away)
        self._started_at = time.time()

    def start(self) -> None:
        self._started_at = time.time()
        with contextlib.suppress(StateFullError):  # the database may be down at start: renewals retry
            self._register()
        self._thread = threading.Thread(target=self._renew_loop, name="leases", daemon=True)
        self._thread.start()
        log.info("host_started", holder=self.holder, lease_s=self.lease_s)

    def stop(self) -> None:
        """A clean stop: every claim is given up at once, so the other processes need not wait it out."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(StateFullError):
            self.claims.host_stopped(self.holder)

    def alone(self) -> bool:
        """Whether no other process was seen within a lease (and did not stop): shared tidying is safe."""
        others = self.claims.hosts(within_s=self.lease_s)
        return not any(
            h.holder != self.holder and not h.stopped and h.seen_ago_s <= self.lease_s for h in others
        )

    def claim(self, inbox: str, relpath: str) -> Lease | None:
        asked_at = time.monotonic()
        token = self.claims.claim(inbox, relpath, holder=self.holder, lease_s=self.lease_s)
        if token is None:
            return None
        lease = Lease(inbox, relpath, token, asked_at, self)
        with self._lock:
            self._held[token] = lease
        return lease

    def release(self, lease: Lease) -> None:
        with self._lock:
            self._held.pop(lease.token, None)
        if lease.lost:
            return
        try:
            self.claims.release_claim(lease.token)
        except StateFullError:  # renewals would keep it: given up again once the journal answers
            with self._lock:
                self._unreleased.add(lease.token)

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Across every process on the journal, one at a time: a claim on ``name`` (outside any inbox).

        Waiting, the thread still checks its own file's lease: a file that is not ours stops waiting.
        """
        while (lease := self.claim(NOT_A_FILE, name)) is None:
            check_lease()
            time.sleep(_EXCLUSIVE_POLL_S)
        try:
            yield
        finally:
            self.release(lease)

    def held(self) -> list[Lease]:
        with self._lock:
            return list(self._held.values())

    def _register(self) -> None:
        hostname, pid, _nonce = self.holder.rsplit(":", 2)
        self.claims.host_seen(self.holder, hostname=hostname, pid=int(pid), started_at=self._started_at)
        self._registered = True

    def renew_once(self) -> None:
        if not self._registered:
            self._register()
        with self._lock:
            unreleased = sorted(self._unreleased)
        for token in unreleased:
            self.claims.release_claim(token)
            with self._lock:
                self._unreleased.discard(token)
        asked_at = time.monotonic()
        kept = self.claims.renew(self.holder, lease_s=self.lease_s)
        for lease in self.held():
            if lease.held_since >= asked_at:
                continue  # claimed after this renewal was asked: its answer cannot know it
            if lease.token in kept:
                lease.renewed_at = max(lease.renewed_at, asked_at)
            elif not lease.lost:
                lease.lost = True
                log.warning("lease_lost", inbox=lease.inbox, relpath=lease.relpath, token=lease.token,
                            action="leaving the file to the process that holds it now")  # fmt: skip

    def _renew_loop(self) -> None:
        every_s = self.lease_s / 3
        while not self._stop.wait(every_s):
            try:
                self.renew_once()
            except StateFullError as exc:  # the database is away: the leases age; checks tell the workers
                log.warning("lease_renewal_failed", error=str(exc), lease_s=self.lease_s)
            except Exception as exc:  # the renewals must go on whatever one of them met
                log.exception("lease_renewal_failed", error=repr(exc))


@contextlib.contextmanager
def holding(lease: Lease) -> Iterator[Lease]:
    """Work on ``lease``'s file in this thread (and the pools it submits to, which copy the context)."""
    reset = _current.set(lease)
    try:
        yield lease
    finally:
        _current.reset(reset)


def check_lease() -> None:
    """Before a paid request: nothing without claims; raises ``LeaseLostError`` once the file is not ours."""
    lease = _current.get()
    if lease is not None:
        lease.check()


def confirm_lease() -> None:
    """Before a final step (sidecars, the move): the database confirms the claim, or this raises."""
    lease = _current.get()
    if lease is not None:
        lease.confirm()


def lease_token() -> int | None:
    """The fencing token for the journal's final writes; None without claims."""
    lease = _current.get()
    return None if lease is None else lease.token
