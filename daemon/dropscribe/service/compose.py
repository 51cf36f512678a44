"""The composition root: the one place that builds the service's object graph from settings and env.

Two lifetimes. A :class:`Graph` lives as long as the process: journal, status file, watcher, web
listener and metrics, clock, notifier, the content locks and the stop event. A :class:`Wiring` lives
as long as one configuration: the API client, the store, the pipeline and each inbox's scanner with
its rule cache. A reload builds a new wiring through :meth:`Graph.wire`; the old one finishes the
files it took and is closed then. Every command that builds these parts (``run``, ``transcribe``, ``status``,
``retry``) builds them here.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dropscribe.adapters.dashscope import DashScopeClient
from dropscribe.adapters.openai_asr import OpenAIRecognizer
from dropscribe.adapters.statusfile import StatusFile
from dropscribe.adapters.watcher import Watcher
from dropscribe.adapters.web_server import WebServer
from dropscribe.config.model import DEFAULT_BACKEND, OpenAIBackendSettings, Settings
from dropscribe.core.budget import BudgetLimit
from dropscribe.core.errors import ConfigError
from dropscribe.core.formats import DASHSCOPE, OPENAI, format_policy
from dropscribe.core.ports.claims import ClaimsJournal
from dropscribe.core.ports.clock import Clock
from dropscribe.core.ports.journal import Journal
from dropscribe.core.ports.notifier import Notifier
from dropscribe.core.ports.storage import Storage
from dropscribe.logs import configure, get_logger, register_secret
from dropscribe.service.backend_health import BackendHealth
from dropscribe.service.budgets import BudgetGate
from dropscribe.service.content_locks import ContentLocks
from dropscribe.service.journal_opening import open_journal
from dropscribe.service.leases import Leases
from dropscribe.service.limiters import shared_limiter
from dropscribe.service.metrics_registry import ServiceMetrics
from dropscribe.service.notifications import Deliveries, OutboxNotifier
from dropscribe.service.pipeline import BackendSpec, Pipeline
from dropscribe.service.rule_cache import RuleCache, RuleFileEvent
from dropscribe.service.scanner import InboxScanner
from dropscribe.service.settings_files import MAX_KEY_FILE_BYTES, load_settings, resolve_api_key
from dropscribe.service.status_report import RATES
from dropscribe.service.storage_factory import make_storage
from dropscribe.service.web_routes import resolve_web_token

log = get_logger()

# events that mean something is wrong; the rest say that it is over
_LEVELS = {
    "queue_paused": "error",
    "state_full": "error",
    "output_full": "error",
    "rules_invalid": "error",
    "inbox_unavailable": "warning",
    "file_done": "debug",  # job_done and job_failed say it already; these feed the outbox
    "file_failed": "debug",
}


class Closeable(Protocol):
    def close(self) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


class LogNotifier:
    """Operator notifications as structured log events (journald, or whatever reads stderr)."""

    def notify(self, event: str, **fields: Any) -> None:
        getattr(log, _LEVELS.get(event, "info"))(event, **fields)


def build_client(
    settings: Settings, env: Mapping[str, str], on_request: Callable[[float, str], None] | None = None,
    leases: Leases | None = None,
) -> DashScopeClient:  # fmt: skip
    key = resolve_api_key(settings.dashscope, env)
    register_secret(key)
    ds = settings.dashscope
    client = DashScopeClient(
        ds.base_url, key, timeout_s=ds.timeout_s, concurrency=ds.concurrency, on_request=on_request,
        limiter=shared_limiter(DEFAULT_BACKEND, ds, leases),
    )  # fmt: skip
    RATES.track(DEFAULT_BACKEND, client.rate_status)
    return client


RequestTimer = Callable[[str], Callable[[float, str], None]]
"""The latency observer for a backend's requests, by backend name."""


def openai_key(name: str, backend: OpenAIBackendSettings, env: Mapping[str, str]) -> str | None:
    """The key of an OpenAI-compatible server: its env variable, else its file; None for an open server."""
    if backend.api_key_env and env.get(backend.api_key_env, "").strip():
        key = env[backend.api_key_env].strip()
    elif backend.api_key_file is not None:
        try:
            key = backend.api_key_file.read_bytes()[:MAX_KEY_FILE_BYTES].decode("utf-8-sig").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                [f"backends.{name}.api_key_file {backend.api_key_file} cannot be read: {exc}"]
            ) from None
    elif backend.api_key_env:
        raise ConfigError(
            [f"no key for backend {name}: set {backend.api_key_env} or backends.{name}.api_key_file"]
        )
    else:
        return None
    if not key or any(char.isspace() or not char.isprintable() for char in key):
        raise ConfigError([f"the key of backend {name} is empty or holds spaces or control characters"])
    register_secret(key)
    return key


def build_backends(
    settings: Settings, env: Mapping[str, str], timer: RequestTimer | None = None,
    leases: Leases | None = None,
) -> dict[str, tuple[BackendSpec, Closeable]]:  # fmt: skip
    """A client per configured backend besides ``dashscope``, with what the pipeline needs of it."""
    built: dict[str, tuple[BackendSpec, Closeable]] = {}
    try:
        for name, backend in settings.backends.items():
            on_request = timer(name) if timer is not None else None
            if isinstance(backend, OpenAIBackendSettings):
                openai = OpenAIRecognizer(
                    backend.base_url, openai_key(name, backend, env), timeout_s=backend.timeout_s,
                    concurrency=backend.concurrency, on_request=on_request,
                    limiter=shared_limiter(name, backend, leases),
                )  # fmt: skip
                RATES.track(name, openai.rate_status)
                spec = BackendSpec(openai, format_policy(OPENAI), backend.concurrency, model=backend.model,
                                   max_upload_mb=backend.max_upload_mb)  # fmt: skip
                built[name] = (spec, openai)
            else:
                key = resolve_api_key(backend, env)
                register_secret(key)
                client = DashScopeClient(
                    backend.base_url, key, timeout_s=backend.timeout_s, concurrency=backend.concurrency,
                    on_request=on_request,
                    limiter=shared_limiter(name, backend, leases),
                )  # fmt: skip
                RATES.track(name, client.rate_status)
                built[name] = (
                    BackendSpec(client, format_policy(DASHSCOPE), backend.concurrency, filetrans=True),
                    client,
                )
    except BaseException:
        for _spec, opened in built.values():
            opened.close()
        raise
    return built


@dataclass(frozen=True)
class Wiring:
    """The parts built from one configuration; closed together once no file in flight uses them."""

    settings: Settings
    client: DashScopeClient
    storage: Storage
    pipeline: Pipeline
    scanners: Mapping[str, InboxScanner]  # by inbox path
    closed: threading.Event = field(default_factory=threading.Event, compare=False)
    others: Mapping[str, Closeable] = field(
        default_factory=dict, compare=False
    )  # the other backends' clients

    def close(self, *, keep: Wiring | None = None) -> None:
        """Close the pipeline, client and store; those ``keep`` shares with this one stay open."""
        if self.closed.is_set():
            return
        self.closed.set()
        self.pipeline.close()
        if keep is None or self.client is not keep.client:
            self.client.close()
        for other in self.others.values():
            other.close()
        if keep is None or self.storage is not keep.storage:
            self.storage.close()


def wire(
    settings: Settings,
    env: Mapping[str, str],
    *,
    journal: Journal,
    stopping: threading.Event,
    content_locks: ContentLocks | None = None,
    on_rule_event: Callable[[RuleFileEvent], None] | None = None,
    previous: Mapping[str, InboxScanner] | None = None,
    with_scanners: bool = True,
    on_request: Callable[[float, str], None] | None = None,
    timer: RequestTimer | None = None,
    health: BackendHealth | None = None,
    budget: BudgetGate | None = None,
    leases: Leases | None = None,
) -> Wiring:
    """Clients, store, pipeline and (``with_scanners``) the inboxes' scanners for ``settings``.

    ``timer`` gives the other backends their latency observers. Raises ConfigError when an API key
    is missing, before anything was built.
    """
    client = build_client(settings, env, on_request, leases)
    try:
        others = build_backends(settings, env, timer, leases)
    except BaseException:
        client.close()
        raise
    try:
        storage = make_storage(settings.storage, client)
    except BaseException:
        client.close()
        for _spec, opened in others.values():
            opened.close()
        raise
    pipeline = Pipeline(
        journal=journal, client=client, storage=storage,
        formats=format_policy(DASHSCOPE),  # must be the policy of the backend the client talks to
        staging_dir=settings.state.staging_dir, concurrency=settings.dashscope.concurrency,
        stopping=stopping, content_locks=content_locks,
        backends={name: spec for name, (spec, _opened) in others.items()}, health=health, budget=budget,
        leases=leases,
    )  # fmt: skip
    if health is not None:  # lives as long as the process: what a backend did outlasts a reload
        health.probe_s = settings.dashscope.pause_probe_s
    scanners: dict[str, InboxScanner] = {}
    for inbox in settings.inboxes if with_scanners else ():
        scanner = InboxScanner(inbox, RuleCache.for_inbox(settings, inbox, on_change=on_rule_event))
        old = (previous or {}).get(str(inbox.path))
        if old is not None:  # what was seen settling before the reload keeps its clock
            scanner.observations = old.observations
        scanners[str(inbox.path)] = scanner
    return Wiring(settings, client, storage, pipeline, scanners,
                  others={name: opened for name, (_spec, opened) in others.items()})  # fmt: skip


@dataclass(frozen=True)
class Graph:
    """What the service is built of for the life of the process."""

    settings: Settings  # as composed; each wiring carries the settings it was built from
    env: Mapping[str, str]
    config_path: Path | None
    journal: ClaimsJournal
    status_file: StatusFile
    watcher: Watcher
    web: WebServer | None  # /, /api/status, /metrics, /healthz and the actions
    clock: Clock
    notifier: Notifier
    content_locks: ContentLocks
    stopping: threading.Event
    meters: ServiceMetrics = field(default_factory=ServiceMetrics)
    web_token: str | None = None  # None: the page is read-only
    deliveries: Deliveries | None = None  # sends the outbox's notifications; None: none configured
    # every budget a file was checked against, by scope, for status and metrics (rule files' included)
    budgets_seen: dict[str, BudgetLimit] = field(default_factory=dict)
    health: BackendHealth | None = None  # each backend's failures and pauses; made with the clock
    leases: Leases | None = None  # several processes on one journal (state.url): this one's claims

    def load_settings(self) -> Settings:
        """The config as it reads now (a reload); the composed settings when there is no file."""
        return load_settings(self.config_path, self.env) if self.config_path else self.settings

    def budget_gate(self, settings: Settings) -> BudgetGate:
        across = (
            functools.partial(self.leases.exclusive, "budgets") if self.leases is not None else nullcontext
        )
        return BudgetGate.for_settings(settings, self.journal, self.notifier, self.clock, self.budgets_seen,
                                       across=across)  # fmt: skip

    def wire(self, settings: Settings, previous: Mapping[str, InboxScanner] | None = None) -> Wiring:
        return wire(
            settings, self.env, journal=self.journal, stopping=self.stopping,
            content_locks=self.content_locks, on_rule_event=self.rule_event, previous=previous,
            on_request=self.meters.request_timer("dashscope"), timer=self.meters.request_timer,
            health=self.health, budget=self.budget_gate(settings), leases=self.leases,
        )  # fmt: skip

    def rule_event(self, event: RuleFileEvent) -> None:
        if event.status == "invalid":
            self.notifier.notify("rules_invalid", rule_file=str(event.rule_file), errors=list(event.messages),
                                 action="files below it wait until the rule file is fixed")  # fmt: skip
        else:
            self.notifier.notify(f"rules_{event.status}", rule_file=str(event.rule_file))

    def close(self) -> None:
        """Close what lives as long as the process (the wirings are closed by whoever holds them)."""
        self.watcher.stop()
        if self.web is not None:
            self.web.stop()
        if self.deliveries is not None:
            self.deliveries.stop()
        self.journal.close()
        self.status_file.close()


def compose(
    settings: Settings,
    env: Mapping[str, str],
    *,
    config_path: Path | None = None,
    clock: Clock | None = None,
    notifier: Notifier | None = None,
) -> Graph:
    """The process-long parts for ``settings``; the web listener is bound here, served by the loop.

    Raises ConfigError for a missing API key before anything is opened or created.
    """
    configure(settings.logging.format, settings.logging.level)
    resolve_api_key(settings.dashscope, env)
    web_token = resolve_web_token(settings.web, env)
    journal = open_journal(settings, env)
    deliveries = build_deliveries(settings, env, journal)
    listen = settings.web.listen or settings.metrics.listen  # one listener; the config checks they agree
    try:
        web = WebServer(listen) if listen else None
    except BaseException:
        journal.close()
        raise
    clock = clock or SystemClock()
    leases = None
    if settings.state.url is not None:  # a PostgreSQL journal keeps the claims too
        leases = Leases(journal, lease_s=settings.state.lease_s)
    return Graph(
        settings=settings, env=env, config_path=config_path, journal=journal,
        status_file=StatusFile(settings.state.path), watcher=Watcher(), web=web, web_token=web_token,
        clock=clock, content_locks=ContentLocks(leases), stopping=threading.Event(),
        notifier=notifier or outbox_notifier(settings, journal, deliveries), deliveries=deliveries,
        health=BackendHealth(clock, settings.dashscope.pause_probe_s), leases=leases,
    )  # fmt: skip


def build_deliveries(settings: Settings, env: Mapping[str, str], journal: Journal) -> Deliveries | None:
    """The notification senders, when any are configured; the journal is closed if that fails."""
    if not settings.notify.urls and settings.notify.webhook is None:
        return None
    try:
        return Deliveries.build(journal, settings.notify, env)
    except BaseException:
        journal.close()
        raise


def outbox_notifier(settings: Settings, journal: Journal, deliveries: Deliveries | None) -> OutboxNotifier:
    """Logs every event; commits the subscribed ones to the outbox for each configured channel."""
    return OutboxNotifier(
        LogNotifier(), journal, channels=deliveries.channels if deliveries else (),
        events=settings.notify.events, on_commit=deliveries.wake if deliveries else lambda: None,
    )  # fmt: skip
