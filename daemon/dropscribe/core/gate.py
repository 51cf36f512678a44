"""The completeness gate: a file is taken only after it stayed the same for the folder's settle time."""

from __future__ import annotations

from dataclasses import dataclass

Fingerprint = tuple[int, int, int, int]  # dev, inode, size, mtime_ns


@dataclass(frozen=True)
class Observation:
    """The last fingerprint seen for a path, and since when it has not changed.

    ``quiet_before_s`` is how long the file had already been unchanged when it was first seen, by its
    change time, where that time is on the service's own clock (a local disk); 0 elsewhere.
    """

    fingerprint: Fingerprint
    since: float
    quiet_before_s: float = 0.0


def observe(
    previous: Observation | None, fingerprint: Fingerprint, now: float, *, quiet_before_s: float = 0.0
) -> Observation:
    """Keep the old start time while nothing changes; any change of size, mtime or inode restarts it.

    ``quiet_before_s`` counts only for a file seen for the first time: one that changed while watched
    was being written a moment ago, whatever its modification time says.
    """
    if previous is not None and previous.fingerprint == fingerprint:
        return previous
    return Observation(fingerprint, now, max(0.0, quiet_before_s) if previous is None else 0.0)


def is_settled(observation: Observation, now: float, settle_s: float) -> bool:
    return now - observation.since + observation.quiet_before_s >= settle_s


def settles_at(observation: Observation, settle_s: float) -> float:
    """When the file counts as settled if it does not change before then (the service's clock)."""
    return observation.since + settle_s - observation.quiet_before_s
