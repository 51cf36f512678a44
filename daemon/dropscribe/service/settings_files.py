"""Reading the files that configure the service: the config, its rule files, their context files and
the API key file. ``dropscribe.config`` turns what is read here into settings and rules.

Every read is capped and judged on the open descriptor (``dropscribe.adapters.beneath``): a FIFO must
not block the service, a sparse giant must not be read, and a file inside an inbox is reached without
following links, so a name swapped for a link cannot lead out of the inbox.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from dropscribe.adapters.beneath import Contents, RefusedError, open_beneath, read_capped
from dropscribe.config.backends import backend_rule_problems
from dropscribe.config.kinds import FileBytes, FileSignature, InvalidValueError
from dropscribe.config.model import DashScopeSettings, InboxSettings, Settings
from dropscribe.config.rulefiles import ParsedRuleFile, parse_rule_file_bytes
from dropscribe.config.validate import build_settings, draft_settings
from dropscribe.config.yamlsrc import Node, Problems, parse_yaml_bytes
from dropscribe.core.errors import ConfigError
from dropscribe.core.naming import is_ignored_dir
from dropscribe.core.ruleset import RuleSet

# A key is a few dozen characters; reading a whole mistaken file (a disk image?) helps nobody.
MAX_KEY_FILE_BYTES = 4096
MAX_CONFIG_BYTES = 1024 * 1024
# A rule file is a handful of keys; anything this large is not one, and is not worth parsing.
MAX_RULE_FILE_BYTES = 256 * 1024
# A glossary far larger than 10,000 tokens is a mistake, and reading it whole to say so is wasteful.
MAX_CONTEXT_FILE_BYTES = 1024 * 1024


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    """The settings in the YAML file ``path``, every key checked.

    ``env`` (default: the process environment) is consulted for ``$CREDENTIALS_DIRECTORY`` only.
    Inbox folders need not exist yet: ``run`` waits for a share that is not mounted.

    Raise ConfigError listing every problem, each as ``file:line: key: message``.
    """
    problems = Problems(path)  # messages name the file as the user gave it
    source = Path(os.path.abspath(path))
    root = read_yaml(source, problems, max_bytes=MAX_CONFIG_BYTES)
    if problems:
        raise ConfigError(problems.messages())
    settings, _ = build_settings(
        root,
        source=source,
        env=os.environ if env is None else env,
        problems=problems,
        read_context=read_context_file,
    )
    if problems or settings is None:
        raise ConfigError(problems.messages())
    return settings


def check_config(
    path: Path, *, require_inboxes: bool = True, env: Mapping[str, str] | None = None
) -> list[str]:
    """Every problem of the config and of every rule file in its inboxes; empty when all is well.

    Mistakes in some keys do not stop the checks on the disk: every inbox whose path could be read is
    looked at, and its rule files read, so everything is reported in one round.
    With ``require_inboxes`` (what ``dropscribe check`` does), a missing inbox folder is a problem;
    without it, a missing inbox is skipped, as ``run`` would wait for it. The API key is not looked
    for: ``check`` usually runs in a shell that does not have the service's credentials.
    """
    problems = Problems(path)  # messages name the file as the user gave it
    source = Path(os.path.abspath(path))
    root = read_yaml(source, problems, max_bytes=MAX_CONFIG_BYTES)
    if problems:
        return problems.messages()
    draft = draft_settings(
        root,
        source=source,
        env=os.environ if env is None else env,
        problems=problems,
        read_context=read_context_file,
    )
    if draft is None:
        return problems.messages()
    bad = {problem.where for problem in problems.items}
    # with the storage type itself in error, nobody can say whether a rule file may ask for file
    # transcription; the storage mistake is reported, not a guess about the rule files
    filetrans_available = draft.settings.storage.type != "inline" or bool(bad & {"storage", "storage.type"})
    rule_file_messages: list[str] = []
    for index, inbox in draft.inboxes.items():
        if not inbox.path.is_dir():
            if require_inboxes:
                where = f"inboxes[{index}].path"
                problems.add(
                    draft.lines.get(where),
                    where,
                    f"{inbox.path} is not an existing folder (not created yet, or the share is not mounted)",
                )
            continue
        for rule_file in find_rule_files(inbox):
            try:
                rules = parse_rule_file(rule_file, inbox.path, filetrans_available=filetrans_available)
            except ConfigError as exc:
                rule_file_messages.extend(exc.messages)
                continue
            wrong = backend_rule_problems(rules, draft.settings.all_backends())
            rule_file_messages.extend(f"{rule_file}: {key}: {message}" for message, key in wrong)
    return problems.messages() + rule_file_messages


def resolve_api_key(settings: DashScopeSettings, env: Mapping[str, str]) -> str:
    """The API key: from the environment variable ``api_key_env``, else from ``api_key_file``.

    The environment wins so a developer can override a deployed file for one run; under systemd the
    variable is unset and the credential file is used. No message ever contains the key.

    Raise ConfigError if neither gives a usable key.
    """
    from_env = env.get(settings.api_key_env, "").strip()
    if from_env:
        return _usable(from_env, f"${settings.api_key_env}")
    path = settings.api_key_file
    if path is None:
        raise ConfigError([f"no API key: set {settings.api_key_env} or dashscope.api_key_file"])
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            [
                f"no API key: {settings.api_key_env} is not set and dashscope.api_key_file "
                f"{path} cannot be read: {exc.strerror or exc}"
            ]
        ) from exc
    try:
        key = data.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        key = ""
    if not key or len(data) > MAX_KEY_FILE_BYTES:
        raise ConfigError(
            [
                f"no API key: {settings.api_key_env} is not set and dashscope.api_key_file {path} "
                "does not hold one (it should contain just the key)"
            ]
        )
    return _usable(key, str(path))


def _usable(key: str, origin: str) -> str:
    # the key goes into an HTTP header; a pasted line break would be refused there by a message
    # that might echo it, so it is refused here without showing it
    if any(char.isspace() or not char.isprintable() for char in key):
        raise ConfigError(
            [f"the API key in {origin} contains spaces or control characters; it should be one word"]
        )
    return key


def read_yaml(path: Path, problems: Problems, *, max_bytes: int) -> Node | None:
    """The document in ``path`` as a tree, or None when it is empty or unusable (see ``problems``).

    Links are followed (this is for files the admin names); a FIFO, device or anything larger than
    ``max_bytes`` is refused without being read.
    """
    try:
        data = read_capped(path, max_bytes=max_bytes).data
    except RefusedError as exc:
        problems.add(None, "", exc.reason)
        return None
    except OSError as exc:
        problems.add(None, "", f"cannot read: {exc.strerror or exc}")
        return None
    return parse_yaml_bytes(data, problems)


def parse_rule_file(path: Path, inbox_root: Path, *, filetrans_available: bool = True) -> RuleSet:
    """The rules written in ``path``, a rule file somewhere inside ``inbox_root``.

    An empty file is an empty rule set. ``filetrans_available`` is False when the service stores
    audio inline, which cannot feed the file-transcription model.

    Raise ConfigError with every problem, as ``file:line: key: message``, if the file is unusable.
    """
    parsed = read_rule_file(path, inbox_root, filetrans_available=filetrans_available)
    if parsed.messages:
        raise ConfigError(parsed.messages)
    return parsed.rules


def read_rule_file(path: Path, inbox_root: Path, *, filetrans_available: bool) -> ParsedRuleFile:
    """The rule file ``path`` read and understood; its problems are in the answer, never raised."""
    problems = Problems(path)
    data = _rule_file_bytes(path, inbox_root, problems)
    if data is None:
        return ParsedRuleFile.without_rules(problems)
    return parse_rule_file_bytes(
        data,
        path,
        inbox_root,
        problems,
        read_context=read_context_file,
        filetrans_available=filetrans_available,
    )


def _rule_file_bytes(path: Path, inbox_root: Path, problems: Problems) -> bytes | None:
    # opened like a recording: a FIFO must not block the service, a sparse giant must not be read,
    # and a name swapped for a link must not lead out of the inbox (nor to a file whose content the
    # error note would then quote)
    root = Path(os.path.abspath(inbox_root))
    try:
        relpath = Path(os.path.abspath(path)).relative_to(root)
    except ValueError:
        problems.add(None, "", f"is not inside the inbox {root}")
        return None
    try:
        return open_beneath(root, relpath, max_bytes=MAX_RULE_FILE_BYTES).data
    except RefusedError as exc:
        # a folder on the way is named; the file itself is the one the message is about already
        problems.add(None, "", exc.reason if exc.path == relpath.as_posix() else str(exc))
        return None
    except OSError as exc:
        problems.add(None, "", f"cannot read: {exc.strerror or exc}")
        return None


def read_context_file(path: Path, confine_to: Path | None) -> FileBytes:
    """The bytes of a context file, opened once and judged on the open descriptor.

    A rule file's context file (``confine_to`` is its inbox) is reached without following any link
    below the inbox, so a name flipped to a link between a check and the read cannot fetch a file from
    outside it. The service config's (``confine_to`` None) may lie anywhere and be a link: the admin
    owns it. Raise InvalidValueError saying why it cannot be read.
    """
    contents: Contents
    try:
        if confine_to is None:
            contents = read_capped(path, max_bytes=MAX_CONTEXT_FILE_BYTES)
        else:
            contents = open_beneath(
                confine_to, path.relative_to(confine_to), max_bytes=MAX_CONTEXT_FILE_BYTES
            )
    except RefusedError as exc:
        refused = path if confine_to is None else confine_to / exc.path
        raise InvalidValueError(f"{refused} {exc.reason}") from exc
    except FileNotFoundError as exc:
        raise InvalidValueError(f"{path} does not exist") from exc
    except OSError as exc:
        raise InvalidValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return FileBytes(contents.data, file_signature(contents.stat))


def file_signature(st: os.stat_result) -> FileSignature:
    """What tells a support file's versions apart, from its ``stat``."""
    # ctime as well: it moves on every write and cannot be set back, unlike a restored mtime
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


def find_rule_files(inbox: InboxSettings) -> Iterator[Path]:
    """Every rule file the service would read in ``inbox``, top down (folders it skips are skipped)."""
    if not inbox.recursive:
        candidate = inbox.path / inbox.rules_file
        # whatever has the name, as the service sees it: a FIFO or a link is reported, not skipped
        if os.path.lexists(candidate):
            yield candidate
        return
    for folder, subfolders, files in os.walk(inbox.path):
        subfolders[:] = sorted(name for name in subfolders if not is_ignored_dir(name))
        if inbox.rules_file in files:
            yield Path(folder) / inbox.rules_file
