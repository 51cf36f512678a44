"""Which backend a folder's next file goes to, from what is known of each backend's health.

Failover is opt-in per folder (rule key ``fallback_backend``): recordings that must stay on the
premises never go elsewhere. A folder's backend counts as down when it has been failing transiently
for ``failover_after_s`` without one success in between, or when it is paused by an account problem
(bad key, arrears). While it is down, the folder's files go to the fallback, unless the fallback is
paused too.

Learning that the primary is back: while a folder is failed over, one file every ``probe_s`` (the
``dashscope.pause_probe_s`` setting) is sent to the primary instead, as a probe. A real file is the
only probe that answers the question for every backend type: a free ``GET /models`` on an
OpenAI-compatible server says the server is up, not that it transcribes, and DashScope has no free
call that shows arrears are settled. A probe that fails costs nothing but that file's wait (it is
retried as usual, by then on the fallback); one that succeeds ends the failover for every folder.

A file that has begun on a backend (any chunk answer or file-transcription task stored for it) stays
there: those answers are paid for and are never bought again elsewhere.

Nothing here reads a clock or shares state: the service holds a :class:`Health` per backend and asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Health:
    """What is known of one backend, on the service's monotonic clock."""

    failing_since: float | None = None  # the first transient failure since the last success
    paused: bool = False  # an account problem: no file can succeed until it is fixed
    last_success: float | None = None
    probe_at: float = 0.0  # while files fail over, the next one that goes to this backend to try it


HEALTHY = Health()


@dataclass(frozen=True)
class Choice:
    backend: str
    probe: bool = False  # sent to a down primary to learn whether it is back
    failed_over: bool = False  # sent to the fallback because the primary is down


def is_down(health: Health, failover_after_s: float, now: float) -> bool:
    """Paused, or failing transiently for at least ``failover_after_s`` without a success."""
    if health.paused:
        return True
    return health.failing_since is not None and now - health.failing_since >= failover_after_s


def choose(
    primary: str,
    fallback: str | None,
    failover_after_s: float,
    health: Mapping[str, Health],
    now: float,
    *,
    begun_on: str | None = None,
) -> Choice:
    """The backend for the next file of a folder served by ``primary`` (with ``fallback``, if any)."""
    if begun_on is not None:
        return Choice(begun_on)
    if fallback is None or fallback == primary:
        return Choice(primary)
    state = health.get(primary, HEALTHY)
    if not is_down(state, failover_after_s, now):
        return Choice(primary)
    if health.get(fallback, HEALTHY).paused:
        return Choice(primary)  # both paused: the primary's pause holds the file
    if now >= state.probe_at:
        return Choice(primary, probe=True)
    return Choice(fallback, failed_over=True)


def after_failure(health: Health, now: float, probe_s: float) -> Health:
    """A transient failure: the failing streak starts (or goes on), the next probe is one interval away."""
    since = health.failing_since if health.failing_since is not None else now
    return Health(since, health.paused, health.last_success, now + probe_s)


def after_pause(health: Health, now: float, probe_s: float) -> Health:
    """An account problem: down at once, whatever ``failover_after_s`` says."""
    since = health.failing_since if health.failing_since is not None else now
    return Health(since, True, health.last_success, now + probe_s)


def after_success(now: float) -> Health:
    """An answer: the backend is up again, for every folder."""
    return Health(last_success=now)


def probe_spent(health: Health, now: float, probe_s: float) -> Health:
    """A probe was sent: the next one waits a full interval, however long this one takes."""
    return Health(health.failing_since, health.paused, health.last_success, now + probe_s)
