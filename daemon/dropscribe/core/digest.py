"""Flood control for messages to people: a burst of events becomes one summary, not hundreds of mails.

Programs (the webhook) get every event; people get what they can read. Pending messages are held
until the events stop coming for ``quiet_s`` (or the oldest has waited ``max_hold_s``), so a burst is
seen whole. Then a few are sent one by one; more than ``few`` become one summary with the count and
the first names, and at most one summary goes out per ``window_s``: a flood that lasts an hour gives
one message a minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DigestPolicy:
    quiet_s: float = 2.0
    max_hold_s: float = 30.0
    window_s: float = 60.0
    few: int = 3  # up to this many pending are sent one by one
    names: int = 5  # a summary names this many


@dataclass(frozen=True)
class Pending:
    id: str
    at: float  # when the event happened
    label: str  # what happened, in a few words


@dataclass(frozen=True)
class Message:
    ids: tuple[str, ...]
    title: str
    body: str

    @property
    def summary(self) -> bool:
        return len(self.ids) > 1


@dataclass(frozen=True)
class Plan:
    messages: tuple[Message, ...]
    look_again_at: float | None  # when to decide again about what is held; None: nothing held


def plan(
    pending: Sequence[Pending], now: float, *, last_summary_at: float | None, policy: DigestPolicy
) -> Plan:
    """What to send to people now, from the messages waiting (oldest first or not)."""
    if not pending:
        return Plan((), None)
    ordered = sorted(pending, key=lambda item: item.at)
    oldest, newest = ordered[0].at, ordered[-1].at
    ready_at = min(newest + policy.quiet_s, oldest + policy.max_hold_s)
    if now < ready_at:
        return Plan((), ready_at)
    if len(ordered) <= policy.few:
        return Plan(tuple(Message((item.id,), item.label, item.label) for item in ordered), None)
    if last_summary_at is not None and now < last_summary_at + policy.window_s:
        return Plan((), last_summary_at + policy.window_s)
    return Plan((summary(ordered, policy.names),), None)


def summary(items: Sequence[Pending], names: int) -> Message:
    """One message for many events: how many, of which kinds, and the first few of them."""
    kinds: dict[str, int] = {}
    for item in items:
        kind = item.label.split(" ", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    counted = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
    lines = [f"{len(items)} events: {counted}", ""]
    lines += [f"- {item.label}" for item in items[:names]]
    if len(items) > names:
        lines.append(f"… and {len(items) - names} more")
    return Message(tuple(item.id for item in items), f"{len(items)} events ({counted})", "\n".join(lines))
