"""The rule values: what one level of the cascade sets, and what applies to a file once it is decided."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from dropscribe.core.budget import BudgetLimit

OutputKind = Literal["txt", "json", "srt", "vtt"]
LongAudio = Literal["split", "filetrans"]

OUTPUT_KINDS: tuple[OutputKind, ...] = ("txt", "json", "srt", "vtt")


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
    backend: str | None = None
    fallback_backend: str | None = None
    failover_after_s: float | None = None
    # budgets add up instead of replacing: every one on the way down, outermost first
    budget: tuple[BudgetLimit, ...] | None = None

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
        if self.budget is not None:
            changes["budget"] = (*(base.budget or ()), *self.budget)
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
    backend: str = "dashscope"
    fallback_backend: str | None = None  # None: the folder's files never go to another backend
    failover_after_s: float = 300.0
    budgets: tuple[BudgetLimit, ...] = ()  # every budget the file counts against, outermost first


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
    backend="dashscope",
    failover_after_s=300.0,
)
