"""Several services on one PostgreSQL journal and one inbox, disturbed: kill -9s across three of them, and
the database restarted under two. Nothing is lost, nothing is done twice, nothing is paid twice, and the
account's quota is kept by all of them together.

The kill loop reuses the corpus of the single-service loop (``test_kill_loop.py``) and its end-of-run
checker, reading the journal from PostgreSQL. ``DROPSCRIBE_KILLS`` sets the number of kills of the soak
variant (default 100, what CI runs) and ``DROPSCRIBE_SEED`` replays a given run.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from dropscribe.emulator import Emulator, EmulatorConfig, Fault
from tests.reliability.test_kill_loop import (
    BATCHES,
    CALL_DELAY_S,
    EARLY_KILLS,
    EXPOSURE_S,
    KILL_AFTER_S,
    NO_CRASH_POINT,
    RESCAN_S,
    SETTLE_S,
    all_outcomes_in,
    build_corpus,
    drop,
    outcome_documents,
)
from tests.support.audio import make_tone, sha256_file
from tests.support.checker import (
    JournalQuery,
    account_for_kills,
    check_outcome,
    request_time,
    unexplained_repeats,
)
from tests.support.postgres import PASSWORD, PostgresServer, private_server, shared_server
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for

KILLS = int(os.environ.get("DROPSCRIBE_KILLS", "100"))
HOSTS = ("a", "b", "c")
PASSWORD_ENV = "DROPSCRIBE_TEST_PG_PASSWORD"
LEASE_S = 5  # the minimum: a killed host's files move on to another within seconds
WINDOW_S = 60.0
RESTART_CALL_S = 1.0  # both slots are nearly always busy, so the outage cuts calls in flight


@dataclass
class Site:
    """One inbox, one journal database, and a config per host (each with its own state folder)."""

    layout: Layout
    server: PostgresServer
    db: str
    configs: dict[str, Path] = field(default_factory=dict)

    def start(self, host: str, **env: str) -> ServiceProcess:
        return ServiceProcess(self.configs[host], {**NO_CRASH_POINT, PASSWORD_ENV: PASSWORD, **env})

    def journal(self) -> JournalQuery:
        return functools.partial(self.server.rows, db=self.db)

    def stagings(self) -> list[Path]:
        return [self.layout.root / host / "staging" for host in self.configs]


def make_site(
    root: Path, emulator: Emulator, server: PostgresServer, hosts: tuple[str, ...], **over: Any
) -> Site:
    db = server.new_database()
    layout = Layout(root, emulator.base_url, **over)
    layout.data["state"] = {"url": server.url(db, password=False), "password_env": PASSWORD_ENV,
                            "lease_s": LEASE_S}  # fmt: skip
    layout.write()
    site = Site(layout, server, db)
    for host in hosts:
        data = {**layout.data, "state": {**layout.data["state"], "path": str(root / host / "state.db")}}
        site.configs[host] = root / f"{host}.yaml"
        site.configs[host].write_text(yaml.safe_dump(data, sort_keys=False))
    return site


@pytest.fixture
def quota_emulator() -> Iterator[Callable[[int], Emulator]]:
    """Starts emulators whose account allows ``rpm`` recognitions a minute (0: no limit)."""
    started: list[Emulator] = []

    def start(rpm: int) -> Emulator:
        emu = Emulator(EmulatorConfig(host="127.0.0.1", port=0, api_keys={API_KEY}, task_run_s=0.5,
                                      requests_per_minute=rpm))  # fmt: skip
        emu.start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


def busiest_window(times: list[float], window_s: float = WINDOW_S) -> int:
    """The most events inside any window of ``window_s`` seconds."""
    times = sorted(times)
    most, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= window_s:
            first += 1
        most = max(most, last - first + 1)
    return most


def quota_calls(emulator: Emulator) -> list[dict[str, Any]]:
    """What the account's per-minute quota counts: every recognition call or task submission sent."""
    return [r for r in emulator.requests() if r["method"] == "POST" and r.get("audio_sha256")]


def _started_or_gone(service: ServiceProcess) -> bool:
    return service.saw("service_started") or service.proc.poll() is not None


def kill_loop(root: Path, emulator: Emulator, services: list[ServiceProcess], kills: int, quota: int) -> None:
    """Three services work through the corpus while one of them at a time is killed and restarted."""
    seed = int(os.environ.get("DROPSCRIBE_SEED", str(random.SystemRandom().randrange(2**32))))
    print(f"\nthree-host kill loop: seed={seed} kills={kills} (replay with DROPSCRIBE_SEED={seed})")
    rng = random.Random(seed)
    started = time.monotonic()
    site = make_site(
        root / "site", emulator, shared_server(), HOSTS,
        inbox={"settle_s": SETTLE_S, "rescan_s": RESCAN_S}, defaults={"chunk_max_s": 60},
        dashscope={"requests_per_minute": quota},
    )  # fmt: skip
    layout = site.layout
    scratch = root / "scratch"
    scratch.mkdir()
    corpus = build_corpus(scratch, rng)
    order = list(corpus.files)
    rng.shuffle(order)
    drop_at: dict[int, list[str]] = {}
    for b in range(BATCHES):  # the batches arrive over the first 60 % of the loop
        drop_at.setdefault(round(b * kills * 0.6 / BATCHES), []).extend(order[b::BATCHES])
    emulator.add_fault(Fault(path="generation", delay_s=CALL_DELAY_S, times=None))

    running = {host: site.start(host) for host in HOSTS}
    services.extend(running.values())
    kill_times: list[float] = []
    died_alone: list[str] = []
    crashed: list[dict[str, Any]] = []
    for iteration in range(kills):
        if iteration in drop_at:
            drop(corpus, drop_at.pop(iteration), layout.inbox)
        host = rng.choice(HOSTS)
        victim = running[host]
        if rng.random() >= EARLY_KILLS:  # most kills land while it works, some during its start-up
            with contextlib.suppress(AssertionError):  # one that died by itself is reported below
                wait_for(functools.partial(_started_or_gone, victim), 30)
        time.sleep(rng.uniform(*KILL_AFTER_S))
        if victim.proc.poll() is not None:
            died_alone.append(f"iteration {iteration}, host {host}: exit {victim.proc.returncode}\n"
                              f"{victim.output()[-2000:]}")  # fmt: skip
        kill_times.append(time.time())
        victim.kill()
        crashed += [e for e in victim.events if e.get("event") == "job_crashed"]
        running[host] = site.start(host)
        services.append(running[host])
    for batch in drop_at.values():
        drop(corpus, batch, layout.inbox)
    loop_s = time.monotonic() - started
    finished_in_loop = outcome_documents(layout)

    inputs = corpus.shas
    with contextlib.suppress(AssertionError):  # on timeout the checker says precisely what is missing
        wait_for(lambda: all_outcomes_in(layout, inputs), timeout=180)
    for host, service in running.items():
        if service.proc.poll() is not None:
            died_alone.append(f"host {host} after the loop: exit {service.proc.returncode}\n"
                              f"{service.output()[-2000:]}")  # fmt: skip
        service.stop()
        crashed += [e for e in service.events if e.get("event") == "job_crashed"]
    # each host's staging folder is judged last, below: the promises about files and payments first
    report = check_outcome(layout, inputs, emulator, journal=site.journal())
    account = account_for_kills(report, emulator, kill_times, EXPOSURE_S)
    kills_on_calls = account.kills_on_calls
    sent = quota_calls(emulator)
    throttled = [r for r in emulator.requests() if r["status"] == 429]
    busiest = busiest_window([request_time(r) for r in sent])
    outcomes = list(report.outcomes.values())
    print(
        f"three-host kill-loop summary: seed={seed} kills={len(kill_times)} "
        f"kills_during_calls={kills_on_calls} "
        f"files={len(inputs)} finished_during_loop={finished_in_loop} done={outcomes.count('done')} "
        f"failed={outcomes.count('failed')} recognitions={report.total_recognitions} "
        f"duplicates_paid={report.duplicates_paid} sent={len(sent)} busiest_minute={busiest}/{quota} "
        f"throttled={len(throttled)} jobs_crashed={len(crashed)} "
        f"loop={loop_s:.0f}s total={time.monotonic() - started:.0f}s"
    )
    assert not died_alone, "a service died by itself:\n" + "\n".join(died_alone)
    assert not throttled, f"{len(throttled)} replies were 429 (the shared quota was not kept)"
    assert busiest <= quota, f"{busiest} recognitions within one minute, over the quota of {quota}"
    assert not account.unexplained, unexplained_repeats(account)
    # each kill cuts at most the calls then in flight in its process (concurrency 2)
    assert report.duplicates_paid <= 2 * kills_on_calls
    assert not crashed, "jobs crashed after kills:\n" + "\n".join(
        f"  {e.get('relpath')}: {e.get('error')}" for e in crashed
    )
    assert {r for r, o in report.outcomes.items() if o == "failed"} == {"notes.mp3", "alice/noise.wav"}
    if kills >= 50:  # a loop whose kills never meet a call proves nothing about the paid window
        assert kills_on_calls > 0, "no kill landed during a call"
        assert finished_in_loop > 0, "no file was finished between kills"
    # a killed host's staged audio for a file another host then finished must not stay on its disk
    leftovers = [str(p.relative_to(root)) for d in site.stagings() for p in d.rglob("*") if p.is_file()]
    assert not leftovers, f"staged audio left behind: {leftovers}"


@pytest.mark.slow
@pytest.mark.timeout(420 + 2 * KILLS)
def test_kills_across_three_hosts_lose_nothing_pay_once_and_keep_the_quota(
    tmp_path: Path, quota_emulator: Callable[[int], Emulator], services: list[ServiceProcess]
) -> None:
    """Hundreds of kill -9s spread over three services: each file once, paid once, the quota kept."""
    # 30 a minute: the ~40 recognitions then need longer than the loop's busiest minutes give them
    kill_loop(tmp_path, quota_emulator(30), services, KILLS, quota=30)


@pytest.mark.thorough
def test_a_few_kills_across_three_hosts(
    tmp_path: Path, quota_emulator: Callable[[int], Emulator], services: list[ServiceProcess]
) -> None:
    kill_loop(tmp_path, quota_emulator(120), services, 10, quota=120)


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server this test may stop and start without disturbing any other test's database."""
    server = private_server()
    try:
        yield server
    finally:
        server.destroy()


def test_two_hosts_wait_out_a_database_restart_and_finish_every_file_once(
    tmp_path: Path,
    quota_emulator: Callable[[int], Emulator],
    own_server: PostgresServer,
    services: list[ServiceProcess],
) -> None:
    emulator = quota_emulator(0)
    emulator.add_fault(Fault(delay_s=RESTART_CALL_S, times=None))  # busy, so the outage lands mid-work
    site = make_site(tmp_path / "site", emulator, own_server, ("a", "b"))
    layout = site.layout
    inputs: dict[str, str] = {}
    for i in range(16):
        path = make_tone(layout.inbox / f"f{i:02d}.wav", seconds=1.0, fmt="wav", freq=300.0 + 30 * i)
        inputs[path.name] = sha256_file(path)
    hosts = [site.start("a").wait_started(), site.start("b").wait_started()]
    services.extend(hosts)
    wait_for(lambda: outcome_documents(layout) >= 3, timeout=60)
    down_at = time.time()
    own_server.stop()
    # the database stays down until both services met the outage (a scan, a renewal or a record) and
    # the calls out when it went away were answered, so their answers meet it too; back within a lease
    wait_for(lambda: all(h.saw("journal_unreachable") for h in hosts), timeout=30)
    time.sleep(max(0.0, down_at + RESTART_CALL_S + 0.3 - time.time()))
    finished_while_down = outcome_documents(layout)
    own_server.start()
    up_at = time.time()
    with contextlib.suppress(AssertionError):  # a stall is described below, with the database's view
        wait_for(lambda: all_outcomes_in(layout, inputs), timeout=60)
    left = sorted(p.name for p in layout.inbox.iterdir())
    assert not left, (
        f"{len(left)} file(s) never finished after the restart: {left}\n"
        f"slots: {own_server.rows('SELECT slot, holder FROM slots ORDER BY slot', site.db)}\n"
        f"holders: {[h.proc.pid for h in hosts]} (pids), "
        f"claims: {own_server.rows('SELECT relpath, holder FROM claims', site.db)}"
    )
    assert all(h.proc.poll() is None for h in hosts), "a service gave up instead of waiting"
    for host in hosts:
        assert host.stop() == 0
    report = check_outcome(layout, inputs, emulator, journal=site.journal(), staging=site.stagings())
    assert set(report.outcomes.values()) == {"done"}
    assert outcome_documents(layout) > finished_while_down, "nothing was finished after the restart"
    # an answer that arrives while the journal is down is held and recorded once it is back, but its
    # file's lease may run out meanwhile and the other host ask again; nothing else may be paid twice:
    # every repeat's first request was out when the database went away
    repeated = [r for requests in report.paid_by_audio.values() for r in requests[:-1]]
    outside = [r for r in repeated if not down_at - RESTART_CALL_S - 0.35 <= request_time(r) <= up_at]
    assert not outside, f"paid again although the outage did not cut the earlier call: {outside}"
    assert report.duplicates_paid <= 2 * len(hosts)
    crashed = [e for h in hosts for e in h.events if e.get("event") == "job_crashed"]
    assert not crashed, crashed


def test_a_file_moved_while_the_database_was_away_is_finished_once_it_answers(
    tmp_path: Path,
    quota_emulator: Callable[[int], Emulator],
    own_server: PostgresServer,
    services: list[ServiceProcess],
) -> None:
    """The move is done, its record cannot be: once the database answers, the same process finishes the
    file (no restart), paying nothing again."""
    emulator = quota_emulator(0)
    site = make_site(tmp_path / "site", emulator, own_server, ("a",))
    host = site.start("a", DROPSCRIBE_STALL_AT="after_move:4").wait_started()
    services.append(host)
    path = make_tone(site.layout.inbox / "talk.wav", seconds=1.0, fmt="wav")
    inputs = {path.name: sha256_file(path)}
    wait_for(lambda: host.saw("stall_point", point="after_move"), timeout=30)
    assert (site.layout.done / "talk.wav").exists()
    own_server.stop()  # the worker wakes to record the move while the database is away
    # the record of the move failed: nothing is taken until the journal answers again
    wait_for(lambda: host.saw("state_full"), timeout=30)
    own_server.start()

    def states() -> list[object]:
        return [row["state"] for row in site.journal()("SELECT state FROM jobs")]

    with contextlib.suppress(AssertionError):
        wait_for(lambda: states() == ["done"], timeout=30)
    assert states() == ["done"], "the moved file was never recorded as done"
    assert host.proc.poll() is None, "the service gave up instead of waiting"
    assert host.stop() == 0
    report = check_outcome(site.layout, inputs, emulator, journal=site.journal(), staging=site.stagings())
    assert report.outcomes == {"talk.wav": "done"}
    assert report.duplicates_paid == 0


def test_an_answer_that_arrives_while_the_database_is_away_is_held_not_paid_again(
    tmp_path: Path,
    quota_emulator: Callable[[int], Emulator],
    own_server: PostgresServer,
    services: list[ServiceProcess],
) -> None:
    """The recognition is answered (and paid) while its record cannot be written: the worker keeps the
    answer until the database is back and records it then, instead of asking again."""
    emulator = quota_emulator(0)
    site = make_site(tmp_path / "site", emulator, own_server, ("a",))
    host = site.start("a", DROPSCRIBE_STALL_AT="after_call:3").wait_started()
    services.append(host)
    path = make_tone(site.layout.inbox / "talk.wav", seconds=1.0, fmt="wav")
    inputs = {path.name: sha256_file(path)}
    wait_for(lambda: host.saw("stall_point", point="after_call"), timeout=30)
    stalled_at = time.monotonic()
    own_server.stop()  # the worker wakes with the answer in hand and the database away
    time.sleep(max(0.0, stalled_at + 3.0 + 1.0 - time.monotonic()))  # its record met the outage
    own_server.start()

    def states() -> list[object]:
        return [row["state"] for row in site.journal()("SELECT state FROM jobs")]

    with contextlib.suppress(AssertionError):
        wait_for(lambda: states() == ["done"], timeout=30)
    assert states() == ["done"], host.output()[-4000:]
    assert host.stop() == 0
    report = check_outcome(site.layout, inputs, emulator, journal=site.journal(), staging=site.stagings())
    assert report.outcomes == {"talk.wav": "done"}
    assert report.duplicates_paid == 0
    assert host.saw("answer_held")
    assert host.saw("answer_recorded")
