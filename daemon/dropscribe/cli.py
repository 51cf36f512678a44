"""The ``dropscribe`` command: run, check, transcribe, status, retry, emulate."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dropscribe import version
from dropscribe.core.errors import ConfigError, DropscribeError
from dropscribe.core.status_view import ago

EX_CONFIG = 78  # sysexits.h: configuration error
EX_TEMPFAIL = 75  # sysexits.h: temporary failure; another service holds this journal


class _Version(argparse.Action):
    """``--version``, reading the release only when asked (package metadata is slow to load)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the release and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(f"dropscribe {version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dropscribe", description="Watched inbox folders in, Qwen3-ASR transcripts out."
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the service")
    p.add_argument("-c", "--config", type=Path, required=True)

    p = sub.add_parser("check", help="validate the config and every rule file (exit 78 on errors)")
    p.add_argument("-c", "--config", type=Path, required=True)

    p = sub.add_parser("transcribe", help="transcribe files once through the same pipeline; print the text")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("-c", "--config", type=Path)
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="recognize again (and pay again) even if a result for the same content is stored",
    )

    p = sub.add_parser("status", help="queue, in-flight, done, failed and pause state from the journal")
    p.add_argument("-c", "--config", type=Path, required=True)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("explain", help="the history of one file: each step journaled, and why it waits")
    p.add_argument("-c", "--config", type=Path, required=True)
    p.add_argument("file", metavar="PATH|SHA256", help="a file in an inbox, done/ or failed/, or its SHA-256")
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
        if args.command == "explain":
            return cmd_explain(args)
    except ConfigError as exc:
        print(f"dropscribe: configuration error\n{exc}", file=sys.stderr)
        return EX_CONFIG
    except DropscribeError as exc:
        print(f"dropscribe: {exc}", file=sys.stderr)
        return 1
    return 2


def cmd_run(args: argparse.Namespace) -> int:
    from dropscribe.adapters.allocator import map_large_blocks
    from dropscribe.adapters.instance import AlreadyRunningError, InstanceLock
    from dropscribe.service.compose import compose
    from dropscribe.service.runner import Service
    from dropscribe.service.settings_files import load_settings
    from dropscribe.service.signals import install_signal_handlers

    settings = load_settings(args.config, dict(os.environ))
    # taken before the Service opens the journal: two services on one journal would take the same
    # files and pay for them twice
    try:
        lock = InstanceLock.acquire(settings.state.path)
    except AlreadyRunningError as exc:
        print(f"dropscribe: {exc}; not starting a second one", file=sys.stderr)
        return EX_TEMPFAIL
    with lock:  # held for the life of the process; an os._exit or kill -9 drops it just the same
        map_large_blocks()  # months of multi-megabyte request bodies would otherwise stay in the heaps
        service = Service(compose(settings, dict(os.environ), config_path=args.config))
        install_signal_handlers(service)
        return service.run()


def cmd_check(args: argparse.Namespace) -> int:
    from dropscribe.service.settings_files import check_config

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

    status = 0
    try:
        for path, result in transcribe_files(args.files, args.config, dict(os.environ), fresh=args.fresh):
            error = result.get("error")
            if error:
                status = 1
                remote = f" ({error['remote_code']})" if error.get("remote_code") else ""
                print(f"{path}: {error['code']}{remote}: {error['message']}", file=sys.stderr)
            if args.json:
                print(json.dumps({"file": str(path), **result}, ensure_ascii=False), flush=True)
            elif not error:
                if len(args.files) > 1:
                    print(f"== {path}")
                print(result["text"], flush=True)
    except KeyboardInterrupt:
        print("dropscribe: interrupted; what was recognized is kept: run the same command again to pay "
              "only for the rest", file=sys.stderr)  # fmt: skip
        return 130  # 128 + SIGINT, as a shell reports it
    return status


_WAITING_TEXT = {  # reason -> (with a time, without one)
    "settling": ("settling until {at}", "settling: still changing"),
    "incomplete": ("looks unfinished, looked at again at {at}", "looks unfinished"),
    "retry": ("retry at {at}", "retry pending"),
    "held": ("held by an invalid rule file until {at}", "held by an invalid rule file"),
    "paused": ("queue paused until {at}", "queue paused"),
    "over_budget": ("over budget until {at}", "over budget"),
    "queued": ("queued for a worker", "queued for a worker"),
    "open_for_writing": ("still open for writing, looked at again at {at}", "still open for writing"),
    "claimed": ("being processed by another process, looked at again at {at}", "claimed by another process"),
    "output_full": (
        "its done/ or failed/ folder is full, tried again at {at}",
        "its done/ or failed/ folder is full; tried again once there is room",
    ),
}


def _waiting_why(item: Mapping[str, Any]) -> str:
    """Why a file waits, from an entry of the service's waiting report."""
    reason = str(item.get("reason"))
    timed, untimed = _WAITING_TEXT.get(reason, (f"{reason} until {{at}}", reason))
    until = item.get("until")
    said = timed.format(at=_clock(until)) if isinstance(until, int | float) else untimed
    budget = item.get("budget")
    if reason == "over_budget" and isinstance(budget, Mapping):
        said += f" ({budget.get('period')} budget of {budget.get('scope')})"
    return said


def _clock(at: float) -> str:
    """HH:MM:SS for today, with the date otherwise (local time, as an operator reads it)."""
    fmt = "%H:%M:%S" if time.strftime("%F", time.localtime(at)) == time.strftime("%F") else "%F %H:%M:%S"
    return time.strftime(fmt, time.localtime(at))


def _shown(text: str) -> str:
    """A file name as typed, unless it holds control characters: then quoted and escaped."""
    return text if text.isprintable() else repr(text)


def cmd_status(args: argparse.Namespace) -> int:
    from dropscribe.adapters.instance import probe
    from dropscribe.adapters.statusfile import read_status
    from dropscribe.core.hosts_view import headline as hosts_headline
    from dropscribe.core.hosts_view import host_lines
    from dropscribe.service.hosts_view import read_hosts
    from dropscribe.service.journal_opening import journal_present, open_journal
    from dropscribe.service.settings_files import load_settings

    settings = load_settings(args.config, dict(os.environ))
    if not journal_present(settings):
        print("service: not running (no journal yet: the service has not run with this config)")
        return 0
    # the lock, not the report, says whether a service runs: a report outlives its writer
    state = probe(settings.state.path)
    meta = read_status(settings.state.path)
    live = state.holder if state.running else None
    own_report = meta is not None and live is not None and meta.get("pid") in (None, live.pid)
    if live is not None and not own_report:
        meta = None  # left by an earlier run: the one running now has not reported yet
    journal = open_journal(settings)
    try:
        hosts = read_hosts(settings, journal)  # None unless the journal is shared (state.url)
        now = time.time()
        counts = journal.counts()
        paused = journal.get_meta("paused")
        working = journal.jobs_in("working", "finishing")
        failed = journal.recent("failed", 10)
        at = (meta or {}).get("at")
        report_age_s = round(now - at, 3) if isinstance(at, int | float) else None
        service = {**(meta or {}), **state.as_dict(), "report_age_s": report_age_s}
        if hosts is not None:  # another host may run it: running means any host is alive
            service["running"] = service["running"] or hosts["running"]
        jobs = {(j.inbox, j.relpath): j for j in working}
        waiting = []
        for entry in (meta or {}).get("waiting", []) if live is not None else []:
            job = jobs.get((entry.get("inbox"), entry.get("relpath")))
            waiting.append({
                **entry,
                "state": job.state if job else None,
                "attempts": job.attempts if job else 0,
                "last_error": job.last_error if job else None,
            })  # fmt: skip
        report: dict[str, Any] = {
            "counts": counts,
            "paused": json.loads(paused) if paused else None,
            "service": service,
            "waiting": waiting,
            "in_progress": [
                {"inbox": j.inbox, "relpath": j.relpath, "state": j.state, "attempts": j.attempts,
                 "last_error": j.last_error,
                 "retry_at": j.next_attempt_at if j.next_attempt_at > now else None}
                for j in working
            ],
            "recent_failures": [
                {"relpath": j.relpath, "code": (j.error or {}).get("code"),
                 "message": (j.error or {}).get("message")}
                for j in failed
            ],
            "usage_seconds_total": journal.usage_seconds_total(),
            "budgets": (meta or {}).get("budgets", []) if live is not None else [],
        }  # fmt: skip
        if hosts is not None:
            report["hosts"] = hosts
    finally:
        journal.close()
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    one_inbox = len(settings.inboxes) == 1

    def shown_path(inbox: str, relpath: str) -> str:
        return _shown(relpath if one_inbox else f"{inbox.rstrip('/')}/{relpath}")

    if hosts is not None:
        print(f"service: {hosts_headline(hosts)}")
        print("\n".join(host_lines(hosts, shown=shown_path, clock=_clock)))
    elif service["running"]:
        said = f"last report {ago(service['report_age_s'])}" if meta else "no report yet"
        print(f"service: running (pid {service['pid']} on {service['host']}), {said}")
    else:
        seen = f"last seen {ago(service['report_age_s'])}" if meta else "never reported"
        last = service["last_holder"]
        who = f", pid {last['pid']} on {last['host']}" if last and last["pid"] is not None else ""
        print(f"service: not running ({seen}{who})")
    if report["paused"]:
        print(f"PAUSED: {report['paused']['code']}: {report['paused']['message']}")
        print("  every file stays in its inbox; fix the key or account, then `systemctl reload dropscribe`")
    if live is not None and meta:
        print(f"  {meta['text']}")
        for path, inbox in meta.get("inboxes", {}).items():
            state_text = f"UNAVAILABLE: {inbox['problem']}" if not inbox["available"] else (
                f"waiting {inbox['waiting']}"
            )  # fmt: skip
            held = f", {inbox['held_rule_files']} rule file(s) invalid" if inbox["held_rule_files"] else ""
            print(f"  inbox {path}: {state_text}{held}")
    print("jobs: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) if counts else "jobs: none")
    print(f"billed audio: {report['usage_seconds_total']:.0f} s")
    for row in report["budgets"]:
        spent = row["used_s"] + row["reserved_s"]
        print(f"  budget {row['scope']} ({row['period']}): {spent:.0f} of {row['limit_s']:.0f} s used, "
              f"resets {_clock(row['resets_at'])}")  # fmt: skip
    listed = set()
    for item in waiting:
        listed.add((item.get("inbox"), item.get("relpath")))
        why = _waiting_why(item)
        if item["attempts"]:
            why += f" (attempt {item['attempts']}: {item['last_error']})"
        elif item["last_error"]:
            why += f" ({item['last_error']})"
        print(f"  {'waiting':9} {shown_path(str(item.get('inbox')), str(item.get('relpath')))}: {why}")
    for item in report["in_progress"]:
        if (item["inbox"], item["relpath"]) in listed:
            continue
        extra = f" (attempt {item['attempts']}: {item['last_error']})" if item["attempts"] else ""
        if item["retry_at"] is not None:
            extra += f", retry at {_clock(item['retry_at'])}"
        if not service["running"]:
            extra += "; waits for the service to run"
        print(f"  {item['state']:9} {shown_path(item['inbox'], item['relpath'])}{extra}")
    if report["recent_failures"]:
        print("recent failures:")
        for item in report["recent_failures"]:
            print(f"  {_shown(item['relpath'])}: {item['code']}: {item['message']}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from dropscribe.service.explain import NotFoundError, explain, printable, render
    from dropscribe.service.settings_files import load_settings

    settings = load_settings(args.config, dict(os.environ))
    try:
        document = explain(settings, args.file, Path.cwd())
    except NotFoundError as exc:
        print(f"dropscribe explain: {_safe(str(exc))}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(printable(document), ensure_ascii=False, indent=2))
    else:
        print(_safe(render(document, shown=_shown, clock=_clock, why=_waiting_why)))
    return 0


def _safe(text: str) -> str:
    """Text fit for any terminal encoding: bytes of names that are not UTF-8 as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def cmd_retry(args: argparse.Namespace) -> int:
    from dropscribe.service.retry import retry_failed
    from dropscribe.service.settings_files import load_settings

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
