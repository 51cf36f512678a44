"""How the real service keeps up with a backlog, picks up new files, idles, and how much memory it takes.

Runs ``dropscribe run`` as a child process against the in-process emulator (no API latency, no quota)
and prints one markdown table per section:

1. backlog: N distinct 1 s WAV files already in the inbox at start; time to the first recognition
   request, files per second until the inbox is empty (or ``--max-seconds`` runs out), CPU per file;
2. pickup: an idle service with default ``settle_s``/``rescan_s``; files appear one at a time (written
   under a dot-name, then renamed into place) with exponential (Poisson) gaps, so they arrive at
   random points of the rescan cycle; latency = recognition request - (appeared + settle_s);
3. idle: 10,000 files in ``done/``, 1,000 empty folders in the inbox, nothing to do: CPU % of a core;
4. peak RSS (``VmHWM``) of the service in every run.

Each section runs with ``polling: true`` (scans only, as on NFS/SMB) and ``polling: false`` (inotify).

Full run:  .venv/bin/python bench/bench_backlog.py
Quick run: .venv/bin/python bench/bench_backlog.py --files 200 --big-files 1000 --pickup-files 3 \\
           --idle-seconds 10

Every backlog run stops after ``--max-seconds`` (default 600), so a dispatcher that waits for the rescan
cannot hold a run for hours; the row then says so and gives the files finished and the rate so far.
Each row names the code it measured only when that differs from the code the run started with (a
digest of the ``dropscribe`` sources, printed at the top), since the tree may change during a run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import os
import platform
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.audio import make_tone
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for

import dropscribe
from dropscribe.emulator import Emulator, EmulatorConfig
from dropscribe.logs import configure

CONCURRENCY = 4
NO_QUOTA_RPM = 1_000_000
DEFAULT_SETTLE_S = 5.0  # the service's defaults, used by the pickup and idle sections
DEFAULT_RESCAN_S = 60.0
RECOGNITION_PATH = "/multimodal-generation/generation"
POLL_S = 0.25
START_TIMEOUT_S = 120.0
IDLE_WARMUP_S = 2.0  # the start-up scan and watch setup are reported apart from the idle window
IDLE_DONE_FILES = 10_000
IDLE_FOLDERS = 1_000


# the service process, through /proc --------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # the command name (field 2) may hold spaces and parentheses; the fields after it do not
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """The process's high-water resident set size (``VmHWM``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


@dataclass
class Usage:
    cpu_s: float = math.nan
    peak_rss_mib: float = math.nan


def usage_of(service: ServiceProcess) -> Usage:
    """CPU and peak RSS of a running service; NaN when it already exited."""
    try:
        return Usage(cpu_seconds(service.proc.pid), peak_rss_mib(service.proc.pid))
    except (OSError, ValueError, IndexError):
        return Usage()


# one deployment: emulator, temp folders, config, service -----------------------------------------


@dataclass
class Deployment:
    root: Path
    layout: Layout
    emulator: Emulator

    def recognition_times(self) -> list[tuple[float, str | None]]:
        """(wall-clock time, audio SHA-256) of every recognition request the emulator received."""
        return sorted(
            (datetime.fromisoformat(r["time"]).timestamp(), r.get("audio_sha256"))
            for r in self.emulator.requests()
            if RECOGNITION_PATH in str(r.get("path"))
        )


@contextlib.contextmanager
def deployment(polling: bool, inbox: dict[str, Any]) -> Iterator[Deployment]:
    """An emulator and a temp deployment; the inbox uses the service's defaults except ``inbox``."""
    emulator = Emulator(EmulatorConfig(api_keys={API_KEY}))
    root = Path(tempfile.mkdtemp(prefix="bench-backlog-"))
    try:
        emulator.start()
        layout = Layout(
            root,
            emulator.base_url,
            dashscope={"concurrency": CONCURRENCY, "requests_per_minute": NO_QUOTA_RPM},
        )
        settings = layout.data["inboxes"][0]
        for key in ("settle_s", "rescan_s", "incomplete_wait_s"):  # the test layout's fast timings
            settings.pop(key, None)
        settings.update(polling=polling, **inbox)
        layout.data["logging"] = {"format": "json", "level": "info"}
        layout.write()
        yield Deployment(root, layout, emulator)
    finally:
        emulator.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def running(layout: Layout) -> Iterator[ServiceProcess]:
    """The service, started and waited for; always stopped (killed if it will not stop) on the way out."""
    service = ServiceProcess(layout.config)
    try:
        service.wait_started(timeout=START_TIMEOUT_S)
        yield service
    finally:
        service.stop(timeout=90)


def count_wavs(folder: Path) -> int:
    try:
        with os.scandir(folder) as entries:
            return sum(1 for e in entries if e.name.endswith(".wav"))
    except FileNotFoundError:
        return 0


class Samples:
    """Distinct copies of one 1 s tone: a few sample bytes differ, so the content cache answers none."""

    def __init__(self, folder: Path) -> None:
        self.base = make_tone(folder / "tone.wav", seconds=1.0, fmt="wav").read_bytes()

    def variant(self, index: int) -> bytes:
        data = bytearray(self.base)
        data[-1] = index % 256
        data[-2] = (index // 256) % 256
        data[-3] = (index // 65536) % 256
        return bytes(data)


def source_digest() -> tuple[str, str]:
    """Where the ``dropscribe`` package is imported from, and a digest of its ``*.py`` files.

    The service child imports the same package; the digest shows which code a row measured, since
    other people may edit the working tree while a long run goes on.
    """
    root = Path(dropscribe.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with contextlib.suppress(OSError):
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return str(root), digest.hexdigest()[:12]


_code_at_start: list[str] = []


def mark(mode: str, code: str) -> str:
    """The mode, flagged when its run measured other code than the run started with."""
    return mode if not _code_at_start or code == _code_at_start[0] else f"{mode} (code {code}!)"


def mode_name(polling: bool) -> str:
    return "polled" if polling else "inotify"


# 1. backlog ---------------------------------------------------------------------------------------


@dataclass
class BacklogRow:
    mode: str
    files: int
    done: int
    failed: int
    first_request_s: float
    elapsed_s: float
    capped: bool
    usage: Usage
    load1: float
    code: str

    @property
    def per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else math.nan


def backlog(files: int, polling: bool, settle_s: float, max_seconds: float, samples: Samples) -> BacklogRow:
    with deployment(polling, {"settle_s": settle_s}) as dep:
        inbox, done_dir, failed_dir = dep.layout.inbox, dep.layout.done, dep.layout.failed
        for index in range(files):
            (inbox / f"f{index:05d}.wav").write_bytes(samples.variant(index))
        code = source_digest()[1]
        started_wall = time.time()
        started = time.monotonic()
        with running(dep.layout) as service:
            finished_at = started
            last = -1
            capped = False
            while True:
                done, failed = count_wavs(done_dir), count_wavs(failed_dir)
                now = time.monotonic()
                if done + failed != last:
                    last, finished_at = done + failed, now
                if last >= files or service.proc.poll() is not None:
                    break
                if now - started >= max_seconds:
                    capped, finished_at = True, now
                    break
                time.sleep(POLL_S)
            usage = usage_of(service)
        requests = dep.recognition_times()
        first = requests[0][0] - started_wall if requests else math.nan
        return BacklogRow(
            mode_name(polling),
            files,
            done,
            failed,
            first,
            finished_at - started,
            capped,
            usage,
            os.getloadavg()[0],
            code,
        )


def print_backlog(rows: list[BacklogRow], settle_s: float, max_seconds: float) -> None:
    print(
        f"### 1. Backlog already in the inbox at start (1 s WAV files, concurrency {CONCURRENCY}, "
        f"no quota, no API latency, rescan_s {DEFAULT_RESCAN_S:g} (default), settle_s {settle_s:g} "
        f"(default is {DEFAULT_SETTLE_S:g}), cap {max_seconds:g} s per run)\n"
    )
    print(
        "| mode | files | first request after start | done (failed) | time | files/s | files/min "
        "| CPU ms/file | peak RSS | load avg (1 min) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cap = " (cap hit)" if r.capped else ""
        cpu_ms = r.usage.cpu_s / r.done * 1000 if r.done else math.nan
        print(
            f"| {mark(r.mode, r.code)} | {r.files:,} | {r.first_request_s:.1f} s "
            f"| {r.done:,} ({r.failed}){cap} "
            f"| {r.elapsed_s:.1f} s | {r.per_s:.2f} | {r.per_s * 60:.0f} | {cpu_ms:.0f} "
            f"| {r.usage.peak_rss_mib:.0f} MiB | {r.load1:.2f} |"
        )
    print(
        "\nTimes count from the start of the process; files/s = files finished / time to the last one "
        "finished (or to the cap). CPU ms/file = the service's user+sys CPU over the whole run, start-up "
        "included, / files finished.\n"
    )
    sys.stdout.flush()


# 2. pickup latency --------------------------------------------------------------------------------


@dataclass
class PickupRow:
    mode: str
    files: int
    mean_gap_s: float
    latencies: list[float]
    missing: int
    usage: Usage
    load1: float
    code: str


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def pickup(files: int, polling: bool, mean_gap_s: float, samples: Samples, rng: random.Random) -> PickupRow:
    def gap() -> float:
        # exponential gaps: arrivals independent of the service's rescan cycle (capped to bound the run)
        return min(rng.expovariate(1.0 / mean_gap_s), 5 * mean_gap_s)

    with deployment(polling, {}) as dep:
        inbox = dep.layout.inbox
        appeared: dict[str, float] = {}
        code = source_digest()[1]
        with running(dep.layout) as service:
            time.sleep(gap())
            for index in range(files):
                data = samples.variant(100_000 + index)
                temp = inbox / f".incoming-{index}.wav"
                with temp.open("wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.rename(temp, inbox / f"p{index:03d}.wav")
                appeared[hashlib.sha256(data).hexdigest()] = time.time()
                if index < files - 1:
                    time.sleep(gap())

            def all_requested() -> bool:
                seen = {sha for _t, sha in dep.recognition_times()}
                return set(appeared) <= seen or service.proc.poll() is not None

            with contextlib.suppress(AssertionError):  # a file never picked up is reported as missing
                wait_for(all_requested, timeout=DEFAULT_RESCAN_S + DEFAULT_SETTLE_S + 120, interval=0.1)
            usage = usage_of(service)
        first_request: dict[str, float] = {}
        for moment, sha in dep.recognition_times():
            if sha is not None:
                first_request.setdefault(sha, moment)
        latencies = [
            first_request[sha] - (t + DEFAULT_SETTLE_S) for sha, t in appeared.items() if sha in first_request
        ]
        return PickupRow(
            mode_name(polling),
            files,
            mean_gap_s,
            latencies,
            files - len(latencies),
            usage,
            os.getloadavg()[0],
            code,
        )


def print_pickup(rows: list[PickupRow]) -> None:
    print(
        f"### 2. Pickup latency of an idle service (defaults: settle_s {DEFAULT_SETTLE_S:g}, rescan_s "
        f"{DEFAULT_RESCAN_S:g}; latency = recognition request - (file appeared + settle_s))\n"
    )
    print(
        "| mode | files | mean gap between files | p50 | p99 | min | max | not picked up | peak RSS "
        "| load avg (1 min) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lat = r.latencies
        low, high = (min(lat), max(lat)) if lat else (math.nan, math.nan)
        print(
            f"| {mark(r.mode, r.code)} | {r.files} | {r.mean_gap_s:g} s | {percentile(lat, 0.5):.2f} s "
            f"| {percentile(lat, 0.99):.2f} s | {low:.2f} s | {high:.2f} s | {r.missing} "
            f"| {r.usage.peak_rss_mib:.0f} MiB | {r.load1:.2f} |"
        )
    print(
        "\nGaps are exponential (capped at 5x the mean), so files arrive at random points of the rescan "
        "cycle; with few files p99 is close to the maximum.\n"
    )
    sys.stdout.flush()


# 3. idle CPU --------------------------------------------------------------------------------------


@dataclass
class IdleRow:
    mode: str
    startup_cpu_s: float
    window_s: float
    cpu_percent: float
    requests: int
    usage: Usage
    load1: float
    code: str


def idle(polling: bool, seconds: float) -> IdleRow:
    with deployment(polling, {}) as dep:
        done_dir, inbox = dep.layout.done, dep.layout.inbox
        done_dir.mkdir(parents=True, exist_ok=True)
        for index in range(IDLE_DONE_FILES):
            (done_dir / f"f{index:05d}.wav").write_bytes(b"RIFF")
        for index in range(IDLE_FOLDERS):
            (inbox / f"d{index:04d}").mkdir()
        code = source_digest()[1]
        with running(dep.layout) as service:
            time.sleep(IDLE_WARMUP_S)
            pid = service.proc.pid
            before, started = cpu_seconds(pid), time.monotonic()
            time.sleep(seconds)
            after, window = cpu_seconds(pid), time.monotonic() - started
            usage = usage_of(service)
        return IdleRow(
            mode_name(polling),
            before,
            window,
            (after - before) / window * 100,
            len(dep.recognition_times()),
            usage,
            os.getloadavg()[0],
            code,
        )


def print_idle(rows: list[IdleRow]) -> None:
    print(
        f"### 3. Idle: {IDLE_DONE_FILES:,} files in done/, {IDLE_FOLDERS:,} empty folders in the inbox, "
        f"nothing to do (defaults: settle_s {DEFAULT_SETTLE_S:g}, rescan_s {DEFAULT_RESCAN_S:g})\n"
    )
    print(
        "| mode | CPU over the window | window | CPU to start (until window) | requests | peak RSS "
        "| load avg (1 min) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {mark(r.mode, r.code)} | {r.cpu_percent:.2f} % of a core | {r.window_s:.0f} s "
            f"| {r.startup_cpu_s:.2f} s "
            f"| {r.requests} | {r.usage.peak_rss_mib:.0f} MiB | {r.load1:.2f} |"
        )
    print(
        f"\nThe window starts {IDLE_WARMUP_S:g} s after the service reported started; a window shorter "
        f"than rescan_s may hold no rescan at all.\n"
    )
    sys.stdout.flush()


# main ---------------------------------------------------------------------------------------------


def git_head() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1/5/15 min; other work shares this machine)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1_000, help="backlog size of the first rows (1000)")
    parser.add_argument("--big-files", type=int, default=10_000, help="backlog size of the big rows (10000)")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=600.0,
        help="stop a backlog run after this long and report the rate so far (600)",
    )
    parser.add_argument(
        "--backlog-settle",
        type=float,
        default=1.0,
        help="settle_s of the backlog runs, to keep them short (1)",
    )
    parser.add_argument("--pickup-files", type=int, default=10, help="files dropped per pickup run (10)")
    parser.add_argument(
        "--pickup-gap", type=float, default=20.0, help="mean gap between dropped files, polled (20 s)"
    )
    parser.add_argument(
        "--pickup-gap-inotify", type=float, default=5.0, help="mean gap between dropped files, inotify (5 s)"
    )
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="idle CPU window (60)")
    parser.add_argument(
        "--sections", default="backlog,pickup,idle", help="comma-separated subset of backlog,pickup,idle"
    )
    parser.add_argument("--modes", default="polled,inotify", help="comma-separated subset of polled,inotify")
    parser.add_argument("--seed", type=int, default=1, help="seed of the pickup gaps (1)")
    args = parser.parse_args(argv)
    unknown = set(args.sections.split(",")) - {"backlog", "pickup", "idle"}
    unknown |= set(args.modes.split(",")) - {"polled", "inotify"}
    if unknown:
        parser.error(f"unknown section or mode: {', '.join(sorted(unknown))}")
    return args


def _stop_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # unwinds through every ``finally``, so the service and emulator stop and temp folders go
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    configure("console", "warning")  # the in-process emulator logs every request at debug level
    sections = args.sections.split(",")
    modes = [mode == "polled" for mode in ("polled", "inotify") if mode in args.modes.split(",")]
    rng = random.Random(args.seed)
    command = shlex.join(sys.orig_argv)
    package, code = source_digest()
    _code_at_start.append(code)
    machine = f"git HEAD {git_head()}, Python {platform.python_version()}, {os.cpu_count()} CPUs"
    print(f"dropscribe from {package} (source digest {code}); {machine}; load average at start "
          f"{load_average()}\n")  # fmt: skip
    sys.stdout.flush()
    with tempfile.TemporaryDirectory(prefix="bench-backlog-sample-") as tmp:
        samples = Samples(Path(tmp))
        if "backlog" in sections:
            rows: list[BacklogRow] = []
            for files in (args.files, args.big_files):
                for polling in modes:
                    rows.append(backlog(files, polling, args.backlog_settle, args.max_seconds, samples))
            print(f"`{command}`\n")
            print_backlog(rows, args.backlog_settle, args.max_seconds)
        if "pickup" in sections:
            pickups = [
                pickup(
                    args.pickup_files,
                    polling,
                    args.pickup_gap if polling else args.pickup_gap_inotify,
                    samples,
                    rng,
                )
                for polling in modes
            ]
            print(f"`{command}`\n")
            print_pickup(pickups)
        if "idle" in sections:
            idles = [idle(polling, args.idle_seconds) for polling in modes]
            print(f"`{command}`\n")
            print_idle(idles)
    _package, code_at_end = source_digest()
    changed = "" if code_at_end == code else f"; the source changed during the run (now {code_at_end})"
    print(f"load average at end {load_average()}{changed}")


if __name__ == "__main__":
    main()
