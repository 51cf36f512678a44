"""Reading the service config, checking it with its rule files, and finding the API key."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dropscribe.config.model import DashScopeSettings, Settings
from dropscribe.config.rulefiles import find_rule_files, parse_rule_file
from dropscribe.config.validate import build_settings, draft_settings
from dropscribe.config.yamlsrc import Problems, read_yaml
from dropscribe.core.errors import ConfigError

# A key is a few dozen characters; reading a whole mistaken file (a disk image?) helps nobody.
MAX_KEY_FILE_BYTES = 4096
MAX_CONFIG_BYTES = 1024 * 1024


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    """The settings in the YAML file ``path``, every key checked.

    ``env`` (default: the process environment) is consulted for ``$CREDENTIALS_DIRECTORY`` only.
    Inbox folders need not exist yet: ``run`` waits for a share that is not mounted.

    Raise ConfigError listing every problem, each as ``file:line: key: message``.
    """
    settings, _ = _load(path, os.environ if env is None else env)
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
    draft = draft_settings(root, source=source, env=os.environ if env is None else env, problems=problems)
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
                parse_rule_file(rule_file, inbox.path, filetrans_available=filetrans_available)
            except ConfigError as exc:
                rule_file_messages.extend(exc.messages)
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


def _load(path: Path, env: Mapping[str, str]) -> tuple[Settings, dict[str, int]]:
    problems = Problems(path)  # messages name the file as the user gave it
    source = Path(os.path.abspath(path))
    root = read_yaml(source, problems, max_bytes=MAX_CONFIG_BYTES)
    if problems:
        raise ConfigError(problems.messages())
    settings, lines = build_settings(root, source=source, env=env, problems=problems)
    if problems or settings is None:
        raise ConfigError(problems.messages())
    return settings, lines
