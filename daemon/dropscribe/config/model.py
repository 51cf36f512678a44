"""Typed, frozen settings: what the rest of the service reads once the YAML has been validated."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

OutputKind = Literal["txt", "json", "srt", "vtt"]
LongAudio = Literal["split", "filetrans"]
StorageType = Literal["inline", "s3", "dashscope"]

LANGUAGES = (
    "zh", "yue", "en", "ja", "de", "ko", "ru", "fr", "pt", "ar", "it", "es", "hi", "id", "th", "tr",
    "uk", "vi", "cs", "da", "fil", "fi", "is", "ms", "no", "pl", "sv",
)  # fmt: skip
OUTPUT_KINDS: tuple[OutputKind, ...] = ("txt", "json", "srt", "vtt")
DEFAULT_RULES_FILE = "asr-rules.yaml"


@dataclass(frozen=True)
class RuleSet:
    """Rule keys as written in one place (global defaults, an inbox, or an asr-rules.yaml).

    ``None`` means "not set here": the cascade takes the value from the next level up.
    ``context_file`` is already resolved to an absolute path by the loader.
    """

    language: str | None = None
    enable_itn: bool | None = None
    context: str | None = None
    context_file: Path | None = None
    model: str | None = None
    outputs: tuple[OutputKind, ...] | None = None
    long_audio: LongAudio | None = None
    enabled: bool | None = None
    chunk_max_s: float | None = None
    max_size_mb: float | None = None
    max_duration_s: float | None = None

    def over(self, base: RuleSet) -> RuleSet:
        """This rule set laid over ``base``: every key set here wins, the others come from ``base``."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                changes[f.name] = value
        # a context given inline at this level replaces a context_file inherited from above, and vice versa
        if self.context is not None and self.context_file is None:
            changes["context_file"] = None
        if self.context_file is not None and self.context is None:
            changes["context"] = None
        return replace(base, **changes)


@dataclass(frozen=True)
class EffectiveRules:
    """The rules that apply to one file after the cascade, with every key decided."""

    language: str | None
    enable_itn: bool
    context: str
    model: str
    outputs: tuple[OutputKind, ...]
    long_audio: LongAudio
    enabled: bool
    chunk_max_s: float
    max_size_mb: float
    max_duration_s: float


BUILTIN_RULES = RuleSet(
    language=None,
    enable_itn=False,
    context="",
    model="qwen3-asr-flash",
    outputs=("txt", "json"),
    long_audio="split",
    enabled=True,
    chunk_max_s=180.0,
    max_size_mb=2048.0,
    max_duration_s=12 * 3600.0,
)


@dataclass(frozen=True)
class DashScopeSettings:
    base_url: str = "https://dashscope.aliyuncs.com/api/v1"
    api_key_env: str = "DASHSCOPE_API_KEY"
    api_key_file: Path | None = None
    model: str = "qwen3-asr-flash"
    concurrency: int = 4
    requests_per_minute: int = 60
    timeout_s: float = 300.0
    retry_base_s: float = 2.0
    retry_max_s: float = 300.0
    pause_probe_s: float = 600.0
    stop_grace_s: float = 60.0


@dataclass(frozen=True)
class StorageSettings:
    type: StorageType = "inline"
    endpoint_url: str | None = None
    bucket: str | None = None
    prefix: str = "dropscribe/"
    region: str | None = None
    addressing_style: Literal["auto", "virtual", "path"] = "auto"
    presign_ttl_s: int = 86400
    keep: bool = False


@dataclass(frozen=True)
class StateSettings:
    path: Path = Path("/var/lib/dropscribe/state.db")

    @property
    def staging_dir(self) -> Path:
        """Scratch space for re-encoded chunks: local, beside the journal, never on the share."""
        return self.path.parent / "staging"


@dataclass(frozen=True)
class InboxSettings:
    path: Path
    done: Path
    failed: Path
    recursive: bool = True
    polling: bool | Literal["auto"] = "auto"
    settle_s: float = 5.0
    rescan_s: float = 60.0
    incomplete_wait_s: float = 300.0
    file_mode: int | None = None
    rules_file: str = DEFAULT_RULES_FILE
    ignore: tuple[str, ...] = ()
    rules: RuleSet = field(default_factory=RuleSet)


@dataclass(frozen=True)
class LoggingSettings:
    format: Literal["json", "console", "auto"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True)
class MetricsSettings:
    listen: str | None = None


@dataclass(frozen=True)
class Settings:
    dashscope: DashScopeSettings
    storage: StorageSettings
    state: StateSettings
    inboxes: tuple[InboxSettings, ...]
    defaults: RuleSet
    logging: LoggingSettings
    metrics: MetricsSettings
    source: Path | None = None  # the YAML file these came from, for messages and reloads
