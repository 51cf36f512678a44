"""Typed, frozen settings: what the rest of the service reads once the YAML has been validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dropscribe.core.outbox import DEFAULT_EVENTS
from dropscribe.core.ruleset import RuleSet

StorageType = Literal["inline", "s3", "dashscope"]

LANGUAGES = (
    "zh", "yue", "en", "ja", "de", "ko", "ru", "fr", "pt", "ar", "it", "es", "hi", "id", "th", "tr",
    "uk", "vi", "cs", "da", "fil", "fi", "is", "ms", "no", "pl", "sv",
)  # fmt: skip
DEFAULT_RULES_FILE = "asr-rules.yaml"


@dataclass(frozen=True)
class DashScopeSettings:
    base_url: str = "https://dashscope.aliyuncs.com/api/v1"
    api_key_env: str = "DASHSCOPE_API_KEY"
    api_key_file: Path | None = None
    model: str = "qwen3-asr-flash"
    concurrency: int = 4
    requests_per_minute: int | Literal["auto"] = 60
    max_requests_per_minute: int = 1000  # what auto may reach: 10x the documented 100 for qwen3-asr
    timeout_s: float = 300.0
    retry_base_s: float = 2.0
    retry_max_s: float = 300.0
    pause_probe_s: float = 600.0
    stop_grace_s: float = 60.0


@dataclass(frozen=True)
class OpenAIBackendSettings:
    """An OpenAI-compatible speech server (``vllm serve Qwen/Qwen3-ASR-1.7B``): ``backends.<name>``."""

    base_url: str
    model: str
    api_key_env: str | None = None  # an open server needs no key
    api_key_file: Path | None = None
    concurrency: int = 2
    requests_per_minute: int | Literal["auto"] = 60
    max_requests_per_minute: int = 1000  # a server that never throttles (plain vLLM) stops auto here
    timeout_s: float = 300.0
    max_upload_mb: float = 25.0  # vLLM's default --max-audio-filesize-mb


BackendSettings = DashScopeSettings | OpenAIBackendSettings

#: The backend the ``dashscope`` section defines, and every folder's backend unless a rule says otherwise.
DEFAULT_BACKEND = "dashscope"


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
    # a postgresql:// URL: the journal lives there instead of in ``path`` (which still places the
    # status file and, unless ``staging`` is set, the staging folder); it may hold a password
    url: str | None = field(default=None, repr=False)
    password_env: str | None = None
    staging: Path | None = None
    lease_s: float = 60.0  # with ``url``: a claimed file stays this process's this long unrenewed

    @property
    def staging_dir(self) -> Path:
        """Scratch space for re-encoded chunks: local, beside the journal, never on the share."""
        return self.staging if self.staging is not None else self.path.parent / "staging"


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
class WebSettings:
    listen: str | None = None  # the same listener as metrics.listen; the two may not differ
    token_env: str | None = "DROPSCRIBE_WEB_TOKEN"
    token_file: Path | None = None


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    secret_env: str | None = None  # exactly one of the two names where the secret is
    secret_file: Path | None = None


@dataclass(frozen=True)
class NotifySettings:
    urls: tuple[str, ...] = ()  # Apprise URLs, for people
    webhook: WebhookSettings | None = None  # for programs
    events: tuple[str, ...] = DEFAULT_EVENTS
    max_age_s: float = 86400.0


@dataclass(frozen=True)
class Settings:
    dashscope: DashScopeSettings
    storage: StorageSettings
    state: StateSettings
    inboxes: tuple[InboxSettings, ...]
    defaults: RuleSet
    logging: LoggingSettings
    metrics: MetricsSettings
    notify: NotifySettings = field(default_factory=NotifySettings)
    web: WebSettings = field(default_factory=WebSettings)
    source: Path | None = None  # the YAML file these came from, for messages and reloads
    # ``backends:`` by name; the ``dashscope`` section is the backend named "dashscope" and is not in here
    backends: Mapping[str, BackendSettings] = field(default_factory=dict, hash=False)
    budget_timezone: str = "UTC"  # an IANA name (``defaults.budget_timezone``); budgets count its days

    def all_backends(self) -> dict[str, BackendSettings]:
        """Every configured backend by name, ``dashscope`` first."""
        return {DEFAULT_BACKEND: self.dashscope, **self.backends}
