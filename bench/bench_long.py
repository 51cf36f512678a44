"""Long recordings through the real service: time to the first request, total time, peak RSS, staging.

Usage: ``.venv/bin/python bench/bench_long.py [--hours 1 3] [--code DIR ...]``. Each ``--code`` is a
folder holding a ``dropscribe`` package to run the service from (e.g. a ``git archive HEAD daemon``
export, for a before/after table); without it, the working tree's. The recording is generated
speech-like audio (tone bursts, a 0.5 s pause every 5 s) as 16 kHz mono 16-bit WAV, the layout of the
2 GiB / 18.6 h case. The service runs against an in-process emulator with its default chunk length and
``requests_per_minute: 600``; it is started before the file is dropped, so start-up is not counted.

Columns: "to take" is from the drop to the service's ``job_taken`` (settling and hashing), "first
request" from ``job_taken`` to the emulator's first recognition request, "total" from the drop to the
``.json`` in ``done/``; "peak RSS" is the service's VmHWM; "staged peak" the largest sum of file sizes
sampled in the staging folder every 20 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.audio import make_speechlike  # noqa: E402
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for  # noqa: E402

from dropscribe.emulator import Emulator, EmulatorConfig  # noqa: E402
from dropscribe.logs import configure  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--code", nargs="+", default=[""], help="folders to import dropscribe from")
    parser.add_argument("--tmp", default=None, help="where to generate the recordings")
    args = parser.parse_args()
    configure("console", "warning")  # the in-process emulator would log every request
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-long-", dir=args.tmp) as tmp:
        for hours in args.hours:
            source = Path(tmp) / f"talk-{hours:g}h.wav"
            started = time.perf_counter()
            make_speechlike(source, hours * 3600.0, "wav")
            size_mib = source.stat().st_size / 2**20
            print(f"generated {source.name}: {size_mib:.0f} MiB in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)  # fmt: skip
            for code in args.code:
                result = _run(source, Path(tmp) / f"site-{hours:g}-{len(rows)}", code)
                print(result, file=sys.stderr)
                rows.append(
                    f"| {hours:g} h WAV ({size_mib:.0f} MiB) | {code or 'working tree'} | "
                    f"{result['to_take_s']:.1f} | "
                    f"{result['first_request_s']:.1f} | {result['total_s']:.1f} | {result['requests']} | "
                    f"{result['peak_rss_mib']:.0f} | {result['staged_peak_mib']:.0f} |"
                )  # fmt: skip
            source.unlink()
    print("| recording | code | to take (s) | first request (s) | total (s) | requests | peak RSS (MiB) "
          "| staged peak (MiB) |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


def _run(source: Path, site: Path, code: str) -> dict[str, Any]:
    emulator = Emulator(EmulatorConfig(host="127.0.0.1", port=0, api_keys={API_KEY}))
    emulator.start()
    try:
        layout = Layout(site, emulator.base_url)
        layout.data["dashscope"]["requests_per_minute"] = 600
        layout.data["logging"] = {"format": "json", "level": "info"}
        layout.data["defaults"] = {"max_duration_s": 86400}  # the 18.6 h case is over the default limit
        layout.write()
        env = {"PYTHONPATH": str(Path(code).resolve())} if code else {}
        service = ServiceProcess(layout.config, env).wait_started()
        staging = layout.state.parent / "staging"
        peak = {"staged": 0, "rss_kib": 0}
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.02):
                total = 0
                for folder, _dirs, names in os.walk(staging):
                    for name in names:
                        with contextlib.suppress(FileNotFoundError):
                            total += os.stat(os.path.join(folder, name)).st_size
                peak["staged"] = max(peak["staged"], total)
                peak["rss_kib"] = max(peak["rss_kib"], _vm_hwm_kib(service.proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        copy = site / source.name
        shutil.copyfile(source, copy)  # a hard link would be refused (more than one link)
        dropped = datetime.now(UTC)
        os.rename(copy, layout.inbox / source.name)  # atomic: the service never sees a partial file
        try:
            wait_for(lambda: (layout.done / f"{source.stem}.json").exists() or layout.failed_files(),
                     timeout=3 * 3600, interval=0.2)  # fmt: skip
        finally:
            stop.set()
            sampler.join()
        finished = datetime.now(UTC)
        service.stop()
        if layout.failed_files():
            raise SystemExit(f"the file failed: {layout.failed_files()}\n{service.output()[-3000:]}")
        sent = [r for r in emulator.requests() if "generation" in r["path"] and r["status"] == 200]
        taken = next(e for e in service.events if e.get("event") == "job_taken")
        taken_at = datetime.fromisoformat(taken["timestamp"].replace("Z", "+00:00"))
        first_at = datetime.fromisoformat(sent[0]["time"])
        return {
            "to_take_s": (taken_at - dropped).total_seconds(),
            "first_request_s": (first_at - taken_at).total_seconds(),
            "total_s": (finished - dropped).total_seconds(),
            "requests": len(sent),
            "peak_rss_mib": peak["rss_kib"] / 1024,
            "staged_peak_mib": peak["staged"] / 2**20,
        }
    finally:
        emulator.stop()


def _vm_hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    main()
