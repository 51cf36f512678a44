"""Time and peak memory of the audio adapter on long generated recordings.

Usage: ``.venv/bin/python bench/bench_audio.py [--minutes 10 60] [--fmt mp3] [--rate 44100]
[--channels 2]``. Prints a Markdown table. Each operation runs in a fresh interpreter, so its peak RSS
(``getrusage``) is its own and not the high-water mark of whatever ran before; the "growth" column is
that peak minus the same process's RSS right after importing PyAV and dropscribe.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# stream_chunks: the one pass the service makes (pauses found by FFmpeg's astats while each chunk is written),
# against measure_energy + encode_chunks, the two passes it replaced
OPERATIONS = ("probe", "measure_energy", "encode_chunks", "stream_chunks", "transcode")
CHUNK_MAX_S = 180.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--fmt", default="mp3", help="fixture format (see tests/support/audio.py)")
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--measure", nargs=3, metavar=("OP", "SOURCE", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(_measure(*args.measure)))
        return

    sys.path.insert(0, str(ROOT))
    from tests.support.audio import make_speechlike

    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-audio-") as tmp:
        for minutes in args.minutes:
            seconds = minutes * 60.0
            source = Path(tmp) / f"talk-{minutes:g}min.{args.fmt}"
            started = time.perf_counter()
            make_speechlike(source, seconds, args.fmt, sample_rate=args.rate, channels=args.channels)
            made_s = time.perf_counter() - started
            size_mib = source.stat().st_size / 2**20
            print(f"generated {source.name}: {size_mib:.1f} MiB in {made_s:.1f} s", file=sys.stderr)
            work = Path(tmp) / f"work-{minutes:g}"
            work.mkdir()
            for op in OPERATIONS:
                result = _run_isolated(op, source, work)
                extra = f"{result['chunks']} chunks" if "chunks" in result else ""
                # Probing reads headers only; a speed relative to the audio's length means nothing.
                speed = "–" if op == "probe" else f"{result['speed_x']:.0f}×"
                rows.append(
                    f"| {minutes:g} min {args.fmt} {args.rate / 1000:g} kHz {args.channels} ch "
                    f"({size_mib:.0f} MiB) | {op} | {result['wall_s']:.3f} | {speed} | "
                    f"{result['peak_mib']:.0f} | {result['peak_mib'] - result['base_mib']:.0f} | "
                    f"{extra} |"
                )
                print(rows[-1], file=sys.stderr)

    print(f"\nPython {sys.version.split()[0]}, PyAV {_pyav_version()}\n")
    print("| file | operation | wall s | × real time | peak RSS MiB | growth MiB | notes |")
    print("|---|---|---:|---:|---:|---:|---|")
    print("\n".join(rows))


def _run_isolated(op: str, source: Path, work: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--measure", op, str(source), str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{op} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _measure(op: str, source_arg: str, work_arg: str) -> dict[str, Any]:
    from dropscribe.adapters import audio
    from dropscribe.core.chunking import plan_chunks
    from dropscribe.core.formats import DASHSCOPE, format_policy

    source = Path(source_arg)
    work = Path(work_arg)
    spans_file = work / "spans.json"
    base_mib = _peak_mib()
    result: dict[str, Any] = {}
    with source.open("rb") as handle:
        started = time.perf_counter()
        if op == "probe":
            duration = audio.probe(handle).duration_s
        elif op == "measure_energy":
            energies, duration = audio.measure_energy(handle)
            spans = plan_chunks(energies, 0.1, duration, CHUNK_MAX_S)
            spans_file.write_text(json.dumps(spans))
        elif op == "encode_chunks":
            spans = [tuple(span) for span in json.loads(spans_file.read_text())]
            chunks = audio.encode_chunks(handle, spans, work / "chunks")
            duration = spans[-1][1]
            result["chunks"] = len(chunks)
        elif op == "stream_chunks":
            encoding = format_policy(DASHSCOPE).chunk_encoding
            count = 0
            for chunk in audio.stream_chunks(handle, work / "streamed", encoding, CHUNK_MAX_S):
                if chunk.path is not None:
                    chunk.path.unlink()  # as the service does once a chunk is answered
                count += 1
                duration = chunk.end_s
            result["chunks"] = count
        elif op == "transcode":
            audio.transcode(handle, work / "whole.flac")
            duration = audio.probe(work / "whole.flac").duration_s
        else:
            raise SystemExit(f"unknown operation {op!r}")
        wall_s = time.perf_counter() - started
    result.update(wall_s=wall_s, speed_x=duration / wall_s, base_mib=base_mib, peak_mib=_peak_mib())
    return result


def _peak_mib() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pyav_version() -> str:
    import av

    return str(av.__version__)


if __name__ == "__main__":
    main()
