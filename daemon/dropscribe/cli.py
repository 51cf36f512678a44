"""The ``dropscribe`` command: run, check, transcribe, status, retry, emulate."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from dropscribe import __version__
from dropscribe.core.errors import ConfigError, DropscribeError

EX_CONFIG = 78  # sysexits.h: configuration error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dropscribe", description="Watched inbox folders in, Qwen3-ASR transcripts out."
    )
    parser.add_argument("--version", action="version", version=f"dropscribe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the service")
    p.add_argument("-c", "--config", type=Path, required=True)

    p = sub.add_parser("check", help="validate the config and every rule file (exit 78 on errors)")
    p.add_argument("-c", "--config", type=Path, required=True)

    p = sub.add_parser("transcribe", help="transcribe files once through the same pipeline; print the text")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("-c", "--config", type=Path)
    p.add_argument("--json", action="store_true", help="print the full result as JSON")

    p = sub.add_parser("status", help="queue, in-flight, done, failed and pause state from the journal")
    p.add_argument("-c", "--config", type=Path, required=True)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("retry", help="move failed files back to their inbox")
    p.add_argument("-c", "--config", type=Path, required=True)
    p.add_argument("paths", nargs="*", type=Path, help="files in a failed/ folder")
    p.add_argument("--all", action="store_true", help="every file in every failed/ folder")

    sub.add_parser("emulate", help="a local DashScope-compatible emulator (not a recognizer)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "emulate":
        from dropscribe.emulator.cli import main as emulate_main

        return emulate_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "check":
            return cmd_check(args)
        if args.command == "transcribe":
            return cmd_transcribe(args)
        if args.command == "status":
            return cmd_status(args)
        if args.command == "retry":
            return cmd_retry(args)
    except ConfigError as exc:
        print(f"dropscribe: configuration error\n{exc}", file=sys.stderr)
        return EX_CONFIG
    except DropscribeError as exc:
        print(f"dropscribe: {exc}", file=sys.stderr)
        return 1
    return 2


def cmd_run(args: argparse.Namespace) -> int:
    from dropscribe.service.runner import Service

    return Service(args.config, dict(os.environ)).run()


def cmd_check(args: argparse.Namespace) -> int:
    from dropscribe.config.load import check_config

    problems = check_config(args.config)
    if problems:
        print(f"{args.config}: {len(problems)} problem(s)", file=sys.stderr)
        for message in problems:
            print(f"  {message}", file=sys.stderr)
        return EX_CONFIG
    print(f"{args.config}: ok")
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from dropscribe.service.oneshot import transcribe_files

    results = transcribe_files(args.files, args.config, dict(os.environ))
    status = 0
    for path, result in results:
        if args.json:
            print(json.dumps({"file": str(path), **result}, ensure_ascii=False))
        elif "error" in result:
            print(f"{path}: {result['error']['code']}: {result['error']['message']}", file=sys.stderr)
        else:
            if len(results) > 1:
                print(f"== {path}")
            print(result["text"])
        if "error" in result:
            status = 1
    return status


def cmd_status(args: argparse.Namespace) -> int:
    from dropscribe.adapters.journal import Journal
    from dropscribe.config.load import load_settings

    settings = load_settings(args.config, dict(os.environ))
    if not settings.state.path.exists():
        print("no journal yet: the service has not run with this config")
        return 0
    journal = Journal(settings.state.path)
    try:
        counts = journal.counts()
        paused = journal.get_meta("paused")
        status = journal.get_meta("status")
        working = journal.jobs_in("working", "finishing")
        failed = journal.recent("failed", 10)
        report: dict[str, Any] = {
            "counts": counts,
            "paused": json.loads(paused) if paused else None,
            "service": json.loads(status) if status else None,
            "in_progress": [
                {"inbox": j.inbox, "relpath": j.relpath, "state": j.state, "attempts": j.attempts,
                 "last_error": j.last_error,
                 "retry_at": j.next_attempt_at if j.next_attempt_at > time.time() else None}
                for j in working
            ],
            "recent_failures": [
                {"relpath": j.relpath, "code": (j.error or {}).get("code"),
                 "message": (j.error or {}).get("message")}
                for j in failed
            ],
            "usage_seconds_total": journal.usage_seconds_total(),
        }
    finally:
        journal.close()
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    if report["paused"]:
        print(f"PAUSED: {report['paused']['code']}: {report['paused']['message']}")
        print("  every file stays in its inbox; fix the key or account, then `systemctl reload dropscribe`")
    service = report["service"]
    if service:
        age = time.time() - service["at"]
        print(f"service: {service['text']} (reported {age:.0f} s ago)")
        for path, inbox in service.get("inboxes", {}).items():
            state = f"UNAVAILABLE: {inbox['problem']}" if not inbox["available"] else (
                f"waiting {inbox['waiting']}"
            )
            held = f", {inbox['held_rule_files']} rule file(s) invalid" if inbox["held_rule_files"] else ""
            print(f"  inbox {path}: {state}{held}")
    print("jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) if counts else "jobs: none")
    print(f"billed audio: {report['usage_seconds_total']:.0f} s")
    for item in report["in_progress"]:
        extra = f" (attempt {item['attempts']}: {item['last_error']})" if item["attempts"] else ""
        print(f"  {item['state']:9} {item['relpath']!r}{extra}")
    if report["recent_failures"]:
        print("recent failures:")
        for item in report["recent_failures"]:
            print(f"  {item['relpath']!r}: {item['code']}: {item['message']}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    from dropscribe.config.load import load_settings
    from dropscribe.service.retry import retry_failed

    if not args.all and not args.paths:
        print("dropscribe retry: name files in a failed/ folder, or --all", file=sys.stderr)
        return 2
    settings = load_settings(args.config, dict(os.environ))
    moved, problems = retry_failed(settings, None if args.all else args.paths)
    for source, target in moved:
        print(f"{source} -> {target}")
    for problem in problems:
        print(f"dropscribe retry: {problem}", file=sys.stderr)
    return 1 if problems else 0
