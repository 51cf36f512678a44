"""One view of every host: two real services share one PostgreSQL journal and one inbox; ``status``,
``explain``, ``/api/status``, the page and ``/metrics`` show both, which one holds a file, and, after one is
killed, that it went silent and its claim expired until the other took the file over and finished it."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dropscribe.emulator import Emulator, Fault
from tests.support.audio import make_tone
from tests.support.postgres import PASSWORD, PostgresServer, shared_server
from tests.support.s3 import unused_port
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for

PASSWORD_ENV = "DROPSCRIBE_TEST_PG_PASSWORD"
LEASE_S = 5


@pytest.fixture
def server() -> PostgresServer:
    return shared_server()


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DASHSCOPE_API_KEY": API_KEY, PASSWORD_ENV: PASSWORD}
    return subprocess.run([sys.executable, "-m", "dropscribe", *args, "-c", str(config)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)  # fmt: skip


def status_json(config: Path) -> dict[str, Any]:
    done = run_cli(config, "status", "--json")
    assert done.returncode == 0, done.stderr
    body: dict[str, Any] = json.loads(done.stdout)
    return body


def api_status(base: str) -> dict[str, Any]:
    reply = httpx.get(f"{base}/api/status", timeout=10)
    assert reply.status_code == 200
    body: dict[str, Any] = reply.json()
    return body


def metric(text: str, name: str, **labels: str) -> float | None:
    shown = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{name}{{{re.escape(shown)}}} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def by_pid(view: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {h["pid"]: h for h in view["hosts"]}


def test_every_host_is_shown_with_the_files_it_holds_and_a_dead_one_as_silent(
    layout: Layout, emulator: Emulator, server: PostgresServer, services: list[ServiceProcess]
) -> None:
    url = server.url(server.new_database(), password=False)
    bases, configs = [], []
    for name in ("a", "b"):  # one journal and one inbox; each its own state folder and web port
        data = copy.deepcopy(layout.data)
        port = unused_port()
        data["state"] = {"path": str(layout.root / f"state-{name}" / "journal.db"), "url": url,
                         "password_env": PASSWORD_ENV, "staging": str(layout.root / f"staging-{name}"),
                         "lease_s": LEASE_S}  # fmt: skip
        data["dashscope"]["timeout_s"] = 120  # the held request must not time out while it is looked at
        data["web"] = {"listen": f"127.0.0.1:{port}"}
        config = layout.root / f"{name}.yaml"
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        configs.append(config)
        bases.append(f"http://127.0.0.1:{port}")
        services.append(ServiceProcess(config, env={PASSWORD_ENV: PASSWORD}).wait_started())
    pids = [s.proc.pid for s in services]
    hostname = socket.gethostname()

    # both hosts are seen, whichever is asked
    view = wait_for(lambda: (v := api_status(bases[1]).get("hosts")) and len(v["hosts"]) == 2 and v)
    assert sorted(view) == ["counts", "expired", "hosts", "lease_s", "running"]
    assert sorted(by_pid(view)) == sorted(pids)
    assert {h["state"] for h in view["hosts"]} == {"alive"}
    assert {h["hostname"] for h in view["hosts"]} == {hostname}

    # the answer is slow: the file stays claimed by the one that took it
    emulator.add_fault(Fault(delay_s=60.0, times=1))
    make_tone(layout.inbox / "held.wav", seconds=1.0, fmt="wav")

    def holder_pid() -> int | None:
        for host in api_status(bases[0])["hosts"]["hosts"]:
            if any(f["relpath"] == "held.wav" for f in host["files"]):
                return int(host["pid"])
        return None

    held_by = wait_for(holder_pid)
    holder = services[pids.index(held_by)]
    survivor_index = 1 - pids.index(held_by)
    survivor, survivor_config = services[survivor_index], configs[survivor_index]

    doc = status_json(survivor_config)
    assert doc["service"]["running"] is True
    assert sorted(by_pid(doc["hosts"])) == sorted(pids)
    assert [f["relpath"] for f in by_pid(doc["hosts"])[held_by]["files"]] == ["held.wav"]
    text = run_cli(survivor_config, "status").stdout
    assert "service: running on 2 host(s)" in text
    assert f"{hostname} pid {held_by}: alive" in text
    assert "holds held.wav (lease runs" in text
    explained = run_cli(survivor_config, "explain", str(layout.inbox / "held.wav"))
    assert explained.returncode == 0, explained.stderr
    assert f"now: being processed by {hostname} pid {held_by} (lease runs" in explained.stdout
    for base in bases:
        scraped = httpx.get(f"{base}/metrics", timeout=10).text
        assert metric(scraped, "dropscribe_hosts", state="alive") == 2
        assert metric(scraped, "dropscribe_hosts", state="silent") == 0
        assert metric(scraped, "dropscribe_claims", host=hostname) == 1
        page = httpx.get(base, timeout=10).text
        assert '<table id="hosts">' in page
        assert f"<td>{held_by}</td>" in page
        assert "held.wav" in page

    # the holder dies without a word; the survivor is paused so the expired claim can be seen
    holder.kill()
    survivor.signal(signal.SIGSTOP)
    try:

        def expired() -> dict[str, Any] | None:
            view = status_json(survivor_config)["hosts"]
            return view if view["expired"] and by_pid(view)[held_by]["state"] == "silent" else None

        view = wait_for(expired, timeout=30)
        assert [(e["relpath"], e["pid"]) for e in view["expired"]] == [("held.wav", held_by)]
        assert by_pid(view)[held_by]["files"] == []
        text = run_cli(survivor_config, "status").stdout
        assert f"{hostname} pid {held_by}: silent (presumed dead" in text
        assert f"expired: held.wav (held by {hostname} pid {held_by}, lease expired" in text
        explained = run_cli(survivor_config, "explain", str(layout.inbox / "held.wav"))
        assert f"claimed by {hostname} pid {held_by}, whose lease expired" in explained.stdout
    finally:
        survivor.signal(signal.SIGCONT)

    # the survivor takes the file over and finishes it; the dead host stays listed as silent
    wait_for(lambda: (layout.done / "held.wav").exists() and (layout.done / "held.txt").exists(), timeout=60)
    base = bases[survivor_index]
    view = wait_for(lambda: (v := api_status(base)["hosts"]) and by_pid(v)[pids[survivor_index]]["state"]
                    == "alive" and v)  # fmt: skip
    assert view["expired"] == []
    assert by_pid(view)[held_by]["state"] == "silent"
    assert view["counts"] == {"alive": 1, "silent": 1, "stopped": 0}
    scraped = httpx.get(f"{base}/metrics", timeout=10).text
    assert metric(scraped, "dropscribe_hosts", state="silent") == 1
    assert metric(scraped, "dropscribe_claims", host=hostname) == 0
    assert PASSWORD not in scraped + json.dumps(view) + text + explained.stdout
    assert layout.failed_files() == []

    # a clean stop is told apart from a death; with no host alive, the service is not running
    assert survivor.stop() == 0
    view = status_json(survivor_config)["hosts"]
    assert by_pid(view)[pids[survivor_index]]["state"] == "stopped"
    assert by_pid(view)[held_by]["state"] == "silent"
    assert view["running"] is False
    assert "service: not running on any host" in run_cli(survivor_config, "status").stdout
