"""Throughput of 1, 2 and 3 services on one PostgreSQL journal against a quota, and the database's round
trips per file.

Usage: ``.venv/bin/python bench/bench_hosts.py [--processes 1 2 3] [--files 60] [--quota 120]
[--latency 0.5] [--seconds 3]``. Each row is a fresh journal database on one private PostgreSQL server
(started with ``pg_stat_statements``), one emulator limited to ``--quota`` recognitions a minute answering
after ``--latency`` seconds, and N real ``dropscribe run`` processes sharing the inbox, each with
``concurrency`` 2 and ``requests_per_minute`` = the quota. The processes start first; the files (distinct
tones of ``--seconds``) are then dropped at once, and the clock runs until every one has its outcome.

Round trips are the statements the services ran (``pg_stat_statements`` calls of the service's role,
``BEGIN``/``COMMIT`` included) and the transactions committed (``pg_stat_database.xact_commit``), from the
drop to the last outcome, per file; they include what goes on while the processes wait for the quota
(lease renewals, inbox scans).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.audio import make_tone  # noqa: E402
from tests.support.checker import GENERATION_SUFFIX, TRANSCRIPTION_SUFFIX  # noqa: E402
from tests.support.postgres import PASSWORD, PostgresServer, private_server  # noqa: E402
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for  # noqa: E402

from dropscribe.emulator import Emulator, EmulatorConfig, Fault  # noqa: E402

PASSWORD_ENV = "DROPSCRIBE_BENCH_PG_PASSWORD"
STATEMENTS = "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"


def _finished(layout: Layout) -> int:
    return len([*layout.done.glob("*.json"), *layout.failed.glob("*.error.json")])


def _counters(server: PostgresServer, db: str) -> tuple[int, int]:
    """Statements run by the service's role on ``db``, and transactions committed there."""
    statements = server.rows(
        "SELECT coalesce(sum(s.calls), 0) AS calls FROM pg_stat_statements s"
        " JOIN pg_database d ON d.oid = s.dbid JOIN pg_roles r ON r.oid = s.userid"
        f" WHERE d.datname = '{db}' AND r.rolname = 'dropscribe'",
        "postgres",
    )
    commits = server.rows(f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{db}'", "postgres")
    return int(statements[0]["calls"]), int(commits[0]["xact_commit"])


def run(
    server: PostgresServer, tones: list[Path], processes: int, args: argparse.Namespace
) -> dict[str, Any]:
    emulator = Emulator(EmulatorConfig(api_keys={API_KEY}, requests_per_minute=args.quota))
    emulator.start()
    emulator.add_fault(Fault(path="generation", delay_s=args.latency, times=None))
    services: list[ServiceProcess] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-hosts-") as tmp:
            root = Path(tmp)
            db = server.new_database()
            rate: int | str = "auto" if args.auto else args.quota
            layout = Layout(root, emulator.base_url,
                            dashscope={"requests_per_minute": rate, "concurrency": 2},
                            logging={"format": "json", "level": "info"})  # fmt: skip
            layout.data["state"] = {"url": server.url(db, password=False), "password_env": PASSWORD_ENV}
            for n in range(processes):
                data = {
                    **layout.data,
                    "state": {**layout.data["state"], "path": str(root / f"h{n}" / "s.db")},
                }
                config = root / f"h{n}.yaml"
                config.write_text(yaml.safe_dump(data, sort_keys=False))
                services.append(ServiceProcess(config, {PASSWORD_ENV: PASSWORD}))
            for service in services:
                service.wait_started(60)
            staged = root / "staged"
            staged.mkdir()
            for tone in tones:
                shutil.copyfile(tone, staged / tone.name)
            statements_before, commits_before = _counters(server, db)
            started, dropped_at = time.monotonic(), time.time()
            for tone in tones:
                os.rename(staged / tone.name, layout.inbox / tone.name)
            wait_for(lambda: _finished(layout) >= len(tones), timeout=args.max_seconds, interval=0.1)
            wall_s = time.monotonic() - started
            statements_after, commits_after = _counters(server, db)
            for service in services:
                service.stop()
            # a refused request carries no audio the emulator looked at: recognitions are known by path
            paths = (GENERATION_SUFFIX, TRANSCRIPTION_SUFFIX)
            calls = [r for r in emulator.requests() if r["method"] == "POST" and r["path"].endswith(paths)]
            later = [r for r in calls if datetime.fromisoformat(r["time"]).timestamp() >= dropped_at + 60]
            return {
                "processes": processes, "files": len(tones), "wall_s": wall_s,
                "done": len(list(layout.done.glob("*.json"))),
                "files_per_min": len(tones) / wall_s * 60, "requests_per_min": len(calls) / wall_s * 60,
                "throttled": sum(1 for r in calls if r["status"] == 429),
                # what an ``auto`` rate holds once it has had its first minute to find the quota
                "accepted_per_min_later": (
                    sum(1 for r in later if r["status"] == 200) / (wall_s - 60) * 60 if wall_s > 90 else None
                ),
                "throttled_later": (
                    sum(1 for r in later if r["status"] == 429) / len(later) if later else None
                ),
                "statements_per_file": (statements_after - statements_before) / len(tones),
                "commits_per_file": (commits_after - commits_before) / len(tones),
            }  # fmt: skip
    finally:
        for service in services:
            service.stop()
        emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--quota", type=int, default=120, help="the emulator's recognitions per minute")
    parser.add_argument("--latency", type=float, default=0.5, help="seconds each recognition takes")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each file")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--auto", action="store_true", help="requests_per_minute: auto in every process")
    args = parser.parse_args()
    # the emulator's request log would bury the table
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    server = private_server(STATEMENTS)
    try:
        server.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        with tempfile.TemporaryDirectory(prefix="bench-hosts-audio-") as tmp:
            tones = [make_tone(Path(tmp) / f"memo-{i:03d}.wav", seconds=args.seconds, fmt="wav",
                               freq=200.0 + 7 * i) for i in range(args.files)]  # fmt: skip
            rows = [run(server, tones, n, args) for n in args.processes]
    finally:
        server.destroy()

    rate = "auto" if args.auto else "the quota"
    print(f"quota {args.quota} RPM, {args.latency:g} s per recognition, {args.seconds:g} s WAV files, "
          f"concurrency 2 and requests_per_minute = {rate} in each process")  # fmt: skip
    print()
    print("| processes | files | done | wall s | files/min | requests/min | throttled | "
          "accepted/min after 60 s | throttled after 60 s | statements/file | commits/file |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        later = "–" if r["accepted_per_min_later"] is None else f"{r['accepted_per_min_later']:.1f}"
        share = "–" if r["throttled_later"] is None else f"{r['throttled_later']:.1%}"
        print(f"| {r['processes']} | {r['files']} | {r['done']} | {r['wall_s']:.1f} | "
              f"{r['files_per_min']:.1f} | {r['requests_per_min']:.1f} | {r['throttled']} | {later} | "
              f"{share} | "
              f"{r['statements_per_file']:.1f} | {r['commits_per_file']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
