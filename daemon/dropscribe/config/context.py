"""The two ways to give recognition its context: inline text, or a text file whose content is the text.

A context file is read through the reader the caller puts in :class:`ConvertContext`; this module
decides only what the bytes must be (UTF-8, within the API's token limit) and where the file may lie.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dropscribe.config.kinds import (
    ConvertContext,
    FileSignature,
    InvalidValueError,
    Text,
    resolve_path,
)
from dropscribe.config.yamlsrc import Node
from dropscribe.core.rules import MAX_CONTEXT_TOKENS, approx_tokens


def _check_context(text: str) -> str:
    tokens = approx_tokens(text)
    if tokens > MAX_CONTEXT_TOKENS:
        limit = f"{MAX_CONTEXT_TOKENS:,}"
        raise InvalidValueError(f"is about {tokens:,} tokens long; the API takes at most {limit}")
    return text


@dataclass(frozen=True)
class ContextText:
    def describe(self) -> str:
        return f"text of at most {MAX_CONTEXT_TOKENS:,} tokens"

    def convert(self, node: Node, context: ConvertContext) -> object:
        return _check_context(str(Text(self.describe(), allow_empty=True).convert(node, context)).strip())


@dataclass(frozen=True)
class ContextSource:
    """A context file as read: the cascade carries the text, the path marks a support file, and the
    signature (taken before reading) tells when to read it again."""

    path: Path
    text: str
    signature: FileSignature


@dataclass(frozen=True)
class ContextFile:
    def describe(self) -> str:
        return "the path of a UTF-8 text file"

    def convert(self, node: Node, context: ConvertContext) -> object:
        text = str(Text(self.describe()).convert(node, context))
        root = context.confine_to
        if root is not None and os.path.isabs(os.path.expanduser(text)):
            raise InvalidValueError("must be a path relative to this rule file")
        path = resolve_path(context.base_dir, text)
        if root is not None and not _is_within(path, root):
            raise InvalidValueError(f"must stay inside the inbox ({text!r} leads out of {root})")
        contents = context.read_context(path, root)
        try:
            content = contents.data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidValueError(f"{path} is not UTF-8 text") from exc
        try:
            return ContextSource(path, _check_context(content.strip()), contents.signature)
        except InvalidValueError as exc:
            raise InvalidValueError(f"{path} {exc.message}") from exc


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
