"""One budget, several processes on one PostgreSQL journal: together they never reserve past it.

Within a process one lock makes the budget check and the reservation one step; across processes the
``budgets`` claim does (``Leases.exclusive``). Without it, two processes can each read the same use,
each see room for one more file, and both reserve. Real processes, a real server, the service's own
gate: each process tries more files than the whole budget holds, all at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import multiprocessing.synchronize
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC
from queue import Empty

import pytest

from dropscribe.core.budget import BudgetLimit
from dropscribe.core.rules import effective_rules
from dropscribe.core.ruleset import EffectiveRules
from dropscribe.service.budgets import BudgetGate, OverBudgetError
from dropscribe.service.compose import LogNotifier, SystemClock
from dropscribe.service.leases import Leases
from tests.support.postgres import shared_server

FILE_S = 10.0
DAILY_S = 100.0  # ten files fit in the day, whoever sends them
PROCESSES = 3
TRIES = 12  # each process alone would take more than the whole budget
ROUNDS = 3  # each round starts the processes together again on a fresh database


def _rules() -> EffectiveRules:
    rules = effective_rules([], default_model="qwen3-asr-flash")
    return dataclasses.replace(rules, budgets=(BudgetLimit(daily_s=DAILY_S, scope="defaults"),))


def _reserve_all(
    url: str, worker: int, shared: bool, start: multiprocessing.synchronize.Barrier,
    done: multiprocessing.synchronize.Barrier, out: multiprocessing.Queue[int],
) -> None:  # fmt: skip
    """One process: try TRIES files as fast as it can, keep what it reserved until every process tried."""
    from dropscribe.adapters.journal.postgres import PostgresJournal

    journal = PostgresJournal(url)
    leases = Leases(journal, lease_s=30.0)
    across: Callable[[], AbstractContextManager[None]] = (
        (lambda: leases.exclusive("budgets")) if shared else nullcontext
    )
    gate = BudgetGate(journal, LogNotifier(), SystemClock(), zone=UTC, paid=frozenset({"dashscope"}),
                      across=across)  # fmt: skip
    rules = _rules()
    reserved = 0
    with contextlib.ExitStack() as held:
        start.wait(timeout=60)
        for n in range(TRIES):
            key = f"{worker:02d}{n:02d}".ljust(64, "0")
            try:
                held.enter_context(gate.spending(key, FILE_S, rules, "dashscope"))
            except OverBudgetError:
                continue
            reserved += 1
        out.put(reserved)
        done.wait(timeout=60)  # open reservations count until every process has tried
    journal.close()


def _round(url: str, *, shared: bool) -> list[int]:
    ctx = multiprocessing.get_context("spawn")
    start, done = ctx.Barrier(PROCESSES), ctx.Barrier(PROCESSES)
    out: multiprocessing.Queue[int] = ctx.Queue()
    procs = [
        ctx.Process(target=_reserve_all, args=(url, w, shared, start, done, out)) for w in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    got = []
    try:
        for _ in procs:
            got.append(out.get(timeout=120))
    except Empty:
        pytest.fail(f"only {len(got)} of {PROCESSES} processes reported")
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    return got


def test_processes_sharing_a_journal_never_reserve_past_one_budget_together() -> None:
    server = shared_server()
    for _ in range(ROUNDS):
        got = _round(server.url(server.new_database()), shared=True)
        assert sum(got) == DAILY_S / FILE_S, f"reserved per process: {got} ({sum(got) * FILE_S:.0f} s)"
