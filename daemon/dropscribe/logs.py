"""Structured logging: JSON lines off a terminal, readable console output on one.

The service's structlog events and the standard-library loggers of its dependencies (httpx, botocore,
watchdog...) share one pipeline and one stderr handler. Under systemd, each line starts with its syslog
priority (``<3>``, ``<4>``, ``<6>``, ``<7>``), which journald turns into the entry's priority.

Two processors guard every line: secrets registered at start-up (the API key) are masked wherever they
appear, and strings are escaped so a file name with a newline or an escape sequence cannot forge or
garble a log line.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_QUERY_SECRET = re.compile(
    r"(https?://[^\s?\"']+)\?[^\s\"']*(?:Signature|X-Amz-|OSSAccessKeyId|Expires)[^\s\"']*",
    re.IGNORECASE,
)
# what signed requests carry in headers, as libraries print them at debug level (botocore's SigV4
# Authorization header, session tokens, bearer tokens of any backend)
_HEADER_SECRET = re.compile(
    r"(Signature=|Credential=|X-Amz-Security-Token[\"']?\s*[:=]\s*[b]?[\"']?|Bearer\s+)"
    r"[^\s,;&\"']+",
    re.IGNORECASE,
)
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def register_secret(value: str) -> None:
    """Mask ``value`` in every later log line (API keys, credentials read at start-up)."""
    if len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def scrub(text: str) -> str:
    """Remove registered secrets and presigned query strings, then escape unprintable characters."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    text = _QUERY_SECRET.sub(r"\1?<redacted>", text)
    text = _HEADER_SECRET.sub(r"\1<redacted>", text)
    return _UNPRINTABLE.sub(_escape_char, text)


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


def _scrub_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        event_dict[key] = _scrub_value(value)
    return event_dict


# Libraries that log every request or file event at info/debug: kept at warning unless level is debug.
CHATTY_LOGGERS = (
    "asyncio", "boto3", "botocore", "s3transfer", "urllib3", "httpcore", "httpx", "watchdog",
)  # fmt: skip

# syslog priorities, read by journald from a "<N>" line prefix (SyslogLevelPrefix=, on by default)
_ERR, _WARNING, _INFO, _DEBUG = 3, 4, 6, 7


def _priority(levelno: int) -> int:
    if levelno >= logging.ERROR:
        return _ERR
    if levelno >= logging.WARNING:
        return _WARNING
    return _INFO if levelno >= logging.INFO else _DEBUG


def _stderr_is_journal(env: Mapping[str, str]) -> bool:
    """True when stderr is the stream systemd connected to journald (``$JOURNAL_STREAM`` is its
    ``device:inode``); a redirection in between, or a child that inherited the variable, does not match."""
    expected = env.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in expected.split(":"))
        info = os.fstat(sys.stderr.fileno())
    except (ValueError, AttributeError, OSError):
        return False
    return (info.st_dev, info.st_ino) == (device, inode)


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """The structlog renderer for every record, with each line prefixed by its syslog priority when
    journald reads it."""

    def __init__(self, *, journal: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.journal:
            return text
        prefix = f"<{_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.split("\n"))


class _StderrHandler(logging.StreamHandler[TextIO]):
    """The one root handler this module owns; found again, not added again, on reconfiguration."""


def configure(fmt: str = "auto", level: str = "info") -> None:
    """Set up logging for the process; may be called again (reload) to change format or level.

    Everything goes to stderr (journald picks it up) through one handler on the root logger: the
    service's structlog events and the standard-library records of its dependencies get the same
    renderer and the same scrubbing, and cannot interleave within a line.
    """
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    levelno = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    stamped: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = _Formatter(
        journal=_stderr_is_journal(os.environ),
        foreign_pre_chain=[
            *stamped,
            structlog.stdlib.add_logger_name,
            structlog.processors.format_exc_info,
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _scrub_event, renderer],
    )
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler(sys.stderr)
        root.addHandler(handler)
    else:
        handler.setStream(sys.stderr)
    handler.setFormatter(formatter)
    root.setLevel(levelno)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if levelno <= logging.DEBUG else logging.WARNING)

    service_logger = logging.getLogger("dropscribe")
    structlog.configure(
        processors=[
            *stamped,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(levelno),
        logger_factory=lambda *_args: service_logger,
        cache_logger_on_first_use=False,
    )


def get_logger(**initial: Any) -> Any:
    return structlog.get_logger(**initial)
