"""Several real services on one PostgreSQL journal and one inbox: each file is claimed by one of them.

Each service has its own ``state.path`` (its status file), as two hosts would; the journal, the inbox and
the done folder are shared.
"""

from __future__ import annotations

import itertools
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from dropscribe.adapters.statusfile import read_status
from dropscribe.emulator import Emulator, EmulatorConfig, Fault
from tests.support.audio import make_tone
from tests.support.checker import recognition_requests, request_time
from tests.support.postgres import PASSWORD, PostgresServer, shared_server
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for

PASSWORD_ENV = "DROPSCRIBE_TEST_PG_PASSWORD"


@pytest.fixture
def database(layout: Layout) -> str:
    return on_a_new_database(layout)


def on_a_new_database(layout: Layout) -> str:
    """Point ``layout``'s journal at a new database of the shared test server; its name."""
    server: PostgresServer = shared_server()
    db = server.new_database()
    layout.data["state"] = {"url": server.url(db, password=False), "password_env": PASSWORD_ENV,
                            "lease_s": 5}  # fmt: skip
    return db


def host_config(layout: Layout, name: str) -> Path:
    """The shared layout's config with this host's own state folder (its status file and staging)."""
    state = {**layout.data["state"], "path": str(layout.root / name / "state.db")}
    data: dict[str, Any] = {**layout.data, "state": state}
    path = layout.root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start(layout: Layout, name: str) -> ServiceProcess:
    return ServiceProcess(host_config(layout, name), env={PASSWORD_ENV: PASSWORD}).wait_started()


def recognitions(emulator: Emulator) -> list[dict[str, Any]]:
    """Requests that carried audio, answered or not: each one may be paid for."""
    return [r for r in emulator.requests() if r.get("audio_sha256")]


def test_two_services_on_one_journal_take_each_file_once(
    layout: Layout, database: str, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    names = [f"f{i:02d}.wav" for i in range(10)]
    emulator.add_fault(Fault(delay_s=0.3, times=None))  # both stay busy a while, so both scan a full inbox
    for i, name in enumerate(names):
        make_tone(layout.inbox / name, seconds=1.0, fmt="wav", freq=300.0 + 40 * i)
    first, second = start(layout, "a"), start(layout, "b")
    services += [first, second]
    wait_for(lambda: all((layout.done / f"{n[:-4]}.txt").exists() for n in names), timeout=60)
    wait_for(lambda: sorted(p.name for p in layout.done.iterdir() if p.suffix == ".wav") == names)
    assert layout.failed_files() == []
    taken = [e["relpath"] for s in (first, second) for e in list(s.events) if e.get("event") == "job_taken"]
    assert sorted(taken) == names  # no file taken by both
    assert len(recognitions(emulator)) == len(names)  # none paid twice


def test_a_paused_process_cannot_finish_a_file_another_took_over(
    layout: Layout, database: str, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    emulator.add_fault(Fault(delay_s=8.0, times=1))
    first = start(layout, "a")
    services.append(first)
    make_tone(layout.inbox / "talk.wav", seconds=1.0, fmt="wav")
    wait_for(lambda: len(recognitions(emulator)) == 1)
    first.signal(signal.SIGSTOP)  # a paused VM: its lease runs out while its request is out
    try:
        second = start(layout, "b")
        services.append(second)
        wait_for(lambda: second.saw("job_done", relpath="talk.wav"), timeout=40)
    finally:
        first.signal(signal.SIGCONT)
    wait_for(lambda: first.saw("lease_lost", relpath="talk.wav"), timeout=30)
    assert not first.saw("job_done", relpath="talk.wav")
    assert sorted(p.name for p in layout.done.iterdir()) == ["talk.json", "talk.txt", "talk.wav"]
    assert layout.failed_files() == []
    assert list(layout.inbox.iterdir()) == []


def test_two_services_keep_one_rate_and_one_concurrency_between_them(
    layout: Layout, database: str, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    # 60 a minute and one request at a time, for both together: each request leaves at least a second
    # after the one before, whichever process sends it
    layout.data["dashscope"].update(requests_per_minute=60, concurrency=1)
    names = [f"g{i}.wav" for i in range(8)]
    first, second = start(layout, "a"), start(layout, "b")
    services += [first, second]
    for i, name in enumerate(names):
        make_tone(layout.inbox / name, seconds=1.0, fmt="wav", freq=500.0 + 30 * i)
    wait_for(lambda: [n for n in layout.done_files() if n.endswith(".wav")] == names, timeout=60)
    senders = {e["relpath"] for e in list(second.events) if e.get("event") == "job_taken"}
    assert 0 < len(senders) < len(names), second.output()[-6000:]
    times = sorted(request_time(r) for r in recognition_requests(emulator))
    assert len(times) == len(names)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) > 0.9, gaps


QUOTA = 40  # a minute's worth, found within the first minute from the starting 60


@pytest.mark.thorough  # most of a minute of the emulator's quota window: in CI's run
def test_two_services_find_one_auto_rate_for_the_account_together(
    tmp_path: Path, services: list[ServiceProcess]
) -> None:
    """``auto`` with two processes: the quota is measured on the sends of both. Each on its own would see
    about half of the account's requests, and take half the quota for all of it."""
    limited = Emulator(EmulatorConfig(api_keys={API_KEY}, requests_per_minute=QUOTA))
    limited.start()
    try:
        layout = Layout(tmp_path / "site", limited.base_url, dashscope={"requests_per_minute": "auto"})
        on_a_new_database(layout)
        for i in range(2 * QUOTA):  # distinct content: the same audio twice would be answered from the first
            make_tone(layout.inbox / f"t{i:02d}.wav", seconds=0.3, fmt="wav", freq=200.0 + 10 * i)
        names = ("a", "b")
        started = [ServiceProcess(host_config(layout, n), env={PASSWORD_ENV: PASSWORD}) for n in names]
        services += started
        for service in started:
            service.wait_started()

        def limits_found() -> list[int] | None:
            # each service's own report, the one `status` shows (written every half second)
            reports = [read_status(layout.root / name / "state.db") or {} for name in names]
            found = [report.get("rates", {}).get("dashscope", {}).get("limit_found") for report in reports]
            return None if None in found else found

        found = wait_for(limits_found, timeout=90)
        assert all(0.9 * QUOTA <= limit <= QUOTA for limit in found), found
        assert all(s.saw("job_taken") for s in started), "both processes sent"
        refused = [r for r in limited.requests() if "generation" in r["path"] and r["status"] == 429]
        assert len(refused) <= 8, len(refused)  # the refusal that measured the quota, and those in flight
        assert list(layout.failed.rglob("*.wav")) == []
    finally:
        limited.stop()


def test_two_services_never_overrun_one_budget_together(
    layout: Layout, database: str, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    # room for four 2 s files a day; both services take files at once, and only one at a time may check
    # the budget and reserve, or each could see room for the same last seconds
    layout.data["defaults"] = {"budget": {"daily_audio_h": 8.5 / 3600}}
    emulator.add_fault(Fault(delay_s=0.3, times=None))
    first, second = start(layout, "a"), start(layout, "b")
    services += [first, second]
    names = [f"b{i}.wav" for i in range(10)]
    for i, name in enumerate(names):
        make_tone(layout.inbox / name, seconds=2.0, fmt="wav", freq=350.0 + 25 * i)
    # the move is a file's last step: its transcript is in done/ a moment before the recording
    wait_for(lambda: len([n for n in layout.done_files() if n.endswith(".wav")]) == 4, timeout=60)
    wait_for(lambda: any(s.saw("budget_reached") for s in (first, second)), timeout=30)
    paid = recognition_requests(emulator)
    assert sum(r["duration_s"] for r in paid) <= 8.5
    assert len(paid) == 4
    assert sorted(p.name for p in layout.inbox.iterdir() if p.suffix == ".wav") == sorted(
        set(names) - {n for n in layout.done_files() if n.endswith(".wav")}
    )
