"""The ``dropscribe`` command: run, check, transcribe, status, retry, emulate."""

from __future__ import annotations

import argparse
import sys

from dropscribe import __version__

EX_CONFIG = 78  # sysexits.h: configuration error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dropscribe",
        description="Watched inbox folders in, Qwen3-ASR transcripts out.",
    )
    parser.add_argument("--version", action="version", version=f"dropscribe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [
        ("run", "run the service"),
        ("check", "validate the config and every rule file"),
        ("status", "show the queue, in-flight work, done, failed and pauses"),
    ]:
        p = sub.add_parser(name, help=text)
        p.add_argument("-c", "--config", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(f"{args.command}: not available yet", file=sys.stderr)
    return 1
