"""Per-folder rule files (``asr-rules.yaml``): from a rule file's bytes to the rule set it writes.

Reading the file from the share, and keeping the rules current while the service runs, are the
service's (``dropscribe.service.settings_files`` and ``dropscribe.service.rule_cache``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dropscribe.config.context import ContextSource
from dropscribe.config.kinds import ContextReader, ConvertContext, FileSignature, resolve_path
from dropscribe.config.mapping import convert_mapping
from dropscribe.config.schema import RULE_KEYS
from dropscribe.config.validate import check_fetchable, make_rule_set
from dropscribe.config.yamlsrc import Problems, YamlMap, YamlScalar, parse_yaml_bytes, shown
from dropscribe.core.ruleset import RuleSet


@dataclass(frozen=True)
class ParsedRuleFile:
    """A rule file as understood: its rules, its problems (none when usable), and its context file."""

    rules: RuleSet
    messages: list[str]
    context_file: Path | None  # named by the file, even when the file is otherwise invalid
    context_signature: FileSignature | None  # None when the context file was not read

    @classmethod
    def without_rules(cls, problems: Problems) -> ParsedRuleFile:
        """A rule file that sets nothing: empty, or unusable as a whole (``problems`` says why)."""
        return cls(RuleSet(), problems.messages(), None, None)


def parse_rule_file_bytes(
    data: bytes,
    path: Path,
    inbox_root: Path,
    problems: Problems,
    *,
    read_context: ContextReader,
    filetrans_available: bool,
) -> ParsedRuleFile:
    """The rules written in ``data``, the content of the rule file ``path`` inside ``inbox_root``.

    An empty file is an empty rule set. ``filetrans_available`` is False when the service stores
    audio inline, which cannot feed the file-transcription model. A context file it names is read
    through ``read_context``, confined to the inbox.
    """
    node = parse_yaml_bytes(data, problems)
    if node is None:
        return ParsedRuleFile.without_rules(problems)
    if not isinstance(node, YamlMap):
        names = ", ".join(key.name for key in RULE_KEYS)
        problems.add(node.line, "", f"must be a mapping of rule keys ({names}), got {shown(node)}")
        return ParsedRuleFile.without_rules(problems)

    context = ConvertContext(base_dir=path.parent, env={}, read_context=read_context, confine_to=inbox_root)
    lines: dict[str, int] = {}
    values = convert_mapping(node, RULE_KEYS, "", "rules", problems, context, lines)
    rules = make_rule_set(values, "", lines, problems)
    check_fetchable(rules, "", lines, problems, inline=not filetrans_available)

    source = values.get("context_file")
    if isinstance(source, ContextSource):
        return ParsedRuleFile(rules, problems.messages(), source.path, source.signature)
    # a context file that is missing or unreadable is still this file's: watch it, and never take
    # it for a recording
    written = node.entries.get("context_file")
    named = None
    if isinstance(written, YamlScalar) and isinstance(written.value, str) and written.value:
        named = resolve_path(path.parent, written.value)
    return ParsedRuleFile(rules, problems.messages(), named, None)
