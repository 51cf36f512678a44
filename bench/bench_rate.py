"""``requests_per_minute: auto`` against emulator quotas the client is not told, beside a configured rate.

Usage: ``.venv/bin/python bench/bench_rate.py [--quotas 30 100 300] [--seconds 150] [--fixed 60]``.
Every run has its own emulator (``requests_per_minute`` = the quota) and its own ``DashScopeClient``
built as the service builds it (``make_limiter``), with 4 worker threads that always have work: each
"file" is one short inline recognition, retried on a transient error after ``core.retry.backoff_s``
(which honours ``Retry-After``) up to 8 attempts, as the service's workers do. The runs go in parallel
(the threads mostly sleep in the limiter), so one invocation takes about ``--seconds``. Prints a
Markdown table: requests sent, throttled share, accepted rate after the first minute / quota, files
failed.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import logging
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.audio import make_tone  # noqa: E402

from dropscribe.adapters.dashscope import DashScopeClient  # noqa: E402
from dropscribe.adapters.ratelimit import make_limiter  # noqa: E402
from dropscribe.core.errors import TransientError  # noqa: E402
from dropscribe.core.recognition import AsrOptions  # noqa: E402
from dropscribe.core.retry import backoff_s  # noqa: E402
from dropscribe.emulator import Emulator, EmulatorConfig  # noqa: E402

KEY = "sk-bench-0123456789abcdef"
WORKERS = 4
ATTEMPTS = 8


@dataclass
class Run:
    quota: int
    rate: int | str
    accepted_at: list[float] = field(default_factory=list)
    failed: int = 0
    result: dict[str, object] = field(default_factory=dict)


def _clip(folder: Path) -> str:
    path = make_tone(folder / "clip.wav", seconds=0.3, fmt="wav")
    return "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()


def _throttled_after(emulator: Emulator, since: float) -> float:
    """The share of recognition requests refused after ``since`` (epoch seconds)."""
    statuses = [r["status"] for r in emulator.requests() if "generation" in r["path"]
                and dt.datetime.fromisoformat(r["time"]).timestamp() >= since]  # fmt: skip
    return statuses.count(429) / max(1, len(statuses))


def _run(run: Run, clip: str, seconds: float) -> None:
    emulator = Emulator(EmulatorConfig(api_keys={KEY}, requests_per_minute=run.quota))
    emulator.start()
    client = DashScopeClient(emulator.base_url, KEY, concurrency=WORKERS,
                             limiter=make_limiter(run.rate, 1000, f"bench-{run.quota}"))  # fmt: skip
    started, wall_start = time.monotonic(), time.time()
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() - started < seconds:
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    client.recognize("qwen3-asr-flash", clip, AsrOptions())
                except TransientError as exc:
                    wait = backoff_s(attempt, base_s=2.0, cap_s=30.0, jitter=rng.random(),
                                     retry_after_s=exc.retry_after_s)  # fmt: skip
                    time.sleep(wait)
                    continue
                with lock:
                    run.accepted_at.append(time.monotonic() - started)
                break
            else:
                with lock:
                    run.failed += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = [r["status"] for r in emulator.requests() if "generation" in r["path"]]
    after = [t for t in run.accepted_at if 60.0 <= t < seconds]
    run.result = {
        "sent": len(statuses),
        "throttled": statuses.count(429) / max(1, len(statuses)),
        "throttled_after": _throttled_after(emulator, wall_start + 60.0),
        "sustained": len(after) / ((seconds - 60.0) / 60.0) / run.quota,
        "found": client.rate_status().get("limit_found", "–"),
    }
    client.close()
    emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotas", type=int, nargs="+", default=[30, 100, 300])
    parser.add_argument("--seconds", type=float, default=210.0)
    parser.add_argument("--fixed", type=int, default=60, help="the configured rate to compare with")
    args = parser.parse_args()
    import tempfile

    # the request log of six clients and emulators would bury the table
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    with tempfile.TemporaryDirectory(prefix="bench-rate-") as tmp:
        clip = _clip(Path(tmp))
    runs = [Run(q, rate) for q in args.quotas for rate in ("auto", args.fixed)]
    threads = [threading.Thread(target=_run, args=(run, clip, args.seconds)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"{args.seconds:g} s per run, {WORKERS} workers, 0.3 s clips; sustained = accepted per minute "
          "after the first minute / quota")  # fmt: skip
    print()
    print("| quota (rpm) | requests_per_minute | requests sent | throttled | throttled after 1st min | "
          "sustained / quota | found | files failed |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        r = run.result
        print(f"| {run.quota} | {run.rate} | {r['sent']} | {float(r['throttled']):.1%} | "  # type: ignore[arg-type]
              f"{float(r['throttled_after']):.1%} | "  # type: ignore[arg-type]
              f"{float(r['sustained']):.2f} | {r['found'] if r['found'] is not None else '–'} | "  # type: ignore[arg-type]
              f"{run.failed} |")  # fmt: skip


if __name__ == "__main__":
    main()
