"""What the web listener serves, wired from the running service: the page, ``/api/status``, metrics,
health and the retry action; and the token that actions need."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dropscribe.adapters.web_server import RequestError, Routes
from dropscribe.config.model import Settings, WebSettings
from dropscribe.core.errors import ConfigError
from dropscribe.core.ports.claims import ClaimsJournal
from dropscribe.core.ports.clock import Clock
from dropscribe.core.status_view import build_view
from dropscribe.logs import get_logger, register_secret
from dropscribe.service.hosts_view import read_hosts
from dropscribe.service.metrics_registry import ServiceMetrics
from dropscribe.service.status_report import status_document
from dropscribe.service.web_page import render_page

log = get_logger()
MAX_TOKEN_FILE_BYTES = 4096
MAX_RETRY_PATHS = 1000
REFRESH_S = 5

# service.retry.retry_failed; handed in, as that module builds through the composition root
RetryFailed = Callable[[Settings, list[Path] | None], tuple[list[tuple[Path, Path]], list[str]]]


def resolve_web_token(web: WebSettings, env: Mapping[str, str]) -> str | None:
    """The actions' token: ``web.token_env`` when set and not empty, else ``web.token_file``; None
    leaves the page read-only. A token file that is named but unusable is a config error."""
    if web.token_env:
        from_env = env.get(web.token_env, "").strip()
        if from_env:
            return _usable(from_env, f"${web.token_env}")
    if web.token_file is None:
        return None
    try:
        with web.token_file.open("rb") as handle:
            data = handle.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"web.token_file {web.token_file} cannot be read: {exc.strerror or exc}"]) from exc
    try:
        token = data.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        token = ""
    if not token or len(data) > MAX_TOKEN_FILE_BYTES:
        raise ConfigError(
            [f"web.token_file {web.token_file} does not hold a token (it should contain just it)"]
        )
    return _usable(token, str(web.token_file))


def _usable(token: str, origin: str) -> str:
    if any(char.isspace() or not char.isprintable() or not char.isascii() for char in token):
        raise ConfigError([f"the web token in {origin} must be one word of printable ASCII"])
    if len(token) < 16:
        raise ConfigError([f"the web token in {origin} is too short: use at least 16 characters"])
    register_secret(token)
    return token


def retry_request(body: Mapping[str, Any]) -> list[Path] | None:
    """The paths a retry request names, or None for ``{"all": true}``; anything else is refused."""
    unknown = set(body) - {"paths", "all"}
    if unknown:
        raise RequestError(400, f"unknown field(s): {', '.join(sorted(unknown))}; send paths or all")
    if body.get("all") is True and "paths" not in body:
        return None
    if "all" in body:
        raise RequestError(400, 'send either {"all": true} or {"paths": [...]}, not both')
    paths = body.get("paths")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise RequestError(400, '"paths" must be a non-empty list of file paths in a failed/ folder')
    if len(paths) > MAX_RETRY_PATHS:
        raise RequestError(413, f"at most {MAX_RETRY_PATHS} paths per request")
    if not all(os.path.isabs(p) for p in paths):
        raise RequestError(400, "paths must be absolute, as the service sees them (e.g. /srv/failed/a.mp3)")
    return [Path(p) for p in paths]


def make_routes(
    *,
    settings: Callable[[], Settings],
    journal: ClaimsJournal,
    live: Callable[[], Mapping[str, Any]],
    health: Callable[[], tuple[str, ...]],
    metrics: ServiceMetrics,
    clock: Clock,
    token: str | None,
    retry_failed: RetryFailed,
) -> Routes:
    """The listener's routes over the running service (each called on a request thread)."""

    def status() -> dict[str, Any]:
        current = settings()
        document = status_document(journal, live(), current.state.staging_dir, clock.time())
        hosts = read_hosts(current, journal)
        if hosts is not None:  # a shared journal: every host, and the files each one holds
            document["hosts"] = hosts
        return document

    def page() -> str:
        document = status()
        return render_page(
            build_view(document, clock.time(), refresh_s=REFRESH_S), hosts=document.get("hosts")
        )

    def scraped() -> tuple[bytes, str]:
        hosts = read_hosts(settings(), journal)
        if hosts is not None and "problem" not in hosts:  # unread, the last known counts stay
            metrics.hosts_seen(hosts)
        return metrics.exposition()

    def retry(body: Mapping[str, Any]) -> dict[str, Any]:
        paths = retry_request(body)
        moved, problems = retry_failed(settings(), paths)
        log.info("web_retry", moved=len(moved), problems=len(problems))
        return {"moved": [{"from": str(a), "to": str(b)} for a, b in moved], "problems": problems,
                "ok": not problems}  # fmt: skip

    return Routes(page=page, status=status, metrics=scraped, health=health, retry=retry, token=token)
