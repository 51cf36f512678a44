"""Keeping secrets out of messages: presigned URL keys, inline audio and the API key."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_MAX_MESSAGE_CHARS = 500
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_DATA_URL_RE = re.compile(r"data:[\w.+/-]*(;[\w=.-]+)*,[A-Za-z0-9+/=%]{32,}")


def redact_url(url: str) -> str:
    """``url`` without query string, fragment and user info: where presigned URLs keep their keys.

    A ``data:`` URL is cut after its media type, since its payload is only noise in a log line.
    """
    if url.startswith("data:"):
        return url.split(",", 1)[0] + ",…"
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact_text(text: str, *secrets: str) -> str:
    """``text`` with every URL redacted, every given secret masked, and cut to a loggable length.

    For messages that may echo what we sent (a remote error quoting our URL, an HTML error page).
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _DATA_URL_RE.sub(lambda match: redact_url(match.group(0)), text)
    text = _URL_RE.sub(lambda match: redact_url(match.group(0)), text)
    text = " ".join(text.split())
    if len(text) > _MAX_MESSAGE_CHARS:
        text = text[: _MAX_MESSAGE_CHARS - 1] + "…"
    return text
