"""Chunk length against requests per audio hour, wall time under a quota, and where the cuts land.

Usage: ``.venv/bin/python bench/bench_chunk_length.py [--chunks 120 150 180 240 290] [--hours 3]
[--rpm 100] [--concurrency 2] [--latency-base 0.5] [--latency-per-s 0.01]``.

One recording is generated with a speech/pause layout known exactly: words (tone bursts) of 0.2-0.8 s
and pauses (digital silence) of 0.15-1.5 s, broken by stretches of 30-120 s of speech whose pauses are
at most 0.3 s (about a fifth of the time), as 16 kHz mono 16-bit WAV. For each ``chunk_max_s`` the real
service (``dropscribe run``, concurrency and ``requests_per_minute`` as given, inline storage) takes it
against an in-process emulator limited to ``--rpm`` recognitions a minute. The emulator answers at once,
so a small HTTP proxy in this script sits between them and holds every accepted recognition for
``latency-base + latency-per-s * usage.seconds`` before passing the answer on: the latency grows with
the chunk's audio, as a real model's does. The emulator counts a request when it arrives, so the quota
is enforced on arrival as upstream.

The cuts are the ones the service made: in split mode the ``.json`` result has one segment per chunk,
timed by its offsets in the source. A cut "in a word" lies strictly inside a tone burst; the distance
and pause columns are over the cuts that landed in a pause. "Shortest" leaves out the last chunk (the
remainder of the file, whatever its length). "Quota floor" is the least time the requests take when the
quota alone is the limit (requests / RPM); "speed" is audio seconds per wall second.
"""

from __future__ import annotations

import argparse
import bisect
import http.client
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.audio import make_speechlike  # noqa: E402
from tests.support.service import API_KEY, Layout, ServiceProcess, wait_for  # noqa: E402

from dropscribe.emulator import Emulator, EmulatorConfig  # noqa: E402
from dropscribe.logs import configure  # noqa: E402

Gap = tuple[float, float]

# Per word: the chance that a long stretch without a real pause starts here (about every 4 minutes).
LONG_STRETCH_CHANCE = 0.005
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
               "proxy-connection", "content-length", "server", "date"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=float, nargs="+", default=[120.0, 150.0, 180.0, 240.0, 290.0])
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--rpm", type=int, default=100, help="emulator quota and the service's setting")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--latency-base", type=float, default=0.5, help="seconds per recognition")
    parser.add_argument("--latency-per-s", type=float, default=0.01, help="plus this per audio second")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--tmp", default=None, help="where to generate the recording")
    args = parser.parse_args()
    configure("console", "warning")  # the in-process emulator would log every request
    seconds = args.hours * 3600.0
    gaps = speech_layout(seconds, random.Random(args.seed))
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-chunklen-", dir=args.tmp) as tmp:
        source = Path(tmp) / f"talk-{args.hours:g}h.wav"
        started = time.perf_counter()
        make_speechlike(source, seconds, "wav", gaps)
        print(f"generated {source.name}: {source.stat().st_size / 2**20:.0f} MiB, {len(gaps)} pauses, "
              f"in {time.perf_counter() - started:.0f} s", file=sys.stderr)  # fmt: skip
        for chunk_max_s in args.chunks:
            run = _run(source, Path(tmp) / f"site-{chunk_max_s:g}", chunk_max_s, args)
            quality = boundary_quality(run.spans, gaps)
            print(f"chunk_max_s {chunk_max_s:g}: {run}, {quality}", file=sys.stderr)
            rows.append(
                f"| {chunk_max_s:g} | {run.accepted} | {run.accepted / args.hours:.1f} | {run.throttled} | "
                f"{run.accepted * 60.0 / args.rpm:.0f} | {run.wall_s:.0f} | {seconds / run.wall_s:.0f}× | "
                f"{quality['in_word_pct']:.1f} % ({quality['in_word']}/{quality['cuts']}) | "
                f"{quality['median_off_middle_s']:.2f} | {quality['median_pause_s']:.2f} | "
                f"{quality['shortest_s']:.1f} / {quality['longest_s']:.1f} |"
            )  # fmt: skip
        source.unlink()
    print(f"{args.hours:g} h recording, emulator quota {args.rpm} RPM, service requests_per_minute "
          f"{args.rpm}, concurrency {args.concurrency}, latency {args.latency_base:g} s + "
          f"{args.latency_per_s:g} × audio s\n")  # fmt: skip
    print("| chunk_max_s | requests | requests / audio h | throttled | quota floor (s) "
          "| wall (s) | speed | cuts in a word | median cut − pause middle (s) | median pause at cut (s) "
          "| shortest / longest chunk (s) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


def speech_layout(seconds: float, rng: random.Random) -> list[Gap]:
    """Pauses ``(start_s, end_s)`` of a talk of ``seconds``; the words are everything in between.

    Every pause ends before ``seconds`` with a word after it: ``make_speechlike`` would lengthen the
    file to reach a pause placed past its end.
    """
    gaps: list[Gap] = []
    at = rng.uniform(0.2, 0.8)  # the first word
    stretch_end = 0.0
    while True:
        if at >= stretch_end and rng.random() < LONG_STRETCH_CHANCE:
            stretch_end = at + rng.uniform(30.0, 120.0)
        pause = rng.uniform(0.15, 0.3) if at < stretch_end else rng.uniform(0.15, 1.5)
        word = rng.uniform(0.2, 0.8)
        if at + pause + word > seconds:
            return gaps
        gaps.append((at, at + pause))
        at += pause + word


def boundary_quality(spans: Sequence[Gap], gaps: Sequence[Gap]) -> dict[str, Any]:
    """Where the cuts between ``spans`` fall against the known pauses ``gaps`` (sorted)."""
    starts = [a for a, _ in gaps]
    in_word = 0
    off_middle: list[float] = []
    pause_len: list[float] = []
    cuts = [end for _, end in spans[:-1]]
    for cut in cuts:
        i = bisect.bisect_right(starts, cut) - 1  # the last pause starting at or before the cut
        if i >= 0 and cut <= gaps[i][1]:
            a, b = gaps[i]
            off_middle.append(abs(cut - (a + b) / 2.0))
            pause_len.append(b - a)
        else:
            in_word += 1
    lengths = [b - a for a, b in spans]
    inner = lengths[:-1] or lengths
    return {
        "cuts": len(cuts),
        "in_word": in_word,
        "in_word_pct": 100.0 * in_word / len(cuts) if cuts else 0.0,
        "median_off_middle_s": statistics.median(off_middle) if off_middle else float("nan"),
        "median_pause_s": statistics.median(pause_len) if pause_len else float("nan"),
        "shortest_s": min(inner),
        "longest_s": max(lengths),
    }


@dataclass
class _Run:
    wall_s: float
    accepted: int
    throttled: int
    spans: list[Gap]

    def __str__(self) -> str:
        return f"wall {self.wall_s:.1f} s, {self.accepted} accepted, {self.throttled} throttled"


def _run(source: Path, site: Path, chunk_max_s: float, args: argparse.Namespace) -> _Run:
    emulator = Emulator(EmulatorConfig(api_keys={API_KEY}, requests_per_minute=args.rpm))
    emulator.start()
    proxy = _LatencyProxy(emulator.root_url, args.latency_base, args.latency_per_s)
    try:
        layout = Layout(site, proxy.root_url + "/api/v1")
        layout.data["dashscope"].update({"requests_per_minute": args.rpm, "concurrency": args.concurrency})
        layout.data["logging"] = {"format": "json", "level": "info"}
        layout.data["defaults"] = {"chunk_max_s": chunk_max_s}
        layout.write()
        service = ServiceProcess(layout.config).wait_started()
        copy = site / source.name
        shutil.copyfile(source, copy)  # a hard link would be refused (more than one link)
        dropped = time.monotonic()
        os.rename(copy, layout.inbox / source.name)  # atomic: the service never sees a partial file
        result = layout.done / f"{source.stem}.json"
        wait_for(lambda: result.exists() or layout.failed_files(), timeout=3 * 3600, interval=0.2)
        wall_s = time.monotonic() - dropped
        service.stop()
        if layout.failed_files():
            raise SystemExit(f"the file failed: {layout.failed_files()}\n{service.output()[-3000:]}")
        segments = json.loads(result.read_text())["segments"]
        sent = [r for r in emulator.requests() if "generation" in r["path"]]
        return _Run(
            wall_s=wall_s,
            accepted=sum(1 for r in sent if r["status"] == 200),
            throttled=sum(1 for r in sent if r["status"] == 429),
            spans=[(float(s["start_s"]), float(s["end_s"])) for s in segments],
        )
    finally:
        proxy.stop()
        emulator.stop()


class _LatencyProxy:
    """Passes every request on to the emulator; holds accepted recognitions as long as the model would."""

    def __init__(self, upstream: str, base_s: float, per_audio_s: float) -> None:
        target = urlsplit(upstream)
        host, port = target.hostname or "127.0.0.1", target.port or 80

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

            def do_PUT(self) -> None:
                self._forward()

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                connection = http.client.HTTPConnection(host, port, timeout=300)
                try:
                    connection.request(self.command, self.path, body=body, headers=headers)
                    answer = connection.getresponse()
                    data = answer.read()
                finally:
                    connection.close()
                if "generation" in self.path and answer.status == 200:
                    time.sleep(base_s + per_audio_s * float(json.loads(data)["usage"]["seconds"]))
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


if __name__ == "__main__":
    main()
