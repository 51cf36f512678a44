"""Which settled files start now, and when to look again: the dispatcher's policy on plain values.

The service hands in what it knows at one instant (the head of each inbox's queue, what is in flight,
who must wait until when, whether the queue is paused or an output folder is full) and carries out the
answer. Nothing here reads a file or a clock, so every rule below is tested with plain values.

The rules:

* work-conserving: every free slot takes the next startable file at once; there are twice as many
  slots as concurrent requests, so the next file is being read while the previous one is recognized;
* fair: inboxes take turns, one file each per round, in the order of the config;
* a file waits out its ``not_before`` (backoff, an unfinished upload, a writer that still holds it);
* while a backend is paused (an account problem), the files it holds (``held``: those with no
  fallback to go to) wait; one of them is tried every ``pause_probe_s``, and only when nothing is in
  flight on that backend, to learn whether the account is back. Files for other backends go on;
* while an inbox's ``done/`` or ``failed/`` is full, it gets one file per probe interval, and none while
  one of its files is still in flight;
* nothing starts while the journal's disk is full.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from dropscribe.core.gate import Fingerprint

Key = tuple[str, str]  # (inbox path, relpath): an inbox is known by its path, never its list position

OUTPUT_PROBE_MAX_S = 60.0  # a full done/ or failed/ gets one file per rescan, at most a minute apart
POLL_S = 3.0  # a polled inbox's folders are stat-ed this often to notice new names
UNAVAILABLE_RESCAN_MAX_S = 30.0  # a missing share is looked for at least this often


@dataclass(frozen=True)
class InboxQueue:
    """One inbox's settled files, oldest first (only the head: see :func:`head_length`)."""

    name: str
    head: tuple[str, ...]
    # None while done/ and failed/ have room; otherwise when the next file may try them again
    output_probe_at: float | None = None
    output_probe_s: float = OUTPUT_PROBE_MAX_S


@dataclass(frozen=True)
class Situation:
    """Everything the policy looks at, as of ``now`` (the service's monotonic clock)."""

    queues: tuple[InboxQueue, ...]  # in config order
    now: float
    capacity: int
    in_flight: frozenset[Key] = frozenset()
    not_before: Mapping[Key, float] = field(default_factory=dict)
    held: Mapping[Key, str] = field(default_factory=dict)  # files a paused backend holds: its name
    busy: frozenset[str] = frozenset()  # backends with a file in flight
    pause_probe_at: Mapping[str, float] = field(default_factory=dict)  # by paused backend
    pause_probe_s: float = 60.0
    state_full: bool = False
    # files found changed or gone when looked at right before starting: skipped as if not there
    refused: frozenset[Key] = frozenset()
    # when the first file still settling is due to be looked at again: it may be ready then
    settles_at: float | None = None


@dataclass(frozen=True)
class Start:
    inbox: str
    relpath: str
    probe: bool = False  # tried while its backend is paused, to learn whether the account is back


@dataclass(frozen=True)
class Plan:
    starts: tuple[Start, ...]
    pause_probe_at: Mapping[str, float]  # by backend, moved on when this plan spends its pause probe
    # inboxes with a full output folder that got their one file: when the next may be tried
    output_probe_at: Mapping[str, float] = field(default_factory=dict)
    # the earliest moment a file held back now could start; None: only a change can start one
    look_again_at: float | None = None


def output_probe_s(rescan_s: float) -> float:
    """How often an inbox whose output folder is full gets one file: once per rescan, 1 s to 1 min."""
    return max(1.0, min(OUTPUT_PROBE_MAX_S, rescan_s))


def head_length(capacity: int, waiting: int, in_flight: int) -> int:
    """How much of a queue can matter: the free slots plus every file held back by a wait or a worker."""
    return capacity + waiting + in_flight


def may_start(situation: Situation) -> bool:
    """Whether anything could start, whatever the queues hold (so a caller can skip building them)."""
    s = situation
    return len(s.in_flight) < s.capacity and not s.state_full


def plan(situation: Situation) -> Plan:
    """The files to start now, in order, and when something held back could start."""
    s = situation
    pause_probe_at = dict(s.pause_probe_at)
    if not may_start(s):
        return Plan((), pause_probe_at)
    if not any(queue.head for queue in s.queues):
        return Plan((), pause_probe_at, look_again_at=_settles_at(s))
    in_flight = set(s.in_flight)
    starts: list[Start] = []
    output_probe_at: dict[str, float] = {}
    probing = set(s.busy)  # a paused backend with a file in flight, or probed by this plan: no probe
    rounds = _rounds(s, in_flight, probing, pause_probe_at)
    while rounds and len(in_flight) < s.capacity:
        for entry in list(rounds):
            queue, pending = entry
            relpath = next(pending, None)
            if relpath is None:
                rounds.remove(entry)
                continue
            held_by = s.held.get((queue.name, relpath))
            if held_by is not None:  # the pause probe of its backend, spent even if the file goes nowhere
                probing.add(held_by)
                pause_probe_at[held_by] = s.now + s.pause_probe_s
            starts.append(Start(queue.name, relpath, held_by is not None))
            in_flight.add((queue.name, relpath))
            if queue.output_probe_at is not None:  # one file per probe interval while it is full
                output_probe_at[queue.name] = s.now + queue.output_probe_s
                rounds.remove(entry)
            if len(in_flight) >= s.capacity:
                return Plan(tuple(starts), pause_probe_at, output_probe_at)
    return Plan(tuple(starts), pause_probe_at, output_probe_at, _look_again_at(s, in_flight))


def _rounds(
    s: Situation, in_flight: set[Key], probing: set[str], pause_probe_at: Mapping[str, float]
) -> list[tuple[InboxQueue, Iterator[str]]]:
    rounds = []
    for queue in s.queues:
        if not queue.head:
            continue
        if queue.output_probe_at is not None and (
            s.now < queue.output_probe_at or any(inbox == queue.name for inbox, _ in in_flight)
        ):
            continue
        rounds.append((queue, _startable(s, queue, in_flight, probing, pause_probe_at)))
    return rounds


def _startable(
    s: Situation,
    queue: InboxQueue,
    in_flight: set[Key],
    probing: set[str],
    pause_probe_at: Mapping[str, float],
) -> Iterator[str]:
    # a generator: ``probing`` and ``pause_probe_at`` are looked at when each file is asked for, so a
    # probe spent earlier in the same plan holds the next file of that backend back
    for relpath in queue.head:
        key = (queue.name, relpath)
        if key in in_flight or key in s.refused or s.not_before.get(key, 0.0) > s.now:
            continue
        held_by = s.held.get(key)
        if held_by is not None and (held_by in probing or s.now < pause_probe_at.get(held_by, 0.0)):
            continue
        yield relpath


def _look_again_at(s: Situation, in_flight: set[Key]) -> float | None:
    """Free slots are left: the earliest wait among the files held back, a full folder's next probe, or
    the moment a settling file may be ready (looked at then, not at the next tick: pickup latency)."""
    settles_at = _settles_at(s)
    times = [] if settles_at is None else [settles_at]
    for queue in s.queues:
        if queue.output_probe_at is not None and queue.head:
            if queue.output_probe_at > s.now:
                times.append(queue.output_probe_at)
            continue  # its files wait for the probe, whatever their own wait
        for relpath in queue.head:
            key = (queue.name, relpath)
            until = s.not_before.get(key, 0.0)
            if key in s.held:  # waits for its backend's probe; the service looks every tick anyway
                continue
            if until > s.now and key not in in_flight and key not in s.refused:
                times.append(until)
    return min(times, default=None)


def _settles_at(s: Situation) -> float | None:
    # one already past was not looked at (its inbox is out of reach): the regular tick looks again
    return s.settles_at if s.settles_at is not None and s.settles_at > s.now else None


def woken(incomplete_at: Mapping[Key, Fingerprint], seen: Mapping[Key, Fingerprint]) -> list[Key]:
    """Unfinished-looking files whose wait ends early: they changed (their writer is back) or are gone."""
    return [key for key, fingerprint in incomplete_at.items() if seen.get(key) != fingerprint]


def next_scan_at(now: float, rescan_s: float, *, available: bool) -> float:
    """When an inbox is walked in full again; a share that is missing is looked for more often."""
    return now + (rescan_s if available else min(rescan_s, UNAVAILABLE_RESCAN_MAX_S))


def next_poll_at(now: float, rescan_s: float) -> float:
    """When a polled inbox's folders are stat-ed again for new names."""
    return now + min(POLL_S, rescan_s)


def next_finished_check_at(now: float, rescan_s: float) -> float:
    """When recently finished files are looked at again for a writer that went on writing."""
    return now + max(2.0, min(rescan_s, 10.0))
