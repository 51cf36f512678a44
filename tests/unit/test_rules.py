"""The rule cascade, on plain rule sets."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from dropscribe.core.rules import (
    approx_tokens,
    effective_rules,
    is_known_model,
    needs_fetchable_url,
)
from dropscribe.core.ruleset import BUILTIN_RULES, EffectiveRules, RuleSet


class TestEffectiveRules:
    def test_no_layers_gives_the_builtin_rules_with_the_default_model(self) -> None:
        """With nothing configured, the built-in rules apply, with the configured default model."""
        expected = EffectiveRules(
            language=None,
            enable_itn=False,
            context="",
            model="qwen3-asr-flash-us",
            outputs=("txt", "json"),
            long_audio="split",
            enabled=True,
            chunk_max_s=180.0,
            max_size_mb=2048.0,
            max_duration_s=12 * 3600.0,
        )

        assert expected == effective_rules([], default_model="qwen3-asr-flash-us")

    def test_nearest_layer_wins_key_by_key(self) -> None:
        """defaults <- inbox <- sub <- subsub: each key comes from the nearest layer that sets it."""
        defaults = RuleSet(language="zh", enable_itn=True, outputs=("txt",))
        inbox = RuleSet(language="en", chunk_max_s=120.0)
        sub = RuleSet(outputs=("txt", "srt"), model="qwen-audio-asr")
        subsub = RuleSet(language="ja")

        rules = effective_rules([defaults, inbox, sub, subsub], default_model="qwen3-asr-flash")

        expected = ("ja", True, ("txt", "srt"), "qwen-audio-asr", 120.0)
        assert expected == (rules.language, rules.enable_itn, rules.outputs, rules.model, rules.chunk_max_s)

    def test_auto_undoes_a_language_set_above(self) -> None:
        """language: auto in a nearer layer means detection, whatever an outer layer said."""
        rules = effective_rules([RuleSet(language="zh"), RuleSet(language="auto")], default_model="m")

        assert rules.language is None

    def test_inline_context_replaces_a_context_file_above(self) -> None:
        """A nearer inline context wins over an outer context file's text."""
        outer = RuleSet(context="glossary text", context_file=Path("/in/glossary.txt"))
        inner = RuleSet(context="inline")

        assert effective_rules([outer, inner], default_model="m").context == "inline"

    def test_context_file_replaces_an_inline_context_above(self) -> None:
        """A nearer context file (its text loaded by the reader) wins over an outer inline context."""
        outer = RuleSet(context="inline")
        inner = RuleSet(context="from the file", context_file=Path("/in/sub/terms.txt"))

        assert effective_rules([outer, inner], default_model="m").context == "from the file"

    def test_empty_context_clears_an_inherited_one(self) -> None:
        """context: "" in a subfolder sends no context at all."""
        rules = effective_rules([RuleSet(context="names"), RuleSet(context="")], default_model="m")

        assert rules.context == ""

    def test_disabled_folder_is_reported_not_skipped(self) -> None:
        """enabled: false comes back as rules; the caller decides to leave the folder alone."""
        assert effective_rules([RuleSet(enabled=False)], default_model="m").enabled is False

    def test_a_layer_model_beats_the_default_model(self) -> None:
        """dashscope.model is only the base; any layer may choose another model."""
        rules = effective_rules([RuleSet(model="qwen3-asr-flash-filetrans")], default_model="qwen3-asr-flash")

        assert rules.model == "qwen3-asr-flash-filetrans"

    def test_builtin_rules_decide_every_key(self) -> None:
        """The cascade relies on the built-in layer setting every key but the optional ones."""
        unset = [f.name for f in fields(BUILTIN_RULES) if getattr(BUILTIN_RULES, f.name) is None]

        assert unset == ["language", "context_file", "fallback_backend", "budget"]


class TestHelpers:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("", 0),
            ("hello big world", 3),
            ("你好世界", 4),
            ("Qwen 语音识别 demo", 6),
            ("  spaced\n\tout  ", 2),
        ],
    )
    def test_approx_tokens(self, text: str, expected: int) -> None:
        """One token per CJK character, one per other word."""
        assert expected == approx_tokens(text)

    @pytest.mark.parametrize(
        ("name", "known"),
        [
            ("qwen3-asr-flash", True),
            ("qwen3-asr-flash-2027-01-01", True),
            ("qwen3-asr-flash-2025-09-08-us", True),
            ("qwen3-asr-flash-filetrans-2025-11-17", True),
            ("qwen-audio-asr-latest", True),
            ("qwen3-asr", False),
            ("qwen3-asr-flash-filetrans-us", False),
            ("paraformer-v2", False),
        ],
    )
    def test_known_models(self, name: str, known: bool) -> None:
        """Documented ids and future dated snapshots are known; typos are not."""
        assert known == is_known_model(name)

    def test_needs_fetchable_url(self) -> None:
        """filetrans by long_audio or by model needs a URL; split with a sync model does not."""
        assert needs_fetchable_url(RuleSet(long_audio="filetrans"))
        assert needs_fetchable_url(RuleSet(model="qwen3-asr-flash-filetrans"))
        assert not needs_fetchable_url(RuleSet(long_audio="split", model="qwen3-asr-flash"))
