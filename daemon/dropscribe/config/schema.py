"""The one table of configuration keys: what each accepts, its default, and what it is for.

The validator (``validate.py``), the rule files (``rulefiles.py``) and the reference text
(:func:`render_reference`) all read this table, so a key described here is a key the loader accepts,
and no other. Defaults are taken from the dataclasses in ``model.py`` rather than written twice. What
each kind accepts is in ``kinds.py`` and ``context.py``.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields

from dropscribe.config.context import ContextFile, ContextText
from dropscribe.config.kinds import (
    Boolean,
    Choice,
    CredentialPath,
    FileMode,
    FileName,
    Kind,
    Language,
    Listen,
    ModelName,
    Number,
    Outputs,
    PathKind,
    Patterns,
    Polling,
    Text,
    Url,
    number_text,
)
from dropscribe.config.model import (
    DashScopeSettings,
    InboxSettings,
    LoggingSettings,
    MetricsSettings,
    NotifySettings,
    OpenAIBackendSettings,
    StateSettings,
    StorageSettings,
    WebSettings,
)
from dropscribe.config.notify_kinds import AppriseUrls, EventNames, Webhook
from dropscribe.config.spend_kinds import BudgetKind, PostgresUrlKind, RateKind, TimeZoneKind
from dropscribe.core.rules import AUTO_LANGUAGE, MAX_CONTEXT_TOKENS
from dropscribe.core.ruleset import BUILTIN_RULES


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
        return number_text(value)
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
    is_map: bool = False  # a mapping of names to entries with these keys (``backends``)

    def key(self, name: str) -> Key | None:
        for key in self.keys:
            if key.name == name:
                return key
        return None


_POSITIVE = Number(minimum=0, exclusive_minimum=True)

_RATE_HELP = (
    "Client-side rate limit, per minute; auto finds the account's quota from the server's "
    "throttling replies (starting at 60) and holds just under it."
)
_MAX_RATE_HELP = (
    "The most auto may reach: a server that never throttles (vLLM without a proxy) is "
    "never sent more; ignored for a fixed number."
)

_ENV_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
BACKEND_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
BACKEND_TYPES = ("dashscope", "openai")

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
    Key("backend", Text("a backend name", pattern=BACKEND_NAME), "Which backend recognizes this "
        "folder's files: dashscope (the dashscope section) or a name under backends.",
        _rule_default("backend"), nullable=True),
    Key("fallback_backend", Text("a backend name", pattern=BACKEND_NAME), "Where this folder's files go "
        "while its backend has failed for failover_after_s or is paused by an account problem, until it "
        "answers again. Unset: they never go elsewhere.", None, nullable=True),
    Key("failover_after_s", _POSITIVE, "How long the backend must have been failing before files go to "
        "fallback_backend.", _rule_default("failover_after_s"), nullable=True),
    Key("budget", BudgetKind(), "{daily_audio_h, monthly_audio_h}: hours of audio that may be sent to "
        "a paid (dashscope-type) backend per day and per month for the files at or below this folder; "
        "a file counts against every budget on its way up to defaults. A file that would exceed one "
        "waits in its inbox (state over_budget) until the period resets. openai-type backends are not "
        "counted.", None, nullable=True),
)  # fmt: skip

BUDGET_TIMEZONE_KEY = Key("budget_timezone", TimeZoneKind(), "The zone whose days and months budgets "
                          "count in (IANA name).", "UTC")  # fmt: skip

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

BACKEND_TYPE_KEY = Key("type", Choice(BACKEND_TYPES), "What kind of server the backend is.", required=True)

OPENAI_BACKEND_KEYS: tuple[Key, ...] = (
    BACKEND_TYPE_KEY,
    Key("base_url", Url(), "The server's OpenAI API root, e.g. http://gpu-box:8000/v1; requests go to "
        "<base_url>/audio/transcriptions.", required=True),
    Key("model", Text("a model name", pattern=r"\S+"), "The served model, e.g. Qwen/Qwen3-ASR-1.7B.",
        required=True),
    Key("api_key_env", Text("an environment variable name", pattern=_ENV_NAME), "Environment "
        "variable holding the server's key (vllm serve --api-key); wins over api_key_file. Neither: "
        "no key is sent.", None, nullable=True),
    Key("api_key_file", CredentialPath(), "File holding the server's key. A bare name is looked up "
        "in $CREDENTIALS_DIRECTORY.", None, nullable=True),
    Key("concurrency", Number(minimum=1, whole=True), "Requests in flight at once.",
        _default(OpenAIBackendSettings, "concurrency")),
    Key("requests_per_minute", RateKind(), _RATE_HELP,
        _default(OpenAIBackendSettings, "requests_per_minute")),
    Key("max_requests_per_minute", Number(minimum=1, whole=True), _MAX_RATE_HELP,
        _default(OpenAIBackendSettings, "max_requests_per_minute")),
    Key("timeout_s", _POSITIVE, "Timeout of one HTTP request.", _default(OpenAIBackendSettings, "timeout_s")),
    Key("max_upload_mb", _POSITIVE, "The server's upload cap (vLLM: --max-audio-filesize-mb); longer "
        "audio is split into chunks that stay under it.", _default(OpenAIBackendSettings, "max_upload_mb")),
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
        Key("requests_per_minute", RateKind(), _RATE_HELP + " A number: keep it below the account's "
            "quota (100 per minute for qwen3-asr-flash).",
            _default(DashScopeSettings, "requests_per_minute")),
        Key("max_requests_per_minute", Number(minimum=1, whole=True), _MAX_RATE_HELP,
            _default(DashScopeSettings, "max_requests_per_minute")),
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
    Section("backends", "Further recognition backends by name (the dashscope section is the backend "
            "named dashscope). type: dashscope takes the keys of the dashscope section; type: openai "
            "(an OpenAI-compatible server such as vllm serve Qwen/Qwen3-ASR-1.7B) takes the keys below. "
            "A folder picks its backend with the rule key backend.", OPENAI_BACKEND_KEYS, is_map=True),
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
        Key("url", PostgresUrlKind(), "A postgresql:// URL: the journal is kept in that PostgreSQL "
            "database instead of state.path (which then holds only the status file and, by default, "
            "the staging folder). pip install 'dropscribe[postgres]'.", None, nullable=True),
        Key("password_env", Text("an environment variable name", pattern=_ENV_NAME), "Environment "
            "variable holding the database password, when it is neither in state.url nor in "
            "PGPASSWORD or ~/.pgpass.", None, nullable=True),
        Key("staging", PathKind(), "Folder for re-encoded chunks (local disk). Default: staging "
            "beside state.path.", None, nullable=True),
        Key("lease_s", Number(minimum=5, maximum=3600), "With state.url: how long a file claimed by "
            "a process stays its own without a renewal (renewed every third of it); a process that "
            "dies loses its files to the others after this.", _default(StateSettings, "lease_s")),
    )),
    Section("inboxes", "The watched folders, each with its done/failed folders and rule keys.",
            INBOX_KEYS + RULE_KEYS, is_list=True, required=True),
    Section("defaults", "Rule keys for every inbox; inboxes and rule files override them (budgets "
            "add up instead). budget_timezone is set here only.", (*RULE_KEYS, BUDGET_TIMEZONE_KEY)),
    Section("logging", "Logs go to stdout (journald under systemd).", (
        Key("format", Choice(("json", "console", "auto")), "auto: console on a terminal, JSON "
            "otherwise.", _default(LoggingSettings, "format")),
        Key("level", Choice(("debug", "info", "warning", "error")), "Lowest level logged.",
            _default(LoggingSettings, "level")),
    )),
    Section("metrics", "Prometheus metrics.", (
        Key("listen", Listen(), "Address of the /metrics endpoint; null turns it off. The same "
            "listener as web.listen (set either, or both to the same address).",
            _default(MetricsSettings, "listen"), nullable=True),
    )),
    Section("web", "The status page, /api/status, /metrics and /healthz on one HTTP listener.", (
        Key("listen", Listen(), "HOST:PORT of the listener; :PORT listens on 127.0.0.1 only. null "
            "turns it off (unless metrics.listen is set).", _default(WebSettings, "listen"),
            nullable=True),
        Key("token_env", Text("an environment variable name", pattern=_ENV_NAME), "Environment "
            "variable holding the token that actions (POST /api/retry) need, sent as Authorization: "
            "Bearer <token>; at least 16 characters. Without a token the page is read-only.",
            _default(WebSettings, "token_env"), nullable=True),
        Key("token_file", CredentialPath(), "File holding the token (used when token_env is unset "
            "or empty). A bare name is looked up in $CREDENTIALS_DIRECTORY.",
            _default(WebSettings, "token_file"), nullable=True),
    )),
    Section("notify", "Notifications: Apprise URLs for people, a signed webhook for programs. Each is "
            "committed to the journal before it is sent and retried with backoff, across restarts, "
            "until delivered or max_age_s old; sending never holds up a file.", (
        Key("urls", AppriseUrls(), "Apprise URLs to tell people (mailto://user:pass@host:port?"
            "from=…&to=…, ntfy://, tgram://, json://, …). Many events at once become one summary "
            "message per minute.", _default(NotifySettings, "urls")),
        Key("webhook", Webhook(), "{url, secret_env | secret_file}: every event is POSTed as JSON to "
            "url, signed in X-Dropscribe-Signature (sha256=<HMAC-SHA256 of the body with the "
            "secret>).", None, nullable=True),
        Key("events", EventNames(), "Which events are sent. budget.reached is sent once per budget "
            "and period, when the first file that would exceed it is held back.",
            _default(NotifySettings, "events")),
        Key("max_age_s", _POSITIVE, "A notification not delivered by this age is dropped (with a "
            "warning in the log).", _default(NotifySettings, "max_age_s")),
    )),
)  # fmt: skip

_SECRET_HINT = "secrets never live in the YAML file"
UNKNOWN_KEY_HINTS: dict[tuple[str, str], str] = {
    ("dashscope", "api_key"): "the API key never lives in the YAML file: use api_key_env or api_key_file",
    ("dashscope", "key"): "the API key never lives in the YAML file: use api_key_env or api_key_file",
    ("web", "token"): "the web token never lives in the YAML file: use token_env or token_file",
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

UNKNOWN_KEY_HINTS[("rules", "budget_timezone")] = "budget_timezone is set under defaults only"
UNKNOWN_KEY_HINTS[("inboxes", "budget_timezone")] = "budget_timezone is set under defaults only"
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
        title = f"`{part.name}`" + (" (a list)" if part.is_list else " (by name)" if part.is_map else "")
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
