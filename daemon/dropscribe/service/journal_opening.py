"""Which journal a configuration names, opened: SQLite at ``state.path``, or PostgreSQL at ``state.url``
(its driver loaded only then, its password registered as a secret before anything can log it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from dropscribe.adapters.journal import SqliteJournal
from dropscribe.config.model import Settings
from dropscribe.core.errors import ConfigError
from dropscribe.core.ports.claims import ClaimsJournal
from dropscribe.logs import register_secret

__all__ = ["journal_label", "journal_present", "open_journal"]


def open_journal(settings: Settings, env: Mapping[str, str] | None = None) -> ClaimsJournal:
    """The journal the config names: PostgreSQL for ``state.url``, else SQLite at ``state.path``."""
    state = settings.state
    if state.url is None:
        return SqliteJournal(state.path)
    # only here: a service on SQLite never needs the driver installed
    from dropscribe.adapters.journal.postgres import PostgresJournal

    register_secret(state.url)
    in_url = urlsplit(state.url).password
    if in_url:
        register_secret(unquote(in_url))
    password = None
    if state.password_env is not None:
        password = (os.environ if env is None else env).get(state.password_env)
        if not password:
            raise ConfigError([f"state.password_env: the environment variable {state.password_env} is empty"
                               " or not set"])  # fmt: skip
        register_secret(password)
    return PostgresJournal(state.url, password=password)


def journal_present(settings: Settings) -> bool:
    """Whether there is a journal to read: a database always is; a SQLite file once the service ran."""
    return settings.state.url is not None or settings.state.path.exists()


def journal_label(settings: Settings) -> str:
    """Where the journal is, for messages: the SQLite file, or the database without user or password."""
    if settings.state.url is None:
        return str(settings.state.path)
    url = urlsplit(settings.state.url)
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.hostname or 'localhost'}{port}{url.path}"
