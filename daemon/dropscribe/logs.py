"""Structured logging: JSON lines off a terminal, readable console output on one.

Two processors guard every line: secrets registered at start-up (the API key) are masked wherever they
appear, and strings are escaped so a file name with a newline or an escape sequence cannot forge or
garble a log line.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_QUERY_SECRET = re.compile(
    r"(https?://[^\s?\"']+)\?[^\s\"']*(?:Signature|X-Amz-|OSSAccessKeyId|Expires)[^\s\"']*",
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


def configure(fmt: str = "auto", level: str = "info") -> None:
    """Set up structlog once for the process; output goes to stderr (journald picks it up)."""
    as_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _scrub_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(**initial: Any) -> Any:
    return structlog.get_logger(**initial)
