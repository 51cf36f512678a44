"""The notifier port: conditions an operator should hear about (the queue paused, a disk full, a share gone).

The service names the event and its fields; an implementation decides where it goes. The one wired
today writes it to the structured log; a webhook or chat notification plugs in beside it.
"""

from __future__ import annotations

from typing import Any, Protocol


class Notifier(Protocol):
    def notify(self, event: str, **fields: Any) -> None:
        """Tell about ``event``; must not raise and must not block the caller for long."""
        ...
