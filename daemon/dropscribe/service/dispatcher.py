"""Carrying out the dispatch policy: build its situation from the scanners and the queue state, start
what it says, and look at each file once more right before it starts."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

from dropscribe.core import dispatch
from dropscribe.core.dispatch import Key
from dropscribe.core.gate import Fingerprint
from dropscribe.service.compose import Wiring
from dropscribe.service.queue_state import QueueState


class Dispatcher:
    def __init__(self, queue: QueueState, submit: Callable[..., None]) -> None:
        self.queue = queue
        self._submit = submit  # (inbox, relpath, rules, probe=...): hands one file to a worker

    def start_due(self, now: float, wiring: Wiring) -> float | None:
        """Start what :func:`dropscribe.core.dispatch.plan` says; returns when to look again.

        A file found changed or gone at its last look is refused and the plan is made again without
        it, from the same situation, so the rest of the turn goes exactly as if it had not been there.
        """
        q = self.queue
        ds = wiring.settings.dashscope
        situation = dispatch.Situation(
            queues=(), now=now, capacity=2 * ds.concurrency, in_flight=frozenset(q.in_flight),
            not_before=q.not_before, paused=q.paused is not None, pause_probe_at=q.pause_probe_at,
            pause_probe_s=ds.pause_probe_s, state_full=q.state_full is not None,
        )  # fmt: skip
        if not dispatch.may_start(situation):
            return None
        situation = dataclasses.replace(situation, queues=self._queues(situation, wiring))
        self._wake_incomplete(situation.queues, wiring)
        refused: set[Key] = set()
        while True:
            plan = dispatch.plan(dataclasses.replace(situation, refused=frozenset(refused)))
            refusal = self._start(plan, now, wiring)
            if refusal is None:
                break
            refused.add(refusal)
        q.pause_probe_at = plan.pause_probe_at
        for name, probe_at in plan.output_probe_at.items():
            if name in q.output_full:
                q.output_full[name]["probe_at"] = probe_at
        return plan.look_again_at

    def _queues(self, situation: dispatch.Situation, wiring: Wiring) -> tuple[dispatch.InboxQueue, ...]:
        q = self.queue
        length = dispatch.head_length(situation.capacity, len(q.not_before), len(q.in_flight))
        queues = []
        for inbox in wiring.settings.inboxes:
            name = str(inbox.path)
            blocked = q.output_full.get(name)
            queues.append(dispatch.InboxQueue(
                name, tuple(itertools.islice(wiring.scanners[name].candidates, length)),
                output_probe_at=blocked["probe_at"] if blocked is not None else None,
                output_probe_s=dispatch.output_probe_s(inbox.rescan_s),
            ))  # fmt: skip
        return tuple(queues)

    def _wake_incomplete(self, queues: tuple[dispatch.InboxQueue, ...], wiring: Wiring) -> None:
        """An unfinished-looking file that changed since (its writer is back) need not wait any more."""
        q = self.queue
        if not q.incomplete_at:
            return
        waiting: dict[Key, Fingerprint] = {}
        seen: dict[Key, Fingerprint] = {}
        for queue in queues:
            observations = wiring.scanners[queue.name].observations
            for relpath in queue.head:
                key = (queue.name, relpath)
                if key not in q.incomplete_at:
                    continue
                waiting[key] = q.incomplete_at[key]
                observed = observations.get(relpath)
                if observed is not None:
                    seen[key] = observed.fingerprint
        for key in dispatch.woken(waiting, seen):
            del q.incomplete_at[key]
            q.not_before.pop(key, None)

    def _start(self, plan: dispatch.Plan, now: float, wiring: Wiring) -> Key | None:
        """Start the plan's files not started yet; the first one refused at its last look stops it."""
        by_path = {str(inbox.path): inbox for inbox in wiring.settings.inboxes}
        for start in plan.starts:
            key = (start.inbox, start.relpath)
            if key in self.queue.in_flight:
                continue  # started by an earlier pass of this turn
            scanner = wiring.scanners[start.inbox]
            if not scanner.recheck(start.relpath, now, set()):
                return key  # changed or gone since it was seen settled: the gate has it again
            rules = scanner.candidates.pop(start.relpath)
            self._submit(by_path[start.inbox], start.relpath, rules, probe=start.probe)
        return None
