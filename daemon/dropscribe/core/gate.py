"""The completeness gate: a file is taken only after it stayed the same for the folder's settle time."""

from __future__ import annotations

from dataclasses import dataclass

Fingerprint = tuple[int, int, int, int]  # dev, inode, size, mtime_ns


@dataclass(frozen=True)
class Observation:
    """The last fingerprint seen for a path, and since when it has not changed."""

    fingerprint: Fingerprint
    since: float


def observe(previous: Observation | None, fingerprint: Fingerprint, now: float) -> Observation:
    """Keep the old start time while nothing changes; any change of size, mtime or inode restarts it."""
    if previous is not None and previous.fingerprint == fingerprint:
        return previous
    return Observation(fingerprint, now)


def is_settled(observation: Observation, now: float, settle_s: float) -> bool:
    return now - observation.since >= settle_s
