"""``dropscribe transcribe``: the service's recognition path for files named on the command line."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from dropscribe.adapters import files
from dropscribe.adapters.journal import Journal
from dropscribe.adapters.storage import make_storage
from dropscribe.config.load import load_settings
from dropscribe.config.model import (
    DashScopeSettings,
    LoggingSettings,
    MetricsSettings,
    RuleSet,
    Settings,
    StateSettings,
    StorageSettings,
)
from dropscribe.config.rulefiles import RuleCache, RulesHeld
from dropscribe.core.errors import InputRejectedError, RemoteRejectedError
from dropscribe.core.rules import effective_rules
from dropscribe.logs import configure
from dropscribe.service.pipeline import Pipeline
from dropscribe.service.runner import build_client


def _bare_settings(state: Path) -> Settings:
    return Settings(
        dashscope=DashScopeSettings(), storage=StorageSettings(), state=StateSettings(path=state),
        inboxes=(), defaults=RuleSet(), logging=LoggingSettings(format="console", level="warning"),
        metrics=MetricsSettings(),
    )  # fmt: skip


def transcribe_files(
    paths: list[Path], config: Path | None, env: dict[str, str]
) -> list[tuple[Path, dict[str, Any]]]:
    """Recognize each file with the config's defaults (or the rules of the inbox it lies in)."""
    with tempfile.TemporaryDirectory(prefix="dropscribe-") as scratch:
        settings = load_settings(config, env) if config else _bare_settings(Path(scratch) / "state.db")
        configure("console", "warning")
        client = build_client(settings, env)
        storage = make_storage(settings.storage, client)
        # a private journal: one-shot runs must not disturb the service's, and repeat calls are cheap
        journal = Journal(Path(scratch) / "oneshot.db")
        pipeline = Pipeline(
            journal=journal, client=client, storage=storage, staging_dir=Path(scratch) / "staging",
            concurrency=settings.dashscope.concurrency, stopping=threading.Event(),
        )  # fmt: skip
        out: list[tuple[Path, dict[str, Any]]] = []
        try:
            for path in paths:
                out.append((path, _one(path.absolute(), settings, pipeline)))
        finally:
            pipeline.close()
            journal.close()
            client.close()
            storage.close()
        return out


def _one(path: Path, settings: Settings, pipeline: Pipeline) -> dict[str, Any]:
    rules: Any = effective_rules([settings.defaults], default_model=settings.dashscope.model)
    for inbox in settings.inboxes:
        if path.is_relative_to(inbox.path):
            rules = RuleCache.for_inbox(settings, inbox).rules_for(path.parent.relative_to(inbox.path))
            if isinstance(rules, RulesHeld):
                return {"error": {"code": "rules_invalid", "message": "; ".join(rules.messages)}}
    try:
        with files.open_input(path) as handle:
            return pipeline.recognize_open(handle, rules)
    except FileNotFoundError:
        return {"error": {"code": "not_found", "message": "no such file"}}
    except InputRejectedError as exc:
        return {"error": {"code": exc.code, "message": exc.message}}
    except RemoteRejectedError as exc:
        return {"error": {"code": "asr_rejected", "message": exc.message, "remote_code": exc.remote_code}}
