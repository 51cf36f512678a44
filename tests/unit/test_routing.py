"""Routing: which way a recording is recognized, with which model, and the key its answer is stored under.

The key decides whether an answer already paid for is reused, so its material is pinned here: a change
would make every journal written before it recognize (and pay for) the same bytes again.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from dropscribe.core.recognition import FILETRANS_MODEL
from dropscribe.core.routing import context_sha256, mode_for, model_for, result_key_material, route

SHA = "ab" * 32


def _route(**changes: Any) -> Any:
    values: dict[str, Any] = {
        "model": "qwen3-asr-flash", "long_audio": "split", "language": None, "enable_itn": False,
        "context": "", "chunk_max_s": 180.0, "duration_s": 60.0,
    }  # fmt: skip
    values.update(changes)
    return route(SHA, **values)


class TestMode:
    @pytest.mark.parametrize(
        ("model", "long_audio", "duration_s", "mode"),
        [
            ("qwen3-asr-flash", "split", 180.0, "single"),  # up to chunk_max_s inclusive: one request
            ("qwen3-asr-flash", "split", 180.001, "split"),
            ("qwen3-asr-flash", "filetrans", 180.0, "single"),
            ("qwen3-asr-flash", "filetrans", 3600.0, "filetrans"),
            ("qwen3-asr-flash-filetrans", "split", 5.0, "filetrans"),  # a task model is always a task
        ],
    )
    def test_mode_follows_model_length_and_long_audio(
        self, model: str, long_audio: str, duration_s: float, mode: str
    ) -> None:
        """Short audio goes in one request; long audio is split unless long_audio asks for a task."""
        assert mode_for(model=model, long_audio=long_audio, chunk_max_s=180.0, duration_s=duration_s) == mode

    def test_a_task_needs_a_file_transcription_model(self) -> None:
        """A sync model configured for long audio sent as a task is swapped for the task model."""
        assert model_for("qwen3-asr-flash", "filetrans") == FILETRANS_MODEL
        assert model_for("qwen3-asr-flash-filetrans-2025", "filetrans") == "qwen3-asr-flash-filetrans-2025"
        assert model_for("qwen3-asr-flash", "single") == "qwen3-asr-flash"
        assert model_for("qwen-audio-asr", "split") == "qwen-audio-asr"


class TestResultKey:
    def test_the_key_material_is_pinned(self) -> None:
        """Existing journals hold keys made from exactly this material."""
        material = result_key_material(
            SHA, model="qwen3-asr-flash", language=None, enable_itn=False, context_sha256=None,
            mode="single", chunk_max_s=180.0,
        )  # fmt: skip
        assert material == f"{SHA}|qwen3-asr-flash|auto|noitn|-|single|180"
        material = result_key_material(
            SHA, model="m", language="zh", enable_itn=True, context_sha256="c0", mode="split",
            chunk_max_s=45.5,
        )  # fmt: skip
        assert material == f"{SHA}|m|zh|itn|c0|split|45.5"

    def test_route_hashes_the_material(self) -> None:
        """The key is the SHA-256 hex of the material; mode, model and context hash come with it."""
        chosen = _route(context="names: Ada", duration_s=600.0, long_audio="filetrans")
        context_hash = hashlib.sha256(b"names: Ada").hexdigest()
        material = f"{SHA}|{FILETRANS_MODEL}|auto|noitn|{context_hash}|filetrans|180"
        assert chosen.mode == "filetrans"
        assert chosen.model == FILETRANS_MODEL
        assert chosen.context_sha256 == context_hash
        assert chosen.result_key == hashlib.sha256(material.encode()).hexdigest()

    def test_the_same_bytes_and_rules_give_the_same_key(self) -> None:
        assert _route() == _route()

    @pytest.mark.parametrize(
        "change",
        [
            {"language": "en"}, {"enable_itn": True}, {"context": "glossary"}, {"model": "qwen3-asr-flash-x"},
            {"chunk_max_s": 120.0}, {"duration_s": 600.0}, {"duration_s": 600.0, "long_audio": "filetrans"},
        ],
    )  # fmt: skip
    def test_anything_that_changes_the_question_changes_the_key(self, change: dict[str, Any]) -> None:
        """An answer is reused only for the same question: options, model, mode or chunking differ."""
        assert _route(**change).result_key != _route().result_key

    def test_length_within_the_same_mode_does_not_change_the_key(self) -> None:
        """The key depends on the bytes' hash, not on the measured duration."""
        assert _route(duration_s=10.0).result_key == _route(duration_s=170.0).result_key

    def test_the_dashscope_backend_keeps_the_pinned_key(self) -> None:
        """Naming the default backend changes nothing: journals from before backends still match."""
        pinned = hashlib.sha256(f"{SHA}|qwen3-asr-flash|auto|noitn|-|single|180".encode()).hexdigest()
        assert _route().result_key == pinned
        assert _route(backend="dashscope").result_key == pinned

    def test_another_backend_never_shares_a_key(self) -> None:
        """Another backend's answer is another answer, even under the same model name."""
        material = result_key_material(
            SHA, model="qwen3-asr-flash", language=None, enable_itn=False, context_sha256=None,
            mode="single", chunk_max_s=180.0, backend="onprem",
        )  # fmt: skip
        assert material == f"{SHA}|qwen3-asr-flash|auto|noitn|-|single|180|backend=onprem"
        keys = {_route().result_key, _route(backend="onprem").result_key, _route(backend="eu").result_key}
        assert len(keys) == 3

    def test_a_backend_without_file_transcription_splits_long_audio(self) -> None:
        way = _route(backend="onprem", filetrans=False, long_audio="filetrans", duration_s=3600.0)
        assert (way.mode, way.model) == ("split", "qwen3-asr-flash")
        short = _route(backend="onprem", filetrans=False, model="qwen3-asr-flash-filetrans", duration_s=5.0)
        assert short.mode == "single"

    def test_no_context_has_no_hash(self) -> None:
        assert context_sha256("") is None
        assert context_sha256("x") == hashlib.sha256(b"x").hexdigest()
