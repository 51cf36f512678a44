"""What the ``notify`` keys accept: Apprise URLs, the webhook with where its secret is, event names.

An Apprise URL is checked by Apprise itself (it knows its hundred-odd services; this project does
not), without sending anything. URLs carry passwords and tokens, so a message about one shows its
scheme only.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from dropscribe.config.kinds import ConvertContext, CredentialPath, InvalidValueError, Text, Url
from dropscribe.config.model import WebhookSettings
from dropscribe.config.yamlsrc import Node, YamlList, YamlMap, YamlScalar, shown
from dropscribe.core.outbox import EVENTS

_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


def _scheme(text: str) -> str:
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    return f"{match.group(1)}://…" if match else "a value that is not a URL"


def apprise_accepts(url: str) -> bool:
    """Whether Apprise can build a notification service from ``url`` (nothing is sent)."""
    import apprise  # loads its plugins on first use; only configs that name URLs pay for it

    quiet = logging.getLogger("apprise")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # its own complaint would print the URL, password and all
    try:
        return apprise.Apprise.instantiate(url, suppress_exceptions=True) is not None
    finally:
        quiet.setLevel(level)


@dataclass(frozen=True)
class AppriseUrls:
    def describe(self) -> str:
        return "a list of Apprise URLs (mailto://, ntfy://, tgram://, json://, …)"

    def convert(self, node: Node, context: ConvertContext) -> object:
        if not isinstance(node, YamlList):
            raise InvalidValueError(f"must be {self.describe()}, got {shown(node)}")
        urls: list[str] = []
        for index, item in enumerate(node.items):
            text = item.value if isinstance(item, YamlScalar) and isinstance(item.value, str) else None
            if not text or not apprise_accepts(text):
                where = _scheme(text) if text else shown(item)
                raise InvalidValueError(
                    f"item {index + 1} ({where}) is not a URL Apprise can use: check the service's "
                    "URL form in the Apprise documentation",
                    item.line,
                )
            urls.append(text)
        return tuple(urls)


@dataclass(frozen=True)
class EventNames:
    def describe(self) -> str:
        return "a list of events from " + ", ".join(EVENTS)

    def convert(self, node: Node, context: ConvertContext) -> object:
        if not isinstance(node, YamlList):
            raise InvalidValueError(f"must be {self.describe()}, got {shown(node)}")
        events: list[str] = []
        for item in node.items:
            text = item.text if isinstance(item, YamlScalar) else None
            if text not in EVENTS:
                raise InvalidValueError(
                    f"{shown(item)} is not an event; known: {', '.join(EVENTS)}", item.line
                )
            if text not in events:
                events.append(text)
        return tuple(events)


@dataclass(frozen=True)
class Webhook:
    def describe(self) -> str:
        return "a mapping with url and secret_env or secret_file"

    def convert(self, node: Node, context: ConvertContext) -> object:
        if not isinstance(node, YamlMap):
            raise InvalidValueError(f"must be {self.describe()}, got {shown(node)}")
        known = ("url", "secret_env", "secret_file")
        for name in node.entries:
            if name not in known:
                hint = " (the secret never lives in the YAML file)" if name == "secret" else ""
                raise InvalidValueError(
                    f"unknown key {name!r}{hint}; a webhook has {', '.join(known)}", node.key_lines[name]
                )
        if "url" not in node.entries:
            raise InvalidValueError("needs url: where to POST the notifications", node.line)
        url = self._value(node, "url", Url(), context)
        secret_env = self._value(node, "secret_env", Text("an environment variable name", _ENV_NAME), context)
        secret_file = self._value(node, "secret_file", CredentialPath(), context)
        if (secret_env is None) == (secret_file is None):
            raise InvalidValueError(
                "needs exactly one of secret_env or secret_file: the requests are signed with that secret",
                node.line,
            )
        assert isinstance(url, str)
        assert secret_env is None or isinstance(secret_env, str)
        assert secret_file is None or isinstance(secret_file, Path)
        return WebhookSettings(url=url, secret_env=secret_env, secret_file=secret_file)

    @staticmethod
    def _value(
        node: YamlMap, name: str, kind: Url | Text | CredentialPath, context: ConvertContext
    ) -> object:
        child = node.entries.get(name)
        if child is None or (isinstance(child, YamlScalar) and child.value is None):
            return None
        try:
            return kind.convert(child, context)
        except InvalidValueError as exc:
            raise InvalidValueError(f"{name} {exc.message}", exc.line or node.key_lines[name]) from exc
