"""The rule cascade: which options apply to a file, decided from the rule sets above it.

Pure: the service reads the files (including a ``context_file``'s text, which goes into
``RuleSet.context``) and hands plain rule sets to :func:`effective_rules`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from dropscribe.core.ruleset import BUILTIN_RULES, EffectiveRules, RuleSet

AUTO_LANGUAGE = "auto"
"""Written as ``language: auto`` to undo a language set further up; the API then detects it."""

MAX_CONTEXT_TOKENS = 10_000
"""The API's limit for context text; beyond it the request is rejected as InvalidParameter."""

# Dated snapshots appear every few months; accepting the documented shapes keeps a new snapshot usable
# without a release, while a typo such as "qwen3-asr" is still caught before any file is sent.
_KNOWN_MODELS = re.compile(
    r"qwen3-asr-flash(-\d{4}-\d{2}-\d{2})?(-us)?"
    r"|qwen3-asr-flash-filetrans(-\d{4}-\d{2}-\d{2})?"
    r"|qwen-audio-asr(-latest|-\d{4}-\d{2}-\d{2})?"
)
KNOWN_MODELS_TEXT = (
    "qwen3-asr-flash[-YYYY-MM-DD][-us], qwen3-asr-flash-filetrans[-YYYY-MM-DD], "
    "qwen-audio-asr[-latest|-YYYY-MM-DD]"
)

# Han (with extensions and compatibility forms), kana and Hangul: the tokenizer spends about one token
# per character on these, while Latin-script text costs about one per word.
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]")

_T = TypeVar("_T")


def is_known_model(name: str) -> bool:
    """True for the model ids this service knows how to call (sync, file-transcription, audio-asr)."""
    return _KNOWN_MODELS.fullmatch(name) is not None


def is_filetrans_model(name: str) -> bool:
    """True for the asynchronous file-transcription family, which needs a URL the API can fetch."""
    return "filetrans" in name


def needs_fetchable_url(rules: RuleSet) -> bool:
    """True when these rules may send a file to the file-transcription API (inline data cannot)."""
    return rules.long_audio == "filetrans" or (rules.model is not None and is_filetrans_model(rules.model))


def approx_tokens(text: str) -> int:
    """Estimate of the API's token count: one per CJK character plus one per other word.

    Errs high for CJK and low for long words, which is the right side for a limit check on
    mostly-CJK glossaries and close enough for prose.
    """
    cjk = len(_CJK.findall(text))
    words = len(_CJK.sub(" ", text).split())
    return cjk + words


def effective_rules(layers: Sequence[RuleSet], *, default_model: str) -> EffectiveRules:
    """The rules for one file: ``layers`` laid over the built-in rules, nearest last, key by key.

    ``layers`` go from the outermost (global ``defaults``, then the inbox, then each rule file from
    the inbox root down to the file's folder). The built-in rules lie beneath them all, with
    ``default_model`` (the configured ``dashscope.model``) as their model; do not pass
    ``BUILTIN_RULES`` as a layer, or its model would hide ``default_model``.

    A layer's ``context_file`` must already have its text in ``context``: the loaders do that.
    """
    merged = replace(BUILTIN_RULES, model=default_model)
    for layer in layers:
        merged = layer.over(merged)
    language = merged.language
    return EffectiveRules(
        language=None if language in (None, AUTO_LANGUAGE) else language,
        enable_itn=_decided(merged.enable_itn),
        context=merged.context or "",
        model=_decided(merged.model),
        outputs=_decided(merged.outputs),
        long_audio=_decided(merged.long_audio),
        enabled=_decided(merged.enabled),
        chunk_max_s=_decided(merged.chunk_max_s),
        max_size_mb=_decided(merged.max_size_mb),
        max_duration_s=_decided(merged.max_duration_s),
        backend=_decided(merged.backend),
        fallback_backend=merged.fallback_backend,
        failover_after_s=_decided(merged.failover_after_s),
        budgets=merged.budget or (),
    )


def _decided(value: _T | None) -> _T:
    # every key is set in BUILTIN_RULES and over() never unsets one, so None here is a bug upstream
    if value is None:
        raise ValueError("BUILTIN_RULES must set every rule key")
    return value
