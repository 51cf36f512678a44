"""What the journal knows of the processes sharing it: who is alive, and who holds which file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostRecord:
    """One ``dropscribe run`` process as it last reported itself (ages on the journal's clock)."""

    holder: str  # "<hostname>:<pid>:<nonce>", unique per process start
    hostname: str
    pid: int
    started_at: float  # wall-clock seconds since the epoch
    seen_ago_s: float  # since its last heartbeat
    stopped: bool  # it said goodbye on a clean stop


@dataclass(frozen=True)
class ClaimRecord:
    """A file claimed by a process; a negative ``expires_in_s`` is a lease waiting to be taken over."""

    inbox: str
    relpath: str
    holder: str
    token: int
    expires_in_s: float
