"""Logging: the libraries' own loggers come out like the service's events, scrubbed, one line each,
and with the syslog priority journald reads when stderr is the journal.

Each case runs a small real Python process whose stderr is a real file, as under systemd.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

SECRET = "sk-logs-secret-0123456789"

EMIT = textwrap.dedent(
    f"""
    import logging, sys
    from dropscribe.logs import configure, get_logger, register_secret

    register_secret({SECRET!r})
    fmt, level = sys.argv[1], sys.argv[2]
    configure(fmt, level)
    configure(fmt, level)  # a reload configures again
    logging.getLogger("httpx").warning("retrying POST with key %s", {SECRET!r})
    logging.getLogger("botocore.endpoint").error("upload failed for {SECRET}")
    logging.getLogger("httpx").info("HTTP Request: POST https://example.invalid/")
    logging.getLogger("urllib3.connectionpool").debug("Starting new HTTPS connection")
    get_logger().info("service_event", key={SECRET!r})
    try:
        raise RuntimeError("boom with {SECRET}")
    except RuntimeError:
        get_logger().exception("call_failed")
    """
)


def run_child(tmp_path: Path, fmt: str, level: str, *, journal: str | None = None) -> list[str]:
    """The stderr lines of the child; ``journal="match"`` sets JOURNAL_STREAM to its stderr file."""
    stderr_path = tmp_path / f"stderr-{fmt}-{level}-{journal}.log"
    env = {key: value for key, value in os.environ.items() if key != "JOURNAL_STREAM"}
    with stderr_path.open("wb") as stderr:
        info = os.fstat(stderr.fileno())
        if journal == "match":
            env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino}"
        elif journal == "other":  # journald is stdout's, say, while stderr went to a file
            env["JOURNAL_STREAM"] = f"{info.st_dev}:{info.st_ino + 1}"
        done = subprocess.run(
            [sys.executable, "-c", EMIT, fmt, level],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=env, timeout=60,
        )  # fmt: skip
    text = stderr_path.read_text(encoding="utf-8")
    assert done.returncode == 0, text
    assert done.stdout == b""
    assert SECRET not in text
    return text.splitlines()


def parse(line: str) -> dict[str, Any]:
    value = json.loads(line)
    assert isinstance(value, dict)
    return value


def test_library_loggers_share_the_json_pipeline_and_the_scrubbing(tmp_path: Path) -> None:
    """httpx and botocore records become JSON lines like the service's; the secret is masked; the
    chatty libraries' info and debug stay out at level info; a second configure adds no duplicates."""
    lines = run_child(tmp_path, "json", "info")
    events = [parse(line) for line in lines]
    assert [(e["event"].split(" ")[0], e["level"]) for e in events] == [
        ("retrying", "warning"),
        ("upload", "error"),
        ("service_event", "info"),
        ("call_failed", "error"),
    ]
    httpx, botocore, own, failed = events
    assert httpx["event"] == "retrying POST with key ***"
    assert httpx["logger"] == "httpx"
    assert botocore["event"] == "upload failed for ***"
    assert botocore["logger"] == "botocore.endpoint"
    assert own["key"] == "***"
    assert "RuntimeError: boom with ***" in failed["exception"]
    for event in events:
        assert event["timestamp"].endswith("Z")


def test_debug_lets_the_libraries_speak(tmp_path: Path) -> None:
    """At level debug the libraries' info and debug records come through too."""
    events = [parse(line) for line in run_child(tmp_path, "json", "debug")]
    assert [e.get("logger") for e in events] == [
        "httpx", "botocore.endpoint", "httpx", "urllib3.connectionpool", None, None,
    ]  # fmt: skip


def test_reload_to_info_quiets_the_libraries_again(tmp_path: Path) -> None:
    """A reload from debug to info sends the libraries back to warning, with still one handler."""
    script = textwrap.dedent(
        """
        import logging
        from dropscribe.logs import configure

        configure("json", "debug")
        logging.getLogger("httpx").info("while debug")
        configure("json", "info")
        logging.getLogger("httpx").info("after reload")
        logging.getLogger("httpx").warning("a warning")
        print(len(logging.getLogger().handlers))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert [parse(line)["event"] for line in done.stderr.splitlines()] == ["while debug", "a warning"]
    assert done.stdout.strip() == "1"


def test_journal_stream_gets_syslog_priorities(tmp_path: Path) -> None:
    """With stderr connected to journald, each line starts with <N> so `journalctl -p` can filter."""
    lines = run_child(tmp_path, "json", "info", journal="match")
    assert [line[:3] for line in lines] == ["<4>", "<3>", "<6>", "<3>"]
    events = [parse(line[3:]) for line in lines]
    assert [e["level"] for e in events] == ["warning", "error", "info", "error"]


def test_console_lines_under_journald_all_carry_the_priority(tmp_path: Path) -> None:
    """The console renderer puts a traceback on a line of its own; journald reads each line on its
    own, so that line carries the priority too."""
    lines = run_child(tmp_path, "console", "info", journal="match")
    start = next(i for i, line in enumerate(lines) if "call_failed" in line)
    assert lines[start + 1].startswith("<3>Traceback")
    assert all(line.startswith("<3>") for line in lines[start:])
    assert lines[0].startswith("<4>")
    assert "retrying POST with key ***" in lines[0]


def test_no_prefix_off_the_journal(tmp_path: Path) -> None:
    """Without JOURNAL_STREAM, or when it names another file than stderr, lines are plain JSON."""
    for journal in (None, "other"):
        lines = run_child(tmp_path, "json", "info", journal=journal)
        assert len(lines) == 4
        for line in lines:
            assert line.startswith("{"), line
            parse(line)


def test_signed_request_headers_are_masked() -> None:
    """What botocore and HTTP clients print at debug level: SigV4 parts, session and bearer tokens."""
    from dropscribe.logs import scrub

    line = (
        "{'Authorization': b'AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261127/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=16423dadfdf81502dd5c37f390c1d29a', "
        "'X-Amz-Security-Token': b'FwoGZXIvYXdzEXAMPLE', 'authorization': 'Bearer tok.en-123'} "
        "GET /bucket/k?X-Amz-Credential=AKIAEXAMPLE%2F2026&X-Amz-Signature=abcdef0123 HTTP/1.1"
    )
    masked = scrub(line)
    for secret in ("AKIAEXAMPLE", "16423dadfdf8", "FwoGZXIvYXdz", "tok.en-123", "abcdef0123"):
        assert secret not in masked
    assert "SignedHeaders=host;x-amz-date" in masked  # not a secret, kept for debugging
