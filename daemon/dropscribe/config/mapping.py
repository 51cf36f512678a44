"""One YAML mapping checked against a table of keys: known keys converted, the rest reported with a hint."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from dropscribe.config.kinds import ConvertContext, InvalidValueError
from dropscribe.config.schema import UNKNOWN_KEY_HINTS, Key
from dropscribe.config.yamlsrc import Node, Problems, YamlMap, YamlScalar, shown


def unknown_key_message(section_name: str, name: str, known: Sequence[str]) -> str:
    """``unknown key``, with a hint when the mistake is a common one or a near miss."""
    hint = UNKNOWN_KEY_HINTS.get((section_name, name))
    if hint is not None:
        return f"unknown key ({hint})"
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"unknown key (did you mean {close[0]}?)"
    return "unknown key"


def convert_mapping(
    node: Node | None,
    keys: Sequence[Key],
    where: str,
    section_name: str,
    problems: Problems,
    context: ConvertContext,
    lines: dict[str, int],
) -> dict[str, object]:
    """The valid keys of ``node`` converted; every other key, and every bad value, is a problem.

    ``lines`` receives the line of each key seen, under its dotted name, for later cross-checks.
    """
    if node is None:
        return {}
    if isinstance(node, YamlScalar) and node.value is None:
        # `metrics:` with nothing under it reads as an empty section, which is what was meant
        node = YamlMap({}, {}, node.line)
    if not isinstance(node, YamlMap):
        problems.add(node.line, where, f"must be a mapping of keys, got {shown(node)}")
        return {}
    known = {key.name: key for key in keys}
    values: dict[str, object] = {}
    for name, child in node.entries.items():
        path = f"{where}.{name}" if where else name
        key_line = node.key_lines[name]
        lines[path] = key_line
        key = known.get(name)
        if key is None:
            problems.add(key_line, path, unknown_key_message(section_name, name, list(known)))
            continue
        if isinstance(child, YamlScalar) and child.value is None:
            if key.nullable:
                values[name] = None
            else:
                problems.add(key_line, path, f"must be {key.kind.describe()}, got null")
            continue
        try:
            values[name] = key.kind.convert(child, context)
        except InvalidValueError as exc:
            problems.add(exc.line or key_line, path, exc.message)
    for key in keys:
        if key.required and key.name not in node.entries:
            path = f"{where}.{key.name}" if where else key.name
            problems.add(node.line, path, f"required ({key.description.rstrip('.').lower()})")
    return values
