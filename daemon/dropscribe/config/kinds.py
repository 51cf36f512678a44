"""The validation framework: what a key may hold (its kind), and how a YAML value becomes a setting.

Each kind says what it accepts (for messages and the reference) and converts a node or raises
:class:`InvalidValueError`. Kinds never read files; the one that needs a file's content
(``context_file``, in ``context.py``) asks the reader its :class:`ConvertContext` carries.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dropscribe.config.model import LANGUAGES
from dropscribe.config.yamlsrc import Node, YamlList, YamlScalar, shown
from dropscribe.core.rules import AUTO_LANGUAGE, KNOWN_MODELS_TEXT, is_known_model
from dropscribe.core.ruleset import OUTPUT_KINDS

FileSignature = tuple[int, int, int, int]
"""(mtime_ns, size, inode, ctime_ns): when any of these changed, the file must be read again."""


@dataclass(frozen=True)
class FileBytes:
    """A support file as read: its bytes, and the signature of the very descriptor they came from."""

    data: bytes
    signature: FileSignature


class ContextReader(Protocol):
    def __call__(self, path: Path, confine_to: Path | None) -> FileBytes:
        """The bytes of the context file ``path``; when ``confine_to`` is set, reached without leaving
        that folder. Raise :class:`InvalidValueError` saying why it cannot be read."""
        ...


class InvalidValueError(Exception):
    """Raised by a kind when a value does not fit; the message completes ``<key>: ...``."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class ConvertContext:
    """What a value needs besides itself: where relative paths start, the environment, how to read a
    context file, and, for rule files, the inbox a context file must stay inside."""

    base_dir: Path
    env: Mapping[str, str]
    read_context: ContextReader
    confine_to: Path | None = None


class Kind(Protocol):
    def describe(self) -> str:
        """What the key accepts, phrased to follow "must be"."""
        ...

    def convert(self, node: Node, context: ConvertContext) -> object:
        """The value for the settings, or raise :class:`InvalidValueError`."""
        ...


def _must(kind: Kind, node: Node) -> InvalidValueError:
    return InvalidValueError(f"must be {kind.describe()}, got {shown(node)}")


def _text_of(kind: Kind, node: Node) -> str:
    # keys that want text take it as written, so `language: no` is Norwegian and `prefix: 2024` is "2024"
    if not isinstance(node, YamlScalar) or node.value is None:
        raise _must(kind, node)
    if isinstance(node.value, str):
        return node.value
    return node.text


def number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Boolean:
    def describe(self) -> str:
        return "true or false"

    def convert(self, node: Node, context: ConvertContext) -> object:
        if isinstance(node, YamlScalar) and isinstance(node.value, bool):
            return node.value
        raise _must(self, node)


@dataclass(frozen=True)
class Number:
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    whole: bool = False

    def describe(self) -> str:
        bounds = []
        if self.minimum is not None:
            sign = ">" if self.exclusive_minimum else "≥"
            bounds.append(f"{sign} {number_text(self.minimum)}")
        if self.maximum is not None:
            bounds.append(f"≤ {number_text(self.maximum)}")
        noun = "a whole number" if self.whole else "a number"
        return " ".join([noun, " and ".join(bounds)]) if bounds else noun

    def convert(self, node: Node, context: ConvertContext) -> object:
        value = node.value if isinstance(node, YamlScalar) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _must(self, node)
        if not math.isfinite(value) or (self.whole and not isinstance(value, int)):
            raise _must(self, node)
        if self.minimum is not None and (
            value < self.minimum or (self.exclusive_minimum and value == self.minimum)
        ):
            raise _must(self, node)
        if self.maximum is not None and value > self.maximum:
            raise _must(self, node)
        return int(value) if self.whole else float(value)


@dataclass(frozen=True)
class Text:
    what: str = "text"
    pattern: str | None = None
    allow_empty: bool = False

    def describe(self) -> str:
        return self.what

    def convert(self, node: Node, context: ConvertContext) -> object:
        text = _text_of(self, node)
        if not text and not self.allow_empty:
            raise InvalidValueError(f"must be {self.describe()}, got an empty string")
        if self.pattern is not None and text and re.fullmatch(self.pattern, text) is None:
            raise _must(self, node)
        return text


@dataclass(frozen=True)
class Choice:
    values: tuple[str, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(self.values)

    def convert(self, node: Node, context: ConvertContext) -> object:
        text = _text_of(self, node)
        if text not in self.values:
            raise _must(self, node)
        return text


@dataclass(frozen=True)
class Polling:
    def describe(self) -> str:
        return "true, false or auto"

    def convert(self, node: Node, context: ConvertContext) -> object:
        if isinstance(node, YamlScalar) and isinstance(node.value, bool):
            return node.value
        if isinstance(node, YamlScalar) and node.value == "auto":
            return "auto"
        raise _must(self, node)


@dataclass(frozen=True)
class Language:
    def describe(self) -> str:
        return f"{AUTO_LANGUAGE} or a language code ({', '.join(LANGUAGES)})"

    def convert(self, node: Node, context: ConvertContext) -> object:
        text = _text_of(self, node)
        if text != AUTO_LANGUAGE and text not in LANGUAGES:
            raise _must(self, node)
        return text


@dataclass(frozen=True)
class ModelName:
    def describe(self) -> str:
        return f"a known model ({KNOWN_MODELS_TEXT})"

    def convert(self, node: Node, context: ConvertContext) -> object:
        text = _text_of(self, node)
        if not is_known_model(text):
            raise _must(self, node)
        return text


@dataclass(frozen=True)
class Url:
    def describe(self) -> str:
        return "an http:// or https:// URL"

    def convert(self, node: Node, context: ConvertContext) -> object:
        text = _text_of(self, node)
        if re.fullmatch(r"https?://[^\s/?#]+(/\S*)?", text) is None:
            raise _must(self, node)
        return text.rstrip("/")


@dataclass(frozen=True)
class Listen:
    def describe(self) -> str:
        return "HOST:PORT (for example 127.0.0.1:9108 or [::1]:9108)"

    def convert(self, node: Node, context: ConvertContext) -> object:
        text = _text_of(self, node)
        match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]*):(\d{1,5})", text)
        if match is None or not 1 <= int(match.group(2)) <= 65535:
            raise _must(self, node)
        return text


def resolve_path(base_dir: Path, text: str) -> Path:
    """``text`` as an absolute, normalised path; relative ones start at ``base_dir``.

    Normalised by text, not by resolving links: a share's mount point stays as the admin wrote it.
    """
    return Path(os.path.normpath(base_dir / os.path.expanduser(text)))


@dataclass(frozen=True)
class PathKind:
    def describe(self) -> str:
        return "a path"

    def convert(self, node: Node, context: ConvertContext) -> object:
        return resolve_path(context.base_dir, str(Text(self.describe()).convert(node, context)))


@dataclass(frozen=True)
class CredentialPath:
    """A file holding a secret; a bare name is looked up in ``$CREDENTIALS_DIRECTORY`` when systemd set
    it (``LoadCredential=``), so the same config works under systemd and from a shell."""

    def describe(self) -> str:
        return "a path, or a bare credential name under $CREDENTIALS_DIRECTORY"

    def convert(self, node: Node, context: ConvertContext) -> object:
        text = str(Text(self.describe()).convert(node, context))
        credentials = context.env.get("CREDENTIALS_DIRECTORY")
        if credentials and "/" not in text:
            return Path(credentials) / text
        return resolve_path(context.base_dir, text)


@dataclass(frozen=True)
class FileName:
    def describe(self) -> str:
        return "a file name without a folder"

    def convert(self, node: Node, context: ConvertContext) -> object:
        text = _text_of(self, node)
        if not text or "/" in text or "\\" in text or text in {".", ".."}:
            raise _must(self, node)
        return text


class FileMode:
    def describe(self) -> str:
        return 'permission bits in octal, e.g. "0644"'

    def convert(self, node: Node, context: ConvertContext) -> object:
        if not isinstance(node, YamlScalar) or isinstance(node.value, bool):
            raise _must(self, node)
        # YAML 1.1 reads an unquoted 0644 as octal already; the raw text says what was meant either way
        text = node.text.strip().strip("'\"").removeprefix("0o")
        if not text or any(char not in "01234567" for char in text):
            raise _must(self, node)
        mode = int(text, 8)
        if mode > 0o777:
            raise _must(self, node)
        if mode & 0o111:
            raise InvalidValueError(f"{text} gives execute permission; transcripts are not programs")
        return mode


@dataclass(frozen=True)
class Patterns:
    def describe(self) -> str:
        return "a list of glob patterns"

    def convert(self, node: Node, context: ConvertContext) -> object:
        if not isinstance(node, YamlList):
            raise _must(self, node)
        patterns = []
        for item in node.items:
            if not isinstance(item, YamlScalar) or item.value is None or not item.text:
                raise InvalidValueError(f"{shown(item)} is not a glob pattern", item.line)
            patterns.append(item.value if isinstance(item.value, str) else item.text)
        return tuple(patterns)


@dataclass(frozen=True)
class Outputs:
    def describe(self) -> str:
        return "a non-empty list of " + ", ".join(OUTPUT_KINDS)

    def convert(self, node: Node, context: ConvertContext) -> object:
        if not isinstance(node, YamlList) or not node.items:
            raise _must(self, node)
        kinds: list[str] = []
        for item in node.items:
            text = item.text if isinstance(item, YamlScalar) else None
            if text not in OUTPUT_KINDS:
                choices = ", ".join(OUTPUT_KINDS)
                raise InvalidValueError(f"{shown(item)} is not one of {choices}", item.line)
            if text not in kinds:
                kinds.append(text)
        return tuple(kinds)
