"""End-to-end throughput of the real service against the local emulator, and the cost of one scan.

Prints a markdown table. Run: .venv/bin/python bench/bench_pipeline.py
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.audio import make_tone
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for

from dropscribe.config.model import InboxSettings
from dropscribe.core.ruleset import RuleSet
from dropscribe.emulator import Emulator, EmulatorConfig, Fault
from dropscribe.service.rule_cache import RuleCache
from dropscribe.service.scanner import InboxScanner


def throughput(files: int, latency_s: float, concurrency: int) -> tuple[float, float]:
    """Seconds from start to the last sidecar, and files per minute."""
    emulator = Emulator(EmulatorConfig(api_keys={API_KEY}))
    emulator.start()
    if latency_s:
        emulator.add_fault(Fault(path="generation", delay_s=latency_s, times=None))
    root = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        layout = Layout(root, emulator.base_url, dashscope={"concurrency": concurrency,
                                                            "requests_per_minute": 100_000})  # fmt: skip
        layout.data["logging"] = {"format": "json", "level": "info"}
        layout.write()
        sample = make_tone(root / "sample.wav", seconds=2.0, fmt="wav")
        for index in range(files):
            # distinct bytes per file, or the content cache would answer all but the first
            data = bytearray(sample.read_bytes())
            data[-1] = index % 256
            data[-2] = index // 256
            (layout.inbox / f"f{index:04d}.wav").write_bytes(bytes(data))
        started = time.monotonic()
        service = ServiceProcess(layout.config).wait_started()
        try:
            wait_for(lambda: len(list(layout.done.glob("*.json"))) == files, timeout=600, interval=0.1)
        finally:
            service.stop()
        elapsed = time.monotonic() - started
        return elapsed, files / elapsed * 60
    finally:
        emulator.stop()
        shutil.rmtree(root, ignore_errors=True)


def scan_cost(files: int) -> float:
    """Milliseconds for one scan of an inbox holding ``files`` settled files in 100 folders."""
    root = Path(tempfile.mkdtemp(prefix="bench-scan-"))
    try:
        inbox = root / "inbox"
        for index in range(files):
            folder = inbox / f"d{index % 100:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"f{index}.wav").write_bytes(b"x")
        settings = InboxSettings(path=inbox, done=root / "done", failed=root / "failed")
        scanner = InboxScanner(settings, RuleCache(settings, RuleSet()))
        scanner.scan(0.0, set())
        started = time.perf_counter()
        result = scanner.scan(10.0, set())
        assert len(result.ready) == files
        return (time.perf_counter() - started) * 1000
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    print("| measure | setting | result |")
    print("|---|---|---|")
    for files, latency, concurrency in [(100, 0.0, 4), (100, 0.5, 4), (100, 0.5, 8)]:
        elapsed, per_minute = throughput(files, latency, concurrency)
        print(f"| throughput, 2 s WAV files | {files} files, API latency {latency:g} s, "
              f"concurrency {concurrency} | {elapsed:.1f} s, {per_minute:.0f} files/min |")  # fmt: skip
    for files in (1_000, 10_000):
        print(f"| one scan of a settled inbox | {files} files in 100 folders | {scan_cost(files):.0f} ms |")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"| peak RSS of a service process | all runs above | {peak:.0f} MiB |")


if __name__ == "__main__":
    main()
