"""One service per journal: a second ``dropscribe run`` on the same state refuses; kill -9 frees the lock."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from dropscribe.adapters.instance import Holder, InstanceLock, lock_path, probe
from dropscribe.emulator import Emulator
from tests.support.audio import make_tone
from tests.support.service import Layout, ServiceProcess, wait_for

EX_TEMPFAIL = 75


def recognitions(emulator: Emulator) -> list[dict[str, Any]]:
    return [r for r in emulator.requests() if "generation" in r["path"]]


def drop_tones(layout: Layout, count: int, first_freq: int = 300) -> list[str]:
    names = []
    for i in range(count):
        name = f"tone{first_freq + i}.wav"
        make_tone(layout.inbox / name, seconds=0.5, fmt="wav", freq=first_freq + 37 * i)
        names.append(name)
    return names


def all_done(layout: Layout, names: list[str]) -> bool:
    return all((layout.done / Path(name).with_suffix(".txt").name).exists() for name in names) and not any(
        (layout.inbox / name).exists() for name in names
    )


def test_second_service_on_the_same_state_refuses_to_start(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """The second process exits 75 naming the first (pid and host) and sends nothing."""
    first = ServiceProcess(layout.config).wait_started()
    services.append(first)
    second = ServiceProcess(layout.config)
    services.append(second)
    names = drop_tones(layout, 3)

    wait_for(lambda: second.proc.poll() is not None, timeout=20)
    second.kill()  # reaps it and joins its output reader
    assert second.proc.returncode == EX_TEMPFAIL, second.output()
    assert f"pid {first.proc.pid}" in second.output()
    assert socket.gethostname() in second.output()
    assert first.proc.poll() is None, "the first service keeps running"

    wait_for(lambda: all_done(layout, names))
    assert len(recognitions(emulator)) == len(names), "each file recognized once, by the first service"
    holder = json.loads(Path(f"{layout.state}.lock").read_text())
    assert (holder["pid"], holder["host"]) == (first.proc.pid, socket.gethostname())
    assert first.stop() == 0


def test_a_restart_after_kill_9_starts_and_finishes_the_work(
    layout: Layout, emulator: Emulator, services: list[ServiceProcess]
) -> None:
    """The lock dies with its process: after kill -9, the next service starts and takes the files."""
    first = ServiceProcess(layout.config).wait_started()
    services.append(first)
    first.kill()  # SIGKILL: no cleanup of any kind runs
    names = drop_tones(layout, 2)

    restarted = ServiceProcess(layout.config).wait_started()
    services.append(restarted)
    wait_for(lambda: all_done(layout, names))
    assert restarted.proc.poll() is None
    assert len(recognitions(emulator)) == len(names)
    holder = json.loads(Path(f"{layout.state}.lock").read_text())
    assert holder["pid"] == restarted.proc.pid
    assert restarted.stop() == 0


def test_a_half_written_lock_file_reads_as_held_by_someone_unknown(tmp_path: Path) -> None:
    """A holder that has not finished writing its name is still a holder; asking never keeps the lock."""
    state = tmp_path / "journal.db"
    lock_path(state).write_bytes(b'{"pid": 12')
    with lock_path(state).open("rb+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert probe(state).running is True
        assert probe(state).holder == Holder(None, None, None)
    assert probe(state).running is False

    with InstanceLock.acquire(state) as lock:
        assert json.loads(lock_path(state).read_text())["pid"] == os.getpid()
        asked = probe(state)
        assert (asked.running, asked.holder) == (True, lock.holder)
    asked = probe(state)
    assert (asked.running, asked.holder) == (False, lock.holder), "the file names the last holder"
