"""The ``backends`` section: recognition backends by name, and the ``backend`` rules that choose them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from dropscribe.config.kinds import ConvertContext
from dropscribe.config.mapping import convert_mapping
from dropscribe.config.model import (
    DEFAULT_BACKEND,
    BackendSettings,
    DashScopeSettings,
    InboxSettings,
    OpenAIBackendSettings,
    Settings,
)
from dropscribe.config.schema import (
    BACKEND_NAME,
    BACKEND_TYPE_KEY,
    BACKEND_TYPES,
    OPENAI_BACKEND_KEYS,
    Key,
    section,
)
from dropscribe.config.yamlsrc import Node, Problems, YamlMap, YamlScalar, shown
from dropscribe.core.ruleset import RuleSet


def build_backends(
    node: Node | None, problems: Problems, context: ConvertContext, lines: dict[str, int]
) -> dict[str, BackendSettings]:
    """``backends:`` by name; a dashscope-type entry takes the dashscope section's keys."""
    if node is None or (isinstance(node, YamlScalar) and node.value is None):
        return {}
    if not isinstance(node, YamlMap):
        problems.add(node.line, "backends", f"must be a mapping of backend names, got {shown(node)}")
        return {}
    backends: dict[str, BackendSettings] = {}
    for name, entry in node.entries.items():
        where = f"backends.{name}"
        lines[where] = node.key_lines[name]
        if name == DEFAULT_BACKEND:
            problems.add(node.key_lines[name], where, "the dashscope section defines the backend named "
                         "dashscope; give this one another name")  # fmt: skip
            continue
        if re.fullmatch(BACKEND_NAME, name) is None:
            problems.add(node.key_lines[name], where, "a backend name is letters, digits, '.', '_' and '-'")
            continue
        kind = entry.entries.get("type") if isinstance(entry, YamlMap) else None
        type_name = kind.value if isinstance(kind, YamlScalar) else None
        if isinstance(entry, YamlMap) and type_name not in BACKEND_TYPES:
            # without a known type the other keys mean nothing yet: only the type is reported
            written = {"type": kind} if kind is not None else {}
            entry = YamlMap(written, {key: entry.key_lines[key] for key in written}, entry.line)
        keys: tuple[Key, ...] = (BACKEND_TYPE_KEY,)
        if type_name == "dashscope":
            keys = (BACKEND_TYPE_KEY, *section("dashscope").keys)
        elif type_name == "openai":
            keys = OPENAI_BACKEND_KEYS
        values = convert_mapping(entry, keys, where, "backends", problems, context, lines)
        values.pop("type", None)
        if type_name == "dashscope":
            backends[name] = DashScopeSettings(**values)  # type: ignore[arg-type]
        elif type_name == "openai" and "base_url" in values and "model" in values:
            backends[name] = OpenAIBackendSettings(**values)  # type: ignore[arg-type]
    return backends


def check_backend_names(
    settings: Settings, inboxes: Mapping[int, InboxSettings], lines: Mapping[str, int], problems: Problems
) -> None:
    """Every ``backend`` rule names a configured backend; an openai backend can be sent the audio."""
    known = settings.all_backends()
    if settings.storage.type == "dashscope":
        for name, backend in settings.backends.items():
            if isinstance(backend, OpenAIBackendSettings):
                where = f"backends.{name}"
                problems.add(lines.get(where), where, "an openai backend cannot read DashScope's temporary "
                             "oss:// uploads: use storage.type inline or s3")  # fmt: skip
    places = [("defaults", settings.defaults)] + [
        (f"inboxes[{i}]", inbox.rules) for i, inbox in inboxes.items()
    ]
    for where, rules in places:
        for message, key in backend_rule_problems(rules, known):
            path = f"{where}.{key}"
            problems.add(lines.get(path), path, message)


def backend_rule_problems(rules: RuleSet, known: Iterable[str]) -> list[tuple[str, str]]:
    """What is wrong with one level's ``backend`` and ``fallback_backend``: (message, key) pairs."""
    known = set(known)
    found = []
    for key in ("backend", "fallback_backend"):
        name = getattr(rules, key)
        if name is not None and name not in known:
            found.append((unknown_backend_message(name, known), key))
    if rules.fallback_backend is not None and rules.fallback_backend == rules.backend:
        found.append(("must name another backend than backend: a folder cannot fail over to itself",
                      "fallback_backend"))  # fmt: skip
    return found


def unknown_backend_message(name: str, known: Iterable[str]) -> str:
    """The error for a ``backend`` rule that names no configured backend."""
    configured = ", ".join(sorted(known))
    return f"{name!r} is not a configured backend (configured: {configured}); define it under backends"
