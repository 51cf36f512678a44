"""Carrying out the dispatch policy: build its situation from the scanners and the queue state, start
what it says, and look at each file once more right before it starts; and the pauses per backend that
hold files back (:class:`BackendSettler`)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

from dropscribe.config.model import DEFAULT_BACKEND
from dropscribe.core import dispatch
from dropscribe.core.dispatch import Key
from dropscribe.core.errors import AccountError
from dropscribe.core.gate import Fingerprint
from dropscribe.service.backend_health import BackendAccountError, BackendHealth, encode_pauses
from dropscribe.service.compose import Wiring
from dropscribe.service.queue_state import QueueState
from dropscribe.service.settle import Settler


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
        for key in [k for k in q.targets if k not in q.in_flight]:
            del q.targets[key]
        situation = dispatch.Situation(
            queues=(), now=now, capacity=2 * ds.concurrency, in_flight=frozenset(q.in_flight),
            not_before=q.not_before, busy=frozenset(q.targets.values()), pause_probe_at=q.backend_probe_at,
            pause_probe_s=ds.pause_probe_s, state_full=q.state_full is not None,
            settles_at=min((s.next_due() for s in wiring.scanners.values() if s.settling), default=None),
        )  # fmt: skip
        if not dispatch.may_start(situation):
            return None
        queues = self._queues(situation, wiring)
        situation = dataclasses.replace(situation, queues=queues, held=self._held(queues, wiring))
        self._wake_incomplete(situation.queues, wiring)
        refused: set[Key] = set()
        while True:
            plan = dispatch.plan(dataclasses.replace(situation, refused=frozenset(refused)))
            refusal = self._start(plan, now, wiring)
            if refusal is None:
                break
            refused.add(refusal)
        q.backend_probe_at.update(plan.pause_probe_at)
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

    def _held(self, queues: tuple[dispatch.InboxQueue, ...], wiring: Wiring) -> dict[Key, str]:
        """The files that wait for a paused backend (no fallback to go to), with its name."""
        health = self.queue.health
        if health is None or not health.pauses():
            return {}
        held: dict[Key, str] = {}
        for queue in queues:
            candidates = wiring.scanners[queue.name].candidates
            for relpath in queue.head:
                rules = candidates.get(relpath)
                backend = health.holding(rules) if rules is not None else None
                if backend is not None:
                    held[(queue.name, relpath)] = backend
        return held

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
            self.queue.targets[key] = rules.backend
            self._submit(by_path[start.inbox], start.relpath, rules, probe=start.probe)
        return None


class BackendSettler(Settler):
    """The settler with pauses per backend: recorded in :class:`BackendHealth`, told from the loop."""

    def __init__(self, *args: Any, health: BackendHealth, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.health = health

    def pause(self, exc: AccountError, pause_probe_s: float) -> None:
        backend = exc.backend if isinstance(exc, BackendAccountError) else DEFAULT_BACKEND
        info = {"code": exc.remote_code, "message": exc.message, "since": self.clock.time()}
        self.health.pause(backend, info)
        self.state.backend_probe_at[backend] = self.clock.monotonic() + pause_probe_s
        self.announce("", request_id=exc.request_id)

    def unpause(self, why: str) -> None:
        """After a file went through: tell what changed (an answer from a paused backend resumed it)."""
        self.announce(why)

    def resume_all(self, why: str) -> None:
        self.health.resume_all()
        self.announce(why)

    def announce(self, why: str, *, request_id: str | None = None) -> None:
        """Journal and notify every pause begun or ended since the last look (a worker may have paused a
        backend on its way to a fallback)."""
        now_paused = self.health.pauses()
        before = self.state.paused_backends
        if now_paused == before:
            return
        for name, info in now_paused.items():
            if before.get(name, {}).get("code") != info.get("code"):
                self.notifier.notify(
                    "queue_paused", backend=name, code=info.get("code"), reason=info.get("message"),
                    request_id=request_id, hint=f"files for backend {name} without a fallback_backend "
                    "stay in their inboxes; fix the key or account, then reload with SIGHUP",
                )  # fmt: skip
        for name in before:
            if name not in now_paused:
                self.state.backend_probe_at.pop(name, None)
                self.notifier.notify("queue_resumed", backend=name, reason=why or "the backend answered")
        self.state.paused_backends = dict(now_paused)
        self.journal.set_meta("paused", encode_pauses(now_paused))
