"""The one table of configuration keys: what each accepts, its default, and what it is for.

The validator (``validate.py``), the rule files (``rulefiles.py``) and the reference text
(:func:`render_reference`) all read this table, so a key described here is a key the loader accepts,
and no other. Defaults are taken from the dataclasses in ``model.py`` rather than written twice.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Protocol

from dropscribe.adapters.beneath import Contents, RefusedError, open_beneath, read_capped
from dropscribe.config.model import (
    BUILTIN_RULES,
    LANGUAGES,
    OUTPUT_KINDS,
    DashScopeSettings,
    InboxSettings,
    LoggingSettings,
    MetricsSettings,
    StateSettings,
    StorageSettings,
)
from dropscribe.config.yamlsrc import Node, YamlList, YamlScalar, shown
from dropscribe.core.rules import (
    AUTO_LANGUAGE,
    KNOWN_MODELS_TEXT,
    MAX_CONTEXT_TOKENS,
    approx_tokens,
    is_known_model,
)

# A glossary far larger than 10,000 tokens is a mistake, and reading it whole to say so is wasteful.
MAX_CONTEXT_FILE_BYTES = 1024 * 1024


class InvalidValueError(Exception):
    """Raised by a kind when a value does not fit; the message completes ``<key>: ...``."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class ConvertContext:
    """What a value needs besides itself: where relative paths start, the environment, and, for rule
    files, the inbox a context file must stay inside."""

    base_dir: Path
    env: Mapping[str, str]
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


def _number_text(value: float) -> str:
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
            bounds.append(f"{sign} {_number_text(self.minimum)}")
        if self.maximum is not None:
            bounds.append(f"≤ {_number_text(self.maximum)}")
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


FileSignature = tuple[int, int, int, int]
"""(mtime_ns, size, inode, ctime_ns): when any of these changed, the file must be read again."""


def file_signature(st: os.stat_result) -> FileSignature:
    # ctime as well: it moves on every write and cannot be set back, unlike a restored mtime
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


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
        contents = _read_context_file(path, root)
        try:
            content = contents.data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidValueError(f"{path} is not UTF-8 text") from exc
        try:
            return ContextSource(path, _check_context(content.strip()), file_signature(contents.stat))
        except InvalidValueError as exc:
            raise InvalidValueError(f"{path} {exc.message}") from exc


def _read_context_file(path: Path, root: Path | None) -> Contents:
    """The bytes of a context file, opened once and judged on the open descriptor.

    A rule file's context file (``root`` is its inbox) is reached without following any link below the
    inbox, so a name flipped to a link between a check and the read cannot fetch a file from outside
    it. The service config's (``root`` None) may lie anywhere and be a link: the admin owns it.
    """
    try:
        if root is None:
            return read_capped(path, max_bytes=MAX_CONTEXT_FILE_BYTES)
        return open_beneath(root, path.relative_to(root), max_bytes=MAX_CONTEXT_FILE_BYTES)
    except RefusedError as exc:
        refused = path if root is None else root / exc.path
        raise InvalidValueError(f"{refused} {exc.reason}") from exc
    except FileNotFoundError as exc:
        raise InvalidValueError(f"{path} does not exist") from exc
    except OSError as exc:
        raise InvalidValueError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@dataclass(frozen=True)
class Key:
    name: str
    kind: Kind
    description: str
    default: object = None
    required: bool = False
    nullable: bool = False

    @property
    def default_text(self) -> str:
        """The default as the reference shows it."""
        if self.required:
            return "(required)"
        return _yaml_text(self.default)


def _yaml_text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_yaml_text(item) for item in value) + "]"
    if isinstance(value, float):
        return _number_text(value)
    return str(value)


def _default(cls: type, name: str) -> object:
    for f in fields(cls):
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:
                return f.default_factory()
    raise KeyError(f"{cls.__name__} has no field {name!r} with a default")


def _rule_default(name: str) -> object:
    return getattr(BUILTIN_RULES, name)


@dataclass(frozen=True)
class Section:
    name: str
    description: str
    keys: tuple[Key, ...]
    is_list: bool = False
    required: bool = False

    def key(self, name: str) -> Key | None:
        for key in self.keys:
            if key.name == name:
                return key
        return None


_POSITIVE = Number(minimum=0, exclusive_minimum=True)
_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"

RULE_KEYS: tuple[Key, ...] = (
    Key("language", Language(), "Language of the speech, or auto to let the API detect it "
        "(best for mixed-language audio). auto undoes a language set further up.",
        default=AUTO_LANGUAGE, nullable=True),
    Key("enable_itn", Boolean(), "Inverse text normalisation: numbers, dates and units written as "
        "digits (Chinese and English only).", _rule_default("enable_itn"), nullable=True),
    Key("context", ContextText(), "Background text, names and terms that help recognition "
        f"(at most {MAX_CONTEXT_TOKENS:,} tokens). Replaces a context_file set further up; "
        "an empty string clears it. Ignored by qwen-audio-asr.", '""', nullable=True),
    Key("context_file", ContextFile(), "A UTF-8 text file whose content is the context. In a rule "
        "file: relative to it and inside the inbox; in the service config: relative to the config "
        "file.", None, nullable=True),
    Key("model", ModelName(), "Model for this folder's files (the default is dashscope.model).",
        "dashscope.model", nullable=True),
    Key("outputs", Outputs(), "Sidecar files written beside each source in done/.",
        _rule_default("outputs"), nullable=True),
    Key("long_audio", Choice(("split", "filetrans")), "Audio longer than one request allows: split "
        "it at silences into chunks (works with every storage type), or send the whole file to the "
        "file-transcription model (needs storage.type s3 or dashscope).",
        _rule_default("long_audio"), nullable=True),
    Key("enabled", Boolean(), "false leaves the folder alone: its files are neither transcribed nor "
        "moved.", _rule_default("enabled"), nullable=True),
    Key("chunk_max_s", Number(minimum=10, exclusive_minimum=True, maximum=300),
        "Longest chunk when splitting long audio, in seconds.", _rule_default("chunk_max_s"),
        nullable=True),
    Key("max_size_mb", _POSITIVE, "Larger files go to failed/ with code too_large.",
        _rule_default("max_size_mb"), nullable=True),
    Key("max_duration_s", _POSITIVE, "Longer recordings go to failed/ with code too_long.",
        _rule_default("max_duration_s"), nullable=True),
)  # fmt: skip

INBOX_KEYS: tuple[Key, ...] = (
    Key("path", PathKind(), "The watched folder.", required=True),
    Key("done", PathKind(), "Where finished sources and their transcripts go, as done/<relpath>. "
        "Must not lie inside any inbox.", "<path>/../done", nullable=True),
    Key("failed", PathKind(), "Where rejected sources and their .error.json go. Must not lie inside "
        "any inbox.", "<path>/../failed", nullable=True),
    Key("recursive", Boolean(), "Watch subfolders too.", _default(InboxSettings, "recursive")),
    Key("polling", Polling(), "Find files by periodic scans only (true), by filesystem events plus "
        "scans (false), or decide from the filesystem type (auto: network shares give no events).",
        _default(InboxSettings, "polling")),
    Key("settle_s", Number(minimum=0), "A file is taken once its size and mtime have not changed "
        "for this many seconds.", _default(InboxSettings, "settle_s")),
    Key("rescan_s", _POSITIVE, "Seconds between full scans of the folder tree.",
        _default(InboxSettings, "rescan_s")),
    Key("incomplete_wait_s", Number(minimum=0), "A file that looks unfinished (empty, truncated, "
        "not yet decodable) is given this many seconds after its last change to be completed before "
        "it is failed.", _default(InboxSettings, "incomplete_wait_s")),
    Key("file_mode", FileMode(), "Permissions of the sidecars written to done/ and failed/, e.g. "
        "\"0644\". Unset: the recording's own mode and group, so whoever may read a recording may "
        "read its transcript.", None, nullable=True),
    Key("rules_file", FileName(), "Name of the per-folder rule files.",
        _default(InboxSettings, "rules_file")),
    Key("ignore", Patterns(), "Extra glob patterns of file names never to take (dotfiles, partial "
        "downloads and OS litter are always ignored).", _default(InboxSettings, "ignore")),
)  # fmt: skip

SECTIONS: tuple[Section, ...] = (
    Section("dashscope", "The DashScope API: region, key and client-side limits.", (
        Key("base_url", Url(), "API endpoint of the region the key belongs to: Beijing "
            "https://dashscope.aliyuncs.com/api/v1, Singapore "
            "https://dashscope-intl.aliyuncs.com/api/v1, US https://dashscope-us.aliyuncs.com/api/v1 "
            "(US needs a -us model).", _default(DashScopeSettings, "base_url")),
        Key("api_key_env", Text("an environment variable name", pattern=_ENV_NAME),
            "Environment variable holding the API key; it wins over api_key_file when set.",
            _default(DashScopeSettings, "api_key_env")),
        Key("api_key_file", CredentialPath(), "File holding the API key. A bare name is looked up "
            "in $CREDENTIALS_DIRECTORY when systemd sets it (LoadCredential=).",
            _default(DashScopeSettings, "api_key_file"), nullable=True),
        Key("model", ModelName(), "Default model for every folder.",
            _default(DashScopeSettings, "model")),
        Key("concurrency", Number(minimum=1, whole=True), "Requests in flight at once.",
            _default(DashScopeSettings, "concurrency")),
        Key("requests_per_minute", Number(minimum=1, whole=True), "Client-side rate limit; keep it "
            "below the account's quota (100 per minute for qwen3-asr-flash).",
            _default(DashScopeSettings, "requests_per_minute")),
        Key("timeout_s", _POSITIVE, "Timeout of one HTTP request.",
            _default(DashScopeSettings, "timeout_s")),
        Key("retry_base_s", _POSITIVE, "First wait after a transient error; doubles on each retry.",
            _default(DashScopeSettings, "retry_base_s")),
        Key("retry_max_s", _POSITIVE, "Longest wait between retries.",
            _default(DashScopeSettings, "retry_max_s")),
        Key("pause_probe_s", _POSITIVE, "While paused by an account problem (bad key, arrears), "
            "try again this often.", _default(DashScopeSettings, "pause_probe_s")),
        Key("stop_grace_s", Number(minimum=0), "On stop (SIGTERM), requests already sent may finish "
            "for this long so that their answers are kept, not paid again after the restart; unsent "
            "work is parked at once. Keep the unit's TimeoutStopSec above it.",
            _default(DashScopeSettings, "stop_grace_s")),
    )),
    Section("storage", "How the audio reaches the API.", (
        Key("type", Choice(("inline", "s3", "dashscope")), "inline: base64 in the request, no "
            "storage, sync models only, at most 10 MB encoded (long audio is split into small "
            "chunks). s3: any S3-compatible store (Alibaba OSS, AWS S3, MinIO) with presigned URLs. "
            "dashscope: the API's temporary upload (development only: 48 h, Beijing).",
            _default(StorageSettings, "type")),
        Key("endpoint_url", Url(), "S3 endpoint; null for AWS. Alibaba OSS: its S3-compatible "
            "endpoint, e.g. https://oss-cn-beijing.aliyuncs.com.",
            _default(StorageSettings, "endpoint_url"), nullable=True),
        Key("bucket", Text("a bucket name", pattern=r"[^/\s]+"), "Bucket name (required for s3).",
            _default(StorageSettings, "bucket"), nullable=True),
        Key("prefix", Text("an object key prefix", allow_empty=True), "Objects are stored under "
            "this prefix, named by content hash.", _default(StorageSettings, "prefix")),
        Key("region", Text("a region name"), "Region for signing; null lets the SDK decide.",
            _default(StorageSettings, "region"), nullable=True),
        Key("addressing_style", Choice(("auto", "virtual", "path")), "Bucket in the host name "
            "(virtual, needed by OSS) or in the path (path, usual for MinIO).",
            _default(StorageSettings, "addressing_style")),
        Key("presign_ttl_s", Number(minimum=60, maximum=604800, whole=True), "Lifetime of the "
            "presigned GET URLs given to the API.", _default(StorageSettings, "presign_ttl_s")),
        Key("keep", Boolean(), "Keep uploaded objects after success (otherwise they are deleted).",
            _default(StorageSettings, "keep")),
    )),
    Section("state", "Local state of the service.", (
        Key("path", PathKind(), "SQLite job journal; chunks are staged beside it. Local disk, never "
            "the share.", _default(StateSettings, "path")),
    )),
    Section("inboxes", "The watched folders, each with its done/failed folders and rule keys.",
            INBOX_KEYS + RULE_KEYS, is_list=True, required=True),
    Section("defaults", "Rule keys for every inbox; inboxes and rule files override them.",
            RULE_KEYS),
    Section("logging", "Logs go to stdout (journald under systemd).", (
        Key("format", Choice(("json", "console", "auto")), "auto: console on a terminal, JSON "
            "otherwise.", _default(LoggingSettings, "format")),
        Key("level", Choice(("debug", "info", "warning", "error")), "Lowest level logged.",
            _default(LoggingSettings, "level")),
    )),
    Section("metrics", "Prometheus metrics.", (
        Key("listen", Listen(), "Address of the /metrics endpoint; null turns it off.",
            _default(MetricsSettings, "listen"), nullable=True),
    )),
)  # fmt: skip

_SECRET_HINT = "secrets never live in the YAML file"
UNKNOWN_KEY_HINTS: dict[tuple[str, str], str] = {
    ("dashscope", "api_key"): "the API key never lives in the YAML file: use api_key_env or api_key_file",
    ("dashscope", "key"): "the API key never lives in the YAML file: use api_key_env or api_key_file",
    **{
        ("storage", name): f"{_SECRET_HINT}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the "
        "environment, or use an AWS credentials file"
        for name in (
            "access_key",
            "access_key_id",
            "secret_key",
            "secret_access_key",
            "aws_access_key_id",
            "aws_secret_access_key",
        )
    },
}
"""Extra words for mistakes people make; ``("rules", key)`` entries are for rule files."""

for _key in INBOX_KEYS:
    UNKNOWN_KEY_HINTS[("rules", _key.name)] = (
        f"{_key.name} is set per inbox in the service config, not in a rule file"
    )
    UNKNOWN_KEY_HINTS[("defaults", _key.name)] = (
        f"{_key.name} is set per inbox (under inboxes), not in defaults"
    )


def section(name: str) -> Section:
    for candidate in SECTIONS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def render_reference() -> str:
    """Every key as Markdown, for the README and ``dropscribe config reference``-style output."""
    lines = ["# Configuration reference", ""]
    for part in SECTIONS:
        title = f"`{part.name}`" + (" (a list)" if part.is_list else "")
        lines += [f"## {title}", "", part.description, ""]
        lines += ["| Key | Accepts | Default | Meaning |", "|---|---|---|---|"]
        for key in part.keys:
            accepts = key.kind.describe() + (" or null" if key.nullable else "")
            cells = [f"`{key.name}`", accepts, f"`{key.default_text}`", key.description]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        lines.append("")
    lines += ["## Rule files (`asr-rules.yaml`)", "", "Rule keys only: "]
    lines[-1] += ", ".join(f"`{key.name}`" for key in RULE_KEYS) + " (as in `defaults`)."
    return "\n".join(lines) + "\n"
