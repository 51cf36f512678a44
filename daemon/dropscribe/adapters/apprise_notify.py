"""Messages to people through Apprise: e-mail, ntfy, Telegram, chat webhooks and the rest it knows.

Apprise owns the transports; this adapter only hands it a title and a body. Its URLs carry passwords
and tokens, so nothing here logs them; Apprise's own log lines print them masked.
"""

from __future__ import annotations

from collections.abc import Sequence


class AppriseError(Exception):
    """Apprise could not hand the message to every service; try again later."""


class AppriseSender:
    def __init__(self, urls: Sequence[str]) -> None:
        import apprise  # loading its plugins takes a moment: only a service that notifies people pays

        self._apprise = apprise.Apprise()
        for url in urls:
            if not self._apprise.add(url):
                raise ValueError(
                    "an Apprise URL could not be loaded (the config check accepts only loadable ones)"
                )

    def send(self, title: str, body: str) -> None:
        """Hand the message to every configured service; raises :class:`AppriseError` if any refused."""
        if not self._apprise.notify(body=body, title=title):
            raise AppriseError(f"Apprise could not deliver to all of {len(self._apprise)} service(s)")
