"""From a YAML tree to :class:`Settings`: every key checked against the schema table, then the checks
that span several keys (folders that would feed themselves, storage that cannot reach the chosen model).

Nothing stops at the first problem: each one is added to a :class:`Problems` and the caller raises
them all together, so a config is fixed in one round.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from dropscribe.config.backends import build_backends, check_backend_names
from dropscribe.config.context import ContextSource
from dropscribe.config.kinds import ContextReader, ConvertContext
from dropscribe.config.mapping import convert_mapping, unknown_key_message
from dropscribe.config.model import (
    DashScopeSettings,
    InboxSettings,
    LoggingSettings,
    MetricsSettings,
    NotifySettings,
    Settings,
    StateSettings,
    StorageSettings,
    WebSettings,
)
from dropscribe.config.schema import (
    RULE_KEYS,
    SECTIONS,
    section,
)
from dropscribe.config.yamlsrc import Node, Problems, YamlList, YamlMap, shown
from dropscribe.core.budget import DEFAULTS_SCOPE, BudgetLimit, inbox_scope
from dropscribe.core.rules import is_filetrans_model
from dropscribe.core.ruleset import RuleSet

RULE_NAMES = frozenset(key.name for key in RULE_KEYS)


def make_rule_set(
    values: Mapping[str, object], where: str, lines: Mapping[str, int], problems: Problems
) -> RuleSet:
    """A rule set from converted rule keys; a context file's text goes into ``context``."""
    chosen = {name: value for name, value in values.items() if name in RULE_NAMES}
    limit = chosen.get("budget")
    if isinstance(limit, BudgetLimit):
        # a budget is named by where it is written (a rule file's is named by its kind already)
        inbox = values.get("path")
        if where == "defaults":
            limit = limit.scoped(DEFAULTS_SCOPE)
        elif where.startswith("inboxes") and isinstance(inbox, Path):
            limit = limit.scoped(inbox_scope(str(inbox)))
        chosen["budget"] = (limit,)
    source = chosen.pop("context_file", None)
    if isinstance(source, ContextSource):
        if chosen.get("context") is not None:
            path = f"{where}.context_file" if where else "context_file"
            problems.add(lines.get(path), path, "set context or context_file, not both")
        chosen["context_file"] = source.path
        chosen["context"] = source.text
    return RuleSet(**chosen)  # type: ignore[arg-type]  # values were checked against the schema


def check_fetchable(
    rules: RuleSet, where: str, lines: Mapping[str, int], problems: Problems, *, inline: bool
) -> None:
    """File transcription fetches audio from a URL, which inline storage cannot provide."""
    if not inline:
        return
    for name in ("long_audio", "model"):
        value = getattr(rules, name)
        # covers long_audio: filetrans as well as the qwen3-asr-flash-filetrans models
        if isinstance(value, str) and is_filetrans_model(value):
            path = f"{where}.{name}" if where else name
            problems.add(
                lines.get(path),
                path,
                f"{value} needs storage.type s3 or dashscope: the file-transcription API fetches the "
                "audio from a URL, and inline storage has none",
            )


@dataclass(frozen=True)
class Draft:
    """Whatever of a config could be built, problems or not: enough for the checks on the disk."""

    settings: Settings  # keys in error hold their defaults
    inboxes: Mapping[int, InboxSettings]  # by position in the list; entries without a usable path left out
    lines: dict[str, int]  # the line of every key seen, by dotted name


def build_settings(
    root: Node | None,
    *,
    source: Path,
    env: Mapping[str, str],
    problems: Problems,
    read_context: ContextReader,
) -> tuple[Settings | None, dict[str, int]]:
    """Settings from the whole document, or None when any problem was found.

    ``source`` is the absolute path of the config file; relative paths start at its folder. A
    ``context_file`` is read through ``read_context``.
    Also returns the line of every key seen, by dotted name.
    """
    draft = draft_settings(root, source=source, env=env, problems=problems, read_context=read_context)
    if draft is None:
        return None, {}
    return (None if problems else draft.settings), draft.lines


def draft_settings(
    root: Node | None,
    *,
    source: Path,
    env: Mapping[str, str],
    problems: Problems,
    read_context: ContextReader,
) -> Draft | None:
    """Like :func:`build_settings`, but what was built is returned even when ``problems`` has some;
    None only when the document is not a mapping at all."""
    lines: dict[str, int] = {}
    if root is None:
        problems.add(None, "", "the file is empty: it needs at least an inboxes list")
        return None
    names = [part.name for part in SECTIONS]
    if not isinstance(root, YamlMap):
        problems.add(root.line, "", f"must be a mapping with {', '.join(names)}, got {shown(root)}")
        return None
    for name, line in root.key_lines.items():
        lines[name] = line
        if name not in names:
            problems.add(line, name, unknown_key_message("", name, names))

    context = ConvertContext(base_dir=source.parent, env=env, read_context=read_context)

    def convert(name: str) -> dict[str, object]:
        keys = section(name).keys
        return convert_mapping(root.entries.get(name), keys, name, name, problems, context, lines)

    dashscope = DashScopeSettings(**convert("dashscope"))  # type: ignore[arg-type]
    storage = StorageSettings(**convert("storage"))  # type: ignore[arg-type]
    state = StateSettings(**convert("state"))  # type: ignore[arg-type]
    logging = LoggingSettings(**convert("logging"))  # type: ignore[arg-type]
    metrics = MetricsSettings(**convert("metrics"))  # type: ignore[arg-type]
    notify = NotifySettings(**convert("notify"))  # type: ignore[arg-type]
    web = WebSettings(**convert("web"))  # type: ignore[arg-type]
    default_values = convert("defaults")
    defaults = make_rule_set(default_values, "defaults", lines, problems)
    inboxes = _build_inboxes(root.entries.get("inboxes"), root, problems, context, lines)
    backends = build_backends(root.entries.get("backends"), problems, context, lines)

    settings = Settings(
        dashscope=dashscope,
        storage=storage,
        state=state,
        inboxes=tuple(inboxes.values()),
        defaults=defaults,
        logging=logging,
        metrics=metrics,
        notify=notify,
        web=web,
        source=source,
        backends=backends,
        budget_timezone=str(default_values.get("budget_timezone") or "UTC"),
    )
    _check_across(settings, inboxes, lines, problems)
    return Draft(settings, inboxes, lines)


def _build_inboxes(
    node: Node | None,
    root: YamlMap,
    problems: Problems,
    context: ConvertContext,
    lines: dict[str, int],
) -> dict[int, InboxSettings]:
    """The usable inboxes by their index in the list (broken ones are left out, and reported)."""
    if node is None:
        problems.add(root.line, "inboxes", "required: list the folders to watch")
        return {}
    if not isinstance(node, YamlList) or not node.items:
        problems.add(node.line, "inboxes", f"must be a non-empty list of inboxes, got {shown(node)}")
        return {}
    keys = section("inboxes").keys
    inbox_fields = {f.name for f in fields(InboxSettings)} - {"rules"}
    inboxes: dict[int, InboxSettings] = {}
    for index, item in enumerate(node.items):
        where = f"inboxes[{index}]"
        lines[where] = item.line
        values = convert_mapping(item, keys, where, "inboxes", problems, context, lines)
        rules = make_rule_set(values, where, lines, problems)
        path = values.get("path")
        if not isinstance(path, Path):
            continue
        settings = {name: value for name, value in values.items() if name in inbox_fields}
        # `done: null` means the default, like leaving it out
        settings["done"] = settings.get("done") or Path(os.path.normpath(path.parent / "done"))
        settings["failed"] = settings.get("failed") or Path(os.path.normpath(path.parent / "failed"))
        inboxes[index] = InboxSettings(rules=rules, **settings)  # type: ignore[arg-type]
    return inboxes


def _check_across(
    settings: Settings,
    inboxes: Mapping[int, InboxSettings],
    lines: Mapping[str, int],
    problems: Problems,
) -> None:
    """The checks no single key can make; each is skipped when a key it reads was already bad."""
    bad = {problem.where for problem in problems.items}

    def fine(*paths: str) -> bool:
        return not any(path in bad for path in paths)

    for j, inbox in inboxes.items():
        for i, other in inboxes.items():
            if i < j and _overlap(inbox.path, other.path):
                problems.add(
                    lines.get(f"inboxes[{j}].path"),
                    f"inboxes[{j}].path",
                    f"{inbox.path} overlaps inboxes[{i}] ({other.path}): one inbox may not contain another",
                )
        for which in ("done", "failed"):
            target: Path = getattr(inbox, which)
            written = f"inboxes[{j}].{which}" in lines
            for i, other in inboxes.items():
                if _overlap(target, other.path):
                    where = f"inboxes[{j}].{which}" if written else f"inboxes[{j}].path"
                    default = "" if written else f" (the default for {which}: <path>/../{which})"
                    problems.add(
                        lines.get(where),
                        where,
                        f"{which} folder {target}{default} overlaps inboxes[{i}] ({other.path}): "
                        "moved files would be taken again; put it beside the inbox, not inside",
                    )
    for i, inbox in inboxes.items():
        if fine("state.path") and _inside(settings.state.path.parent, inbox.path):
            problems.add(
                lines.get("state.path", lines.get("state")),
                "state.path",
                f"{settings.state.path} is inside inboxes[{i}] ({inbox.path}): keep the journal "
                "on local disk, away from the share",
            )
        staging = settings.state.staging
        if fine("state.staging") and staging is not None and _inside(staging, inbox.path):
            problems.add(
                lines.get("state.staging", lines.get("state")),
                "state.staging",
                f"{staging} is inside inboxes[{i}] ({inbox.path}): stage chunks on local disk, "
                "away from the share",
            )
    if fine("state.password_env", "state.url") and settings.state.password_env and not settings.state.url:
        problems.add(
            lines.get("state.password_env", lines.get("state")),
            "state.password_env",
            "is only used with state.url (a PostgreSQL journal); set state.url or remove it",
        )

    storage = settings.storage
    if fine("storage.type", "storage.bucket") and storage.type == "s3" and not storage.bucket:
        problems.add(
            lines.get("storage.type", lines.get("storage")),
            "storage.bucket",
            "required when storage.type is s3",
        )
    if fine("storage.type"):
        inline = storage.type == "inline"
        model_rules = RuleSet(model=settings.dashscope.model)
        check_fetchable(model_rules, "dashscope", lines, problems, inline=inline)
        check_fetchable(settings.defaults, "defaults", lines, problems, inline=inline)
        for index, inbox in inboxes.items():
            check_fetchable(inbox.rules, f"inboxes[{index}]", lines, problems, inline=inline)

    web, metrics = settings.web.listen, settings.metrics.listen
    if fine("web.listen", "metrics.listen") and web and metrics and _address(web) != _address(metrics):
        problems.add(
            lines.get("web.listen"),
            "web.listen",
            f"{web} differs from metrics.listen ({metrics}): they name the same listener; set one, "
            "or both to the same address",
        )

    check_backend_names(settings, inboxes, lines, problems)

    dashscope = settings.dashscope
    if fine("dashscope.retry_base_s", "dashscope.retry_max_s") and (
        dashscope.retry_max_s < dashscope.retry_base_s
    ):
        problems.add(
            lines.get("dashscope.retry_max_s", lines.get("dashscope.retry_base_s")),
            "dashscope.retry_max_s",
            f"must be ≥ retry_base_s ({dashscope.retry_base_s:g})",
        )


def _address(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` as the listener binds it: no host means loopback."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _overlap(a: Path, b: Path) -> bool:
    """True when one folder is the other or lies inside it, as written or after following links."""
    return _inside(a, b) or _inside(b, a)


def _inside(path: Path, root: Path) -> bool:
    real_path, real_root = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    return _within(path, root) or _within(real_path, real_root)


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents
