"""Limits the real service applies: context tokens, the per-minute quota, qwen-audio-asr's own caps.

See docs/dashscope.md, "Sync recognition", "Rate limits" and "qwen-audio-asr".
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from dropscribe.core.rules import approx_tokens as service_tokens
from dropscribe.emulator import Emulator
from dropscribe.emulator.tokens import count_tokens
from tests.emulator.emulator_helpers import GENERATION, api_client, data_url, long_wav, sine, sync_body
from tests.emulator.test_emulator_cli import start_cli, stop


def _error(reply: httpx.Response) -> tuple[int, str]:
    return reply.status_code, reply.json()["code"]


class TestContextTokens:
    def test_cjk_characters_count_one_token_each(self, client: httpx.Client, wav2: bytes) -> None:
        """10 001 Han characters with no space are 10 001 tokens, not one 'word': refused."""
        reply = client.post(GENERATION, json=sync_body(data_url(wav2), context="阿" * 10_001))

        assert _error(reply) == (400, "InvalidParameter")
        assert "10001 tokens" in reply.json()["message"]
        assert "10000" in reply.json()["message"]

    def test_at_the_limit_is_accepted_and_counted_in_usage(self, client: httpx.Client, wav2: bytes) -> None:
        context = "阿里云" * 3_000 + " Qwen ASR" * 500
        reply = client.post(GENERATION, json=sync_body(data_url(wav2), context=context))

        assert reply.status_code == 200, reply.text
        assert reply.json()["usage"]["input_tokens_details"]["text_tokens"] == 10_000

    @pytest.mark.parametrize(
        "text", ["", "two words", "阿里云", "Qwen 阿里云ASR", "会议纪要：张三，李四。", "한국어 テスト 𠀀"]
    )
    def test_counted_exactly_as_the_service_counts(self, text: str) -> None:
        """A context the service's config accepts is never refused by the emulator, and vice versa."""
        assert count_tokens(text) == service_tokens(text)


class TestRateLimit:
    def test_quota_per_key_and_model(self, start_emulator: Callable[..., Emulator], wav2: bytes) -> None:
        emulator = start_emulator(requests_per_minute=2)
        body = sync_body(data_url(wav2))
        with api_client(emulator) as http, api_client(emulator, "sk-second-account") as other:
            statuses = [http.post(GENERATION, json=body).status_code for _ in range(3)]
            other_model = http.post(
                GENERATION, json=sync_body(data_url(wav2), model="qwen3-asr-flash-2026-02-10")
            )
            other_key = other.post(GENERATION, json=body)
            unlimited = [
                http.post(GENERATION, json=sync_body(data_url(wav2), model="qwen-audio-asr")).status_code
                for _ in range(3)
            ]

        assert statuses == [200, 200, 429]
        assert (other_model.status_code, other_key.status_code) == (200, 200)
        assert unlimited == [200, 200, 200], "no quota is published for qwen-audio-asr"

    def test_the_class_default_has_no_quota(self, client: httpx.Client) -> None:
        """Tests that need no quota are not throttled: 120 calls in a burst all get past the limiter."""
        codes = {client.post(GENERATION, json={"model": "qwen3-asr-flash"}).status_code for _ in range(120)}

        assert codes == {400}

    def test_the_cli_default_is_the_documented_quota(self) -> None:
        process, base_url = start_cli("--port", "0")
        try:
            with httpx.Client(headers={"Authorization": "Bearer k"}, timeout=10) as http:
                # Refused bodies are cheap and still count, as every request does at the gateway.
                codes = [
                    http.post(base_url + GENERATION, json={"model": "qwen3-asr-flash"}) for _ in range(101)
                ]
        finally:
            stop(process)

        assert [r.status_code for r in codes[:100]] == [400] * 100
        assert _error(codes[100]) == (429, "Throttling.RateQuota")

    def test_rpm_zero_lifts_it(self) -> None:
        process, base_url = start_cli("--port", "0", "--rpm", "0")
        try:
            with httpx.Client(headers={"Authorization": "Bearer k"}, timeout=10) as http:
                codes = {
                    http.post(base_url + GENERATION, json={"model": "qwen3-asr-flash"}).status_code
                    for _ in range(101)
                }
        finally:
            stop(process)

        assert codes == {400}

    def test_a_negative_rpm_is_a_usage_error(self, capsys: pytest.CaptureFixture[str]) -> None:
        from dropscribe.emulator.cli import main

        with pytest.raises(SystemExit) as stopped:
            main(["--rpm", "-5"])

        assert stopped.value.code == 2
        assert "--rpm" in capsys.readouterr().err


class TestQwenAudioAsr:
    def test_input_cap_of_6144_tokens(self, client: httpx.Client) -> None:
        """25 tokens per second: 245 s fit in 6 144 input tokens, 246 s do not."""
        fits = client.post(GENERATION, json=sync_body(data_url(long_wav(245.0)), model="qwen-audio-asr"))
        over = client.post(GENERATION, json=sync_body(data_url(long_wav(245.5)), model="qwen-audio-asr"))
        flash = client.post(GENERATION, json=sync_body(data_url(long_wav(245.5))))

        assert fits.status_code == 200, fits.text
        assert fits.json()["usage"]["audio_tokens"] == 6125
        assert _error(over) == (400, "InvalidParameter")
        assert "6144" in over.json()["message"]
        assert flash.status_code == 200, "the 5-minute cap of qwen3-asr-flash is longer"

    @pytest.mark.parametrize(("tag", "language"), [("zho", "zh"), ("yue", "zh"), ("deu", "en"), (None, "en")])
    def test_hears_only_chinese_or_english(
        self, client: httpx.Client, tag: str | None, language: str
    ) -> None:
        audio = data_url(sine(0.5, fmt="mka", language=tag), "audio/x-matroska")
        reply = client.post(GENERATION, json=sync_body(audio, model="qwen-audio-asr"))

        assert reply.status_code == 200, reply.text
        assert reply.json()["output"]["choices"][0]["message"]["annotations"][0]["language"] == language
