"""One long recording three ways, side by side: ``dropscribe transcribe``, the service, the official Toolkit.

Usage: ``.venv/bin/python bench/bench_side_by_side.py [--minutes 60] [--latency-s 1.0] [--quotas 100 20]
[--toolkit-python /tmp/tk/bin/python] [--big-hours 18.64] [--sdk-seconds 210]``.

For each quota an in-process emulator is started with that ``requests_per_minute`` and the same latency
on every recognition request (a delay-only fault on ``generation``, which also slows its refusals), and
the same generated speech-like WAV (tone bursts, a 0.5 s pause every 5 s) goes through:

- ``dropscribe transcribe -c CONFIG FILE`` (the config's defaults: concurrency 4,
  ``requests_per_minute`` 60, not told the quota);
- ``dropscribe run -c CONFIG`` with the file moved into its inbox (started first, so its start-up is not
  in the wall time; its CPU is the whole process's up to the ``.json`` in ``done/``);
- the Qwen3-ASR-Toolkit's CLI (``qwen3-asr``) run by ``--toolkit-python`` with
  ``DASHSCOPE_HTTP_BASE_URL`` pointing the official ``dashscope`` SDK at the emulator; skipped with a note
  when that interpreter or package is missing.

Wall time is from start to exit (service: drop to transcript); CPU and peak RSS come from ``wait4`` (the
child and the children it reaped; service: ``/proc`` before it is stopped); requests, refusals and billed
seconds from the emulator's request log (billed = what the emulator's ``usage.seconds`` said for each
accepted request). ``--big-hours`` adds the service's idle RSS against its peak on a WAV that long (18.64 h
is 2 GiB). ``--sdk-seconds`` adds the official SDK called file after file (one 0.3 s clip per call, no
retry, as a plain script does) at the quotas of ``bench_rate.py``, to set beside its table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.audio import make_speechlike, make_tone  # noqa: E402
from tests.support.service import wait_for  # noqa: E402

from dropscribe.emulator import Emulator, EmulatorConfig  # noqa: E402
from dropscribe.emulator.faults import Fault  # noqa: E402
from dropscribe.logs import configure  # noqa: E402

KEY = "sk-bench-0123456789abcdef"
DROPSCRIBE = str(ROOT / ".venv" / "bin" / "dropscribe")
GENERATION = "generation"


@dataclass
class Row:
    tool: str
    quota: int
    command: str
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mib: float = 0.0
    requests: int = 0
    refused: int = 0
    billed_s: int = 0
    outcome: str = ""

    def markdown(self) -> str:
        return (
            f"| {self.tool} | {self.quota} | {self.wall_s:.1f} | {self.cpu_s:.1f} | {self.peak_rss_mib:.0f} "
            f"| {self.requests} | {self.refused} | {self.billed_s} | {self.outcome} | `{self.command}` |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the recording (60)")
    parser.add_argument("--latency-s", type=float, default=1.0, help="emulator answer delay (1.0)")
    parser.add_argument("--quotas", type=int, nargs="+", default=[100, 20], help="emulator RPM (100 20)")
    parser.add_argument("--toolkit-python", default="/tmp/tk/bin/python", help="Toolkit's interpreter")
    parser.add_argument("--tools", default="transcribe,service,toolkit", help="subset to run")
    parser.add_argument("--big-hours", type=float, default=0.0, help="service idle vs peak RSS (0: off)")
    parser.add_argument("--sdk-seconds", type=float, default=0.0, help="SDK file-after-file row (0: off)")
    parser.add_argument("--sdk-quotas", type=int, nargs="+", default=[30, 100, 300])
    parser.add_argument("--tmp", default=None, help="where to generate the recordings")
    args = parser.parse_args()
    configure("console", "warning")  # the in-process emulator would log every request
    command = shlex.join(["python", *sys.orig_argv[1:]])
    print(f"`{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}\n")  # fmt: skip
    tools = args.tools.split(",")
    toolkit = _toolkit_note(args.toolkit_python)
    with tempfile.TemporaryDirectory(prefix="bench-side-", dir=args.tmp) as tmp_name:
        tmp = Path(tmp_name)
        if args.minutes > 0 and tools:
            source = tmp / f"talk-{args.minutes:g}min.wav"
            make_speechlike(source, args.minutes * 60.0, "wav")
            rows: list[Row] = []
            for quota in args.quotas:
                for tool in tools:
                    if tool == "toolkit" and toolkit:
                        continue
                    row = RUNNERS[tool](source, tmp / f"{tool}-{quota}", quota, args)
                    print(row.markdown(), file=sys.stderr, flush=True)
                    rows.append(row)
            print(f"{args.minutes:g}-minute 16 kHz mono WAV ({source.stat().st_size / 2**20:.0f} MiB), "
                  f"emulator latency {args.latency_s:g} s per recognition request\n")  # fmt: skip
            print("| tool | quota (rpm) | wall (s) | CPU (s) | peak RSS (MiB) | requests | refused (429) "
                  "| billed (s) | outcome | command |")  # fmt: skip
            print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
            print("\n".join(row.markdown() for row in rows))
            if toolkit and "toolkit" in tools:
                print(f"\nToolkit row skipped: {toolkit}")
            source.unlink()
        if args.big_hours > 0:
            _print_big(tmp, args)
        if args.sdk_seconds > 0:
            _print_sdk(tmp, args, toolkit)


def _toolkit_note(python: str) -> str:
    """Why the Toolkit row cannot run, or "" when it can."""
    if not Path(python).exists():
        return f"{python} does not exist (python3 -m venv /tmp/tk && /tmp/tk/bin/pip install " \
               "qwen3-asr-toolkit onnxruntime)"  # fmt: skip
    probe = subprocess.run([python, "-c", "import qwen3_asr_toolkit, onnxruntime, dashscope"],
                           capture_output=True, text=True)  # fmt: skip
    return "" if probe.returncode == 0 else f"{python} cannot import it: {probe.stderr.strip()[-300:]}"


def _emulator(quota: int, latency_s: float) -> Emulator:
    emulator = Emulator(EmulatorConfig(host="127.0.0.1", port=0, api_keys={KEY}, requests_per_minute=quota))
    emulator.start()
    if latency_s > 0:
        emulator.add_fault(Fault(path=GENERATION, times=None, delay_s=latency_s))
    return emulator


def _count(emulator: Emulator, row: Row) -> Row:
    sent = [r for r in emulator.requests() if GENERATION in r["path"]]
    row.requests = len(sent)
    row.refused = sum(1 for r in sent if r["status"] == 429)
    row.billed_s = sum(_billed(r) for r in sent if r["status"] == 200)
    return row


def _billed(record: dict[str, Any]) -> int:
    from dropscribe.emulator.transcripts import billed_seconds

    return billed_seconds(float(record.get("duration_s") or 0.0))


def _config(site: Path, emulator: Emulator, inbox: Path) -> Path:
    """The production defaults, but for the emulator's address, inline storage and the site's folders."""
    site.mkdir(parents=True, exist_ok=True)
    inbox.mkdir(exist_ok=True)
    data = {
        "dashscope": {"base_url": emulator.base_url},
        "storage": {"type": "inline"},
        "state": {"path": str(site / "state" / "journal.db")},
        "inboxes": [{"path": str(inbox), "settle_s": 1.0}],
        "defaults": {"max_duration_s": 86400},
        "logging": {"format": "json", "level": "info"},
    }
    config = site / "dropscribe.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "DASHSCOPE_API_KEY": KEY, **extra}
    env.pop("NOTIFY_SOCKET", None)
    return env


def _run_measured(
    cmd: list[str], env: dict[str, str], cwd: Path, log: Path
) -> tuple[float, float, float, int]:
    """Wall s, CPU s, peak RSS MiB (the child and what it reaped) and exit status of one command."""
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode


def run_transcribe(source: Path, site: Path, quota: int, args: argparse.Namespace) -> Row:
    emulator = _emulator(quota, args.latency_s)
    try:
        config = _config(site, emulator, site / "inbox")
        cmd = [DROPSCRIBE, "transcribe", "-c", str(config), "--json", str(source)]
        wall, cpu, rss, rc = _run_measured(cmd, _env(), site, site / "transcribe.log")
        row = Row("dropscribe transcribe", quota, "dropscribe transcribe -c CONFIG --json talk.wav",
                  wall, cpu, rss)  # fmt: skip
        row.outcome = "done" if rc == 0 else _last_error(site / "transcribe.log", rc)
        return _count(emulator, row)
    finally:
        emulator.stop()


def _last_error(log: Path, rc: int) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        with contextlib.suppress(ValueError):
            error = json.loads(line).get("error")
            if error:
                return f"exit {rc}: {error.get('code')}"
    tail = lines[-1][:120] if lines else ""
    return f"exit {rc}: {tail}".replace("|", "/")


def run_service(source: Path, site: Path, quota: int, args: argparse.Namespace) -> Row:
    emulator = _emulator(quota, args.latency_s)
    try:
        row, _idle = _service(
            source,
            site,
            emulator,
            Row("dropscribe run (service)", quota, "dropscribe run -c CONFIG; mv talk.wav inbox/"),
        )
        return _count(emulator, row)
    finally:
        emulator.stop()


def _service(source: Path, site: Path, emulator: Emulator, row: Row) -> tuple[Row, float]:
    """Runs the service on ``source``; returns the row and the service's idle RSS (MiB) before the drop."""
    inbox, done, failed = site / "inbox", site / "done", site / "failed"
    config = _config(site, emulator, inbox)
    log = site / "service.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([DROPSCRIBE, "run", "-c", str(config)], env=_env(PYTHONUNBUFFERED="1"),
                                cwd=site, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for(lambda: "service_started" in log.read_text(errors="replace") or proc.poll() is not None,
                 timeout=60)  # fmt: skip
        time.sleep(3.0)  # the first scan and imports settle before idle memory is read
        idle_mib = _proc_status_kib(proc.pid, "VmRSS:") / 1024
        copy = site / source.name
        shutil.copyfile(source, copy)  # a hard link would be refused (more than one link)
        started = time.perf_counter()
        os.rename(copy, inbox / source.name)
        wait_for(lambda: (done / f"{source.stem}.json").exists() or any(failed.glob("*.error.json"))
                 or proc.poll() is not None, timeout=6 * 3600, interval=0.2)  # fmt: skip
        row.wall_s = time.perf_counter() - started
        row.cpu_s = _proc_cpu_s(proc.pid)
        row.peak_rss_mib = _proc_status_kib(proc.pid, "VmHWM:") / 1024
        errors = list(failed.glob("*.error.json"))
        row.outcome = "done" if not errors else f"failed: {json.loads(errors[0].read_text())['code']}"
        return row, idle_mib
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _proc_status_kib(pid: int, field: str) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def _proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime are fields 14-17 of stat(5); index 0 here is field 3
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def run_toolkit(source: Path, site: Path, quota: int, args: argparse.Namespace) -> Row:
    emulator = _emulator(quota, args.latency_s)
    try:
        site.mkdir(parents=True, exist_ok=True)
        cmd = [
            args.toolkit_python,
            "-m",
            "qwen3_asr_toolkit.call_api",
            "-i",
            str(source),
            "-t",
            str(site / "cache"),
        ]
        env = _env(DASHSCOPE_HTTP_BASE_URL=emulator.base_url)
        wall, cpu, rss, rc = _run_measured(cmd, env, site, site / "toolkit.log")
        row = Row("Qwen3-ASR-Toolkit", quota, "qwen3-asr -i talk.wav", wall, cpu, rss)
        text = source.with_suffix(".txt")
        row.outcome = "done" if rc == 0 and text.exists() else _toolkit_error(site / "toolkit.log", rc)
        text.unlink(missing_ok=True)
        return _count(emulator, row)
    finally:
        emulator.stop()


def _toolkit_error(log: Path, rc: int) -> str:
    # the exception's own line, not the progress bar or the reply it prints after it
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"^[\w.]*(Error|Exception): ", line)]
    return f"exit {rc}, no transcript: {(raised or [''])[-1][:120]}".replace("|", "/")


RUNNERS = {"transcribe": run_transcribe, "service": run_service, "toolkit": run_toolkit}


def _print_big(tmp: Path, args: argparse.Namespace) -> None:
    source = tmp / f"talk-{args.big_hours:g}h.wav"
    make_speechlike(source, args.big_hours * 3600.0, "wav")
    size_mib = source.stat().st_size / 2**20
    emulator = _emulator(0, 0.0)
    try:
        row, idle = _service(source, tmp / "big", emulator, Row("service", 0, ""))
        _count(emulator, row)
    finally:
        emulator.stop()
    source.unlink()
    print(f"\n| input | idle RSS (MiB) | peak RSS (MiB) | peak − idle (MiB) | wall (s) | CPU (s) | requests "
          f"| outcome |\n|---|---:|---:|---:|---:|---:|---:|---|\n| {args.big_hours:g} h WAV "
          f"({size_mib:.0f} MiB) | {idle:.0f} | {row.peak_rss_mib:.0f} | {row.peak_rss_mib - idle:.0f} "
          f"| {row.wall_s:.0f} | {row.cpu_s:.0f} | {row.requests} | {row.outcome} |")  # fmt: skip


SDK_LOOP = """
import sys, time, dashscope
from dashscope import MultiModalConversation
clip, seconds = sys.argv[1], float(sys.argv[2])
ok = failed = 0
end = time.monotonic() + seconds
while time.monotonic() < end:
    reply = MultiModalConversation.call(model="qwen3-asr-flash", messages=[
        {"role": "user", "content": [{"audio": clip}]}], asr_options={"enable_itn": False})
    if reply.status_code == 200:
        ok += 1
    else:
        failed += 1
print(ok, failed)
"""


def _print_sdk(tmp: Path, args: argparse.Namespace, toolkit_note: str) -> None:
    """The official SDK called file after file, one process per quota, in parallel like bench_rate.py."""
    if toolkit_note:
        print(f"\nSDK file-after-file rows skipped: {toolkit_note}")
        return
    clip = make_tone(tmp / "clip.wav", seconds=0.3, fmt="wav")
    runs = []
    for quota in args.sdk_quotas:
        emulator = Emulator(
            EmulatorConfig(host="127.0.0.1", port=0, api_keys={KEY}, requests_per_minute=quota)
        )
        emulator.start()
        loop = [args.toolkit_python, "-c", SDK_LOOP, f"file://{clip}", str(args.sdk_seconds)]
        env = _env(DASHSCOPE_HTTP_BASE_URL=emulator.base_url)
        proc = subprocess.Popen(loop, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        runs.append((quota, emulator, proc))
    print(f"\nofficial `dashscope` SDK, `MultiModalConversation.call` file after file for "
          f"{args.sdk_seconds:g} s, no retry\n\n| quota (rpm) | requests sent | accepted | refused "
          "| accepted / min | files failed |\n|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    for quota, emulator, proc in runs:
        out, _ = proc.communicate()
        emulator.stop()
        ok, failed = (int(v) for v in out.split()) if out.strip() else (0, 0)
        per_min = ok / (args.sdk_seconds / 60.0)
        print(f"| {quota} | {ok + failed} | {ok} | {failed} | {per_min:.0f} | {failed} |")


if __name__ == "__main__":
    main()
