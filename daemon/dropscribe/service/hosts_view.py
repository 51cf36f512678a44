"""The hosts sharing the journal, read once for ``status``, ``explain``, the web page and metrics.

Only a journal named by ``state.url`` is shared: a SQLite journal belongs to one process, and its
claims table says nothing the lock file does not. What the rows mean is decided in
:mod:`dropscribe.core.hosts_view`.
"""

from __future__ import annotations

from typing import Any

from dropscribe.config.model import Settings
from dropscribe.core.errors import StateFullError
from dropscribe.core.hosts_view import SEEN_WITHIN_S, hosts_view
from dropscribe.core.ports.claims import ClaimsJournal


def read_hosts(settings: Settings, journal: ClaimsJournal) -> dict[str, Any] | None:
    """The hosts view of a shared journal; None without ``state.url``.

    If the database cannot answer, the view says so (``problem``) instead of failing the page or the
    command that asked: the rest of the status is worth showing all the same.
    """
    if settings.state.url is None:
        return None
    lease_s = settings.state.lease_s
    try:
        return hosts_view(journal.hosts(within_s=SEEN_WITHIN_S), journal.claims(), lease_s)
    except StateFullError as exc:
        view = hosts_view((), (), lease_s)
        view["problem"] = f"the hosts could not be read: {exc}"
        return view
