"""YAML parsed into a small tree that remembers line numbers, so every message can name the line to fix.

``yaml.safe_load`` forgets where values came from; here the document is composed with the safe loader
and walked once. Scalars are resolved exactly as ``safe_load`` would, and also keep the text as
written, because a key that wants text must get ``no`` (Norwegian) rather than YAML 1.1's ``False``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

# Aliases let a tiny file expand exponentially ("billion laughs"); rule files are written by whoever
# can reach the share, so the walk stops well before that hurts.
MAX_NODES = 20_000


@dataclass(frozen=True)
class YamlScalar:
    value: object  # as safe_load resolves it: str, int, float, bool, None, date...
    text: str  # as written in the file
    line: int


@dataclass(frozen=True)
class YamlList:
    items: tuple[Node, ...]
    line: int


@dataclass(frozen=True)
class YamlMap:
    entries: dict[str, Node]
    key_lines: dict[str, int]
    line: int


Node = YamlScalar | YamlList | YamlMap


@dataclass(frozen=True)
class Problem:
    line: int | None
    where: str
    message: str


@dataclass
class Problems:
    """Every problem found in one file, rendered as ``file:line: where: message``."""

    file: Path
    items: list[Problem] = field(default_factory=list)

    def add(self, line: int | None, where: str, message: str) -> None:
        self.items.append(Problem(line, where, message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def messages(self) -> list[str]:
        # sorted by line (stable), so the list reads top to bottom like the file
        ordered = sorted(self.items, key=lambda problem: problem.line or 0)
        return [self.render(problem) for problem in ordered]

    def render(self, problem: Problem) -> str:
        place = f"{self.file}:{problem.line}" if problem.line is not None else f"{self.file}"
        if problem.where:
            return f"{place}: {problem.where}: {problem.message}"
        return f"{place}: {problem.message}"


def shown(node: Node) -> str:
    """A value as a message quotes it: ``'abc'``, ``5``, ``true``, ``null``, ``a list``."""
    if isinstance(node, YamlList):
        return "a list"
    if isinstance(node, YamlMap):
        return "a mapping"
    value = node.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return node.text
    text = node.text if len(node.text) <= 60 else node.text[:57] + "..."
    return repr(text)


def parse_yaml_bytes(data: bytes, problems: Problems) -> Node | None:
    """The document in ``data`` (a file's bytes) as a tree, or None when it is empty or unusable (see
    ``problems``)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problems.add(line, "", "not UTF-8 text")
        return None
    return parse_yaml(text, problems)


def parse_yaml(text: str, problems: Problems) -> Node | None:
    """Like :func:`parse_yaml_bytes` for text already decoded."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = exc.problem or exc.context or "cannot parse"
        problems.add(mark.line + 1 if mark else None, "", f"YAML syntax error: {detail}")
        return None
    except yaml.YAMLError as exc:
        problems.add(None, "", f"YAML syntax error: {exc}")
        return None
    finally:
        loader.dispose()
    if root is None:
        return None
    return _Walker(problems).walk(root, "")


class _Walker:
    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.constructor = SafeConstructor()
        self.count = 0
        self.active: set[int] = set()
        self.flattened: set[int] = set()
        self.too_big = False

    def walk(self, node: yaml.Node, where: str) -> Node | None:
        self.count += 1
        if self.count > MAX_NODES:
            if not self.too_big:
                self.too_big = True
                self.problems.add(node.start_mark.line + 1, where, "document too large or nested")
            return None
        line = node.start_mark.line + 1
        if id(node) in self.active:
            self.problems.add(line, where, "an alias refers to itself")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.ScalarNode):
                return self._scalar(node, where, line)
            if isinstance(node, yaml.SequenceNode):
                items = []
                for index, child in enumerate(node.value):
                    item = self.walk(child, f"{where}[{index}]")
                    if item is not None:
                        items.append(item)
                return YamlList(tuple(items), line)
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, where, line)
            return None
        finally:
            self.active.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode, where: str, line: int) -> YamlScalar | None:
        try:
            value = self.constructor.construct_object(node)
        except ConstructorError as exc:
            self.problems.add(line, where, f"cannot read value: {exc.problem}")
            return None
        return YamlScalar(value, str(node.value), line)

    def _mapping(self, node: yaml.MappingNode, where: str, line: int) -> YamlMap | None:
        # duplicates are looked for among the keys written here; keys brought in by a merge (<<) may
        # be overridden on purpose, which is what merges are for
        seen: dict[str, int] = {}
        # an anchored mapping is walked once per alias, but flattened (merges resolved) only once
        already_flattened = id(node) in self.flattened
        self.flattened.add(id(node))
        for key_node, _ in [] if already_flattened else node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                name = str(key_node.value)
                key_line = key_node.start_mark.line + 1
                if name in seen:
                    self.problems.add(
                        key_line, _join(where, name), f"duplicate key (first on line {seen[name]})"
                    )
                seen.setdefault(name, key_line)
        try:
            self.constructor.flatten_mapping(node)
        except ConstructorError as exc:
            self.problems.add(line, where, f"cannot merge: {exc.problem}")
            return None
        entries: dict[str, Node] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or not isinstance(self._plain_value(key_node), str):
                self.problems.add(key_line, where, "keys must be text")
                continue
            name = str(key_node.value)
            value = self.walk(value_node, _join(where, name))
            if value is None:
                continue
            # a mapping value is reported at its key's line: that is the line a reader looks for
            entries[name] = _at_line(value, key_line)
            key_lines[name] = key_line
        return YamlMap(entries, key_lines, line)

    def _plain_value(self, node: yaml.ScalarNode) -> object:
        try:
            return self.constructor.construct_object(node)
        except ConstructorError:
            return None


def _at_line(node: Node, line: int) -> Node:
    if isinstance(node, YamlScalar):
        return YamlScalar(node.value, node.text, line)
    if isinstance(node, YamlList):
        return YamlList(node.items, line)
    return YamlMap(node.entries, node.key_lines, line)


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
