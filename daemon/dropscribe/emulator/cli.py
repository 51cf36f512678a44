"""``dropscribe emulate``: run the emulator in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from dropscribe.emulator.config import EmulatorConfig
from dropscribe.emulator.faults import Fault
from dropscribe.emulator.hearing import HearingUnavailableError
from dropscribe.emulator.protocol import DOCUMENTED_RPM
from dropscribe.emulator.server import Emulator
from dropscribe.emulator.transcripts import RECOGNIZERS


def _fault(spec: str) -> Fault:
    try:
        return Fault.parse(spec)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _rpm(value: str) -> int:
    try:
        rpm = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rpm takes a whole number, not {value!r}") from None
    if rpm < 0:
        raise argparse.ArgumentTypeError("--rpm cannot be negative (0 lifts the limit)")
    return rpm


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dropscribe emulate",
        description=(
            "Serve a local DashScope-compatible API (sync recognition, file-transcription tasks, "
            "temporary uploads, fault injection) and vLLM's OpenAI-compatible /v1/audio/transcriptions. "
            "It is an emulator, not a speech recognizer: transcripts only name the audio's duration and "
            "SHA-256, unless --recognizer pocketsphinx answers the English words it roughly hears."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accept only this key (repeatable); without it any non-empty key is accepted",
    )
    parser.add_argument(
        "--max-duration-s",
        type=float,
        default=300.0,
        help="longest audio the sync endpoint accepts (default: %(default)s)",
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=10 * 1024 * 1024,
        help="largest audio the sync endpoint accepts (default: %(default)s)",
    )
    parser.add_argument(
        "--rpm",
        type=_rpm,
        default=DOCUMENTED_RPM,
        help=(
            "recognition requests per minute per key (account) and model, over which the answer is 429 "
            "Throttling.RateQuota; the default is the documented quota, 0 lifts it "
            "(the Emulator class used by tests has no limit unless given one) (default: %(default)s)"
        ),
    )
    parser.add_argument(
        "--task-run-s",
        type=float,
        default=1.0,
        help="seconds a file-transcription task takes (default: %(default)s)",
    )
    parser.add_argument(
        "--openai-model",
        default="Qwen/Qwen3-ASR-1.7B",
        help="the model /v1/audio/transcriptions serves, as vLLM would (default: %(default)s)",
    )
    parser.add_argument(
        "--openai-max-upload-mb",
        type=float,
        default=25.0,
        help="largest upload /v1/audio/transcriptions accepts, in MiB (default: %(default)s)",
    )
    parser.add_argument(
        "--asr-text-marker",
        action="store_true",
        help="prefix /v1 transcripts with 'language English<asr_text>', as some servers leave in",
    )
    parser.add_argument(
        "--recognizer",
        choices=RECOGNIZERS,
        default="placeholder",
        help=(
            "placeholder: text naming the audio's duration and SHA-256; pocketsphinx: the English "
            "words pocketsphinx hears (needs dropscribe[hear]) (default: %(default)s)"
        ),
    )
    parser.add_argument("--log", metavar="PATH", help="append one JSON line per request to PATH")
    parser.add_argument(
        "--fault",
        action="append",
        type=_fault,
        default=[],
        metavar="SPEC",
        help="inject a fault, e.g. status=503,code=ServiceUnavailable,times=3,path=generation",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until SIGINT/SIGTERM; returns the exit status (0)."""
    args = build_parser().parse_args(argv)
    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        api_keys=frozenset(args.api_keys) if args.api_keys else None,
        max_sync_bytes=args.max_bytes,
        max_sync_duration_s=args.max_duration_s,
        requests_per_minute=args.rpm,
        task_run_s=args.task_run_s,
        log_path=args.log,
        openai_model=args.openai_model,
        openai_max_upload_mb=args.openai_max_upload_mb,
        asr_text_marker=args.asr_text_marker,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)

    try:
        emulator = Emulator(config, recognizer=args.recognizer)
    except HearingUnavailableError as exc:
        print(f"dropscribe emulate: {exc}", file=sys.stderr, flush=True)
        return 2
    emulator.start()
    for fault in args.fault:
        emulator.add_fault(fault)
    print(
        f"dropscribe emulator (a fake DashScope API, not a speech recognizer) serving {emulator.base_url}",
        flush=True,
    )
    print(f"OpenAI-compatible (vLLM) endpoints at {emulator.openai_base_url}", flush=True)
    print(f"transcripts from the {args.recognizer} recognizer", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0
