"""The synchronous generation endpoint: what it accepts, what it answers, how it streams."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dropscribe.emulator import Emulator, emulated_text
from tests.emulator.emulator_helpers import GENERATION, FileServer, api_client, data_url, sha, sine, sync_body


def sse_events(text: str) -> list[dict[str, Any]]:
    """Parse an SSE body into ``{"id", "event", "status", "data"}`` dicts."""
    events = []
    for block in text.strip().split("\n\n"):
        event: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":HTTP_STATUS/"):
                event["status"] = int(line.split("/", 1)[1])
            else:
                name, _, value = line.partition(":")
                event[name] = json.loads(value) if name == "data" else value
        events.append(event)
    return events


class TestSuccess:
    def test_data_url_wav_gives_text_naming_duration_and_digest(
        self, client: httpx.Client, wav2: bytes
    ) -> None:
        """The transcript proves which bytes arrived: 2.00 s and the SHA-256 of the WAV sent."""
        reply = client.post(GENERATION, json=sync_body(data_url(wav2)))

        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("application/json")
        body = reply.json()
        uuid.UUID(body["request_id"])
        choice = body["output"]["choices"][0]
        assert choice["finish_reason"] == "stop"
        assert choice["message"]["role"] == "assistant"
        assert [{"text": emulated_text(2.0, sha(wav2))}] == choice["message"]["content"]
        assert f"2.00s sha256:{sha(wav2)[:12]}" in choice["message"]["content"][0]["text"]
        assert choice["message"]["annotations"] == [
            {"type": "audio_info", "language": "en", "emotion": "neutral"}
        ]
        assert body["usage"]["seconds"] == 2
        assert body["usage"]["output_tokens_details"]["text_tokens"] > 0
        assert body["usage"]["input_tokens_details"]["text_tokens"] == 0

    def test_mp3_with_language_and_context(self, client: httpx.Client, mp3_2: bytes) -> None:
        """MP3 decodes too; the requested language is echoed; context is counted as input tokens."""
        body = sync_body(
            data_url(mp3_2, "audio/mpeg"),
            context="Dropscribe, Qwen, 阿里云",
            asr_options={"language": "de", "enable_itn": True},
            result_format="message",
        )
        reply = client.post(GENERATION, json=body)

        assert reply.status_code == 200
        message = reply.json()["output"]["choices"][0]["message"]
        assert message["content"][0]["text"].endswith(f"sha256:{sha(mp3_2)[:12]}")
        assert message["annotations"][0]["language"] == "de"
        assert reply.json()["usage"]["input_tokens_details"]["text_tokens"] == 5

    def test_dated_and_us_models_are_served(self, client: httpx.Client, wav2: bytes) -> None:
        """Snapshots and the US variant share the contract."""
        for model in ("qwen3-asr-flash-2025-09-08", "qwen3-asr-flash-us", "qwen-audio-asr-latest"):
            reply = client.post(GENERATION, json=sync_body(data_url(wav2), model=model))
            assert reply.status_code == 200, model

    def test_qwen_audio_asr_reports_token_usage(self, client: httpx.Client, wav2: bytes) -> None:
        """qwen-audio-asr meters 25 tokens per audio second instead of seconds.

        See docs/dashscope.md, "qwen-audio-asr".
        """
        reply = client.post(GENERATION, json=sync_body(data_url(wav2), model="qwen-audio-asr"))

        usage = reply.json()["usage"]
        assert {"input_tokens", "output_tokens", "audio_tokens"} == set(usage)
        assert usage["audio_tokens"] == 50

    def test_http_url_is_downloaded(self, client: httpx.Client, file_server: FileServer, wav2: bytes) -> None:
        """A public or presigned URL is fetched, and the digest is of the downloaded bytes."""
        url = file_server.put("/bucket/a.wav", wav2)

        reply = client.post(GENERATION, json=sync_body(url))

        assert reply.status_code == 200
        assert (
            emulated_text(2.0, sha(wav2))
            == reply.json()["output"]["choices"][0]["message"]["content"][0]["text"]
        )

    def test_unreachable_url_is_a_download_failure(
        self, client: httpx.Client, file_server: FileServer
    ) -> None:
        reply = client.post(GENERATION, json=sync_body(file_server.url("/missing.wav")))

        assert reply.status_code == 415
        assert reply.json()["code"] == "BadRequest.InputDownloadFailed"


class TestStreaming:
    def test_incremental_stream_splits_the_text(self, client: httpx.Client, wav2: bytes) -> None:
        """With incremental_output the pieces add up to the text; only the last one says stop."""
        reply = client.post(
            GENERATION,
            json=sync_body(data_url(wav2), incremental_output=True),
            headers={"X-DashScope-SSE": "enable", "Accept": "text/event-stream"},
        )

        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = sse_events(reply.text)
        assert 2 <= len(events) <= 3
        assert all(e["event"] == "result" and e["status"] == 200 for e in events)
        assert [str(n) for n in range(1, len(events) + 1)] == [e["id"] for e in events]
        choices = [e["data"]["output"]["choices"][0] for e in events]
        assert ["null"] * (len(events) - 1) + ["stop"] == [c["finish_reason"] for c in choices]
        pieces = "".join(c["message"]["content"][0]["text"] for c in choices)
        assert emulated_text(2.0, sha(wav2)) == pieces
        assert choices[-1]["message"]["annotations"][0]["type"] == "audio_info"

    def test_cumulative_stream_repeats_the_text_so_far(self, client: httpx.Client, wav2: bytes) -> None:
        reply = client.post(GENERATION, json=sync_body(data_url(wav2)), headers={"X-DashScope-SSE": "enable"})

        events = sse_events(reply.text)
        last = events[-1]["data"]["output"]["choices"][0]["message"]["content"][0]["text"]
        assert emulated_text(2.0, sha(wav2)) == last


def _error(reply: httpx.Response) -> tuple[int, str]:
    body = reply.json()
    assert {"request_id", "code", "message"} == set(body)
    return reply.status_code, body["code"]


def _with_two_audio_parts(body: dict[str, Any]) -> dict[str, Any]:
    body["input"]["messages"][-1]["content"].append({"audio": "data:audio/wav;base64,AAAA"})
    return body


def _with_two_user_messages(body: dict[str, Any]) -> dict[str, Any]:
    body["input"]["messages"].append(dict(body["input"]["messages"][-1]))
    return body


def _without(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(body: dict[str, Any]) -> dict[str, Any]:
        del body[key]
        return body

    return change


class TestValidation:
    @pytest.mark.parametrize(
        ("change", "expected"),
        [
            pytest.param(_without("model"), (400, "BadRequest.EmptyModel"), id="missing-model"),
            pytest.param(_without("input"), (400, "BadRequest.EmptyInput"), id="missing-input"),
            pytest.param(lambda b: {**b, "model": "qwen-max"}, (404, "ModelNotFound"), id="unknown-model"),
            pytest.param(
                lambda b: {**b, "model": "qwen3-asr-flash-filetrans"},
                (404, "ModelNotFound"),
                id="async-model",
            ),
            pytest.param(
                lambda b: {**b, "parameters": {"asr_options": {"language": "xx"}}},
                (400, "InvalidParameter"),
                id="bad-language",
            ),
            pytest.param(
                lambda b: {**b, "parameters": {"asr_options": {"enable_itn": "yes"}}},
                (400, "InvalidParameter"),
                id="itn-not-bool",
            ),
            pytest.param(
                lambda b: {**b, "model": "qwen-audio-asr", "parameters": {"asr_options": {}}},
                (400, "InvalidParameter"),
                id="asr-options-on-qwen-audio-asr",
            ),
            pytest.param(_with_two_audio_parts, (400, "InvalidParameter"), id="two-audio-parts"),
            pytest.param(_with_two_user_messages, (400, "InvalidParameter"), id="two-user-messages"),
        ],
    )
    def test_rejections(
        self,
        client: httpx.Client,
        wav2: bytes,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        expected: tuple[int, str],
    ) -> None:
        reply = client.post(GENERATION, json=change(sync_body(data_url(wav2))))

        assert expected == _error(reply)

    def test_context_is_refused_by_qwen_audio_asr(self, client: httpx.Client, wav2: bytes) -> None:
        body = sync_body(data_url(wav2), model="qwen-audio-asr", context="glossary")

        assert _error(client.post(GENERATION, json=body)) == (400, "InvalidParameter")

    def test_context_over_ten_thousand_tokens(self, client: httpx.Client, wav2: bytes) -> None:
        body = sync_body(data_url(wav2), context="word " * 10_001)

        reply = client.post(GENERATION, json=body)

        assert _error(reply) == (400, "InvalidParameter")
        assert "10000 tokens" in reply.json()["message"]

    def test_bad_base64(self, client: httpx.Client) -> None:
        reply = client.post(GENERATION, json=sync_body("data:audio/wav;base64,@@not base64!!"))

        assert _error(reply) == (400, "InvalidParameter")

    def test_garbage_bytes_are_an_unsupported_format(self, client: httpx.Client) -> None:
        reply = client.post(GENERATION, json=sync_body(data_url(b"this is not audio at all" * 50)))

        assert _error(reply) == (415, "BadRequest.UnsupportedFileFormat")

    def test_audio_longer_than_the_limit(self, start_emulator: Callable[..., Emulator]) -> None:
        """A 6 s file against a 5 s limit is refused with a message about duration."""
        emulator = start_emulator(max_sync_duration_s=5.0)
        with api_client(emulator) as http:
            reply = http.post(GENERATION, json=sync_body(data_url(sine(6.0, rate=8000))))

        assert _error(reply) == (400, "InvalidParameter")
        assert "duration" in reply.json()["message"]

    def test_audio_larger_than_the_limit(self, start_emulator: Callable[..., Emulator], wav2: bytes) -> None:
        emulator = start_emulator(max_sync_bytes=len(wav2) - 1)
        with api_client(emulator) as http:
            reply = http.post(GENERATION, json=sync_body(data_url(wav2)))

        assert _error(reply) == (413, "BadRequest.TooLarge")

    def test_invalid_json(self, client: httpx.Client) -> None:
        reply = client.post(GENERATION, content=b"{not json", headers={"Content-Type": "application/json"})

        assert _error(reply) == (400, "InvalidParameter")


class TestKeysAndLimits:
    def test_only_configured_keys_are_accepted(
        self, start_emulator: Callable[..., Emulator], wav2: bytes
    ) -> None:
        emulator = start_emulator(api_keys={"sk-good"})
        body = sync_body(data_url(wav2))
        with api_client(emulator, "sk-good") as good, api_client(emulator, "sk-bad") as bad:
            assert good.post(GENERATION, json=body).status_code == 200
            assert _error(bad.post(GENERATION, json=body)) == (401, "InvalidApiKey")
        no_key = httpx.post(emulator.base_url + GENERATION, json=body)
        assert _error(no_key) == (401, "InvalidApiKey")

    def test_any_key_is_accepted_without_a_key_list(self, emulator: Emulator, wav2: bytes) -> None:
        with api_client(emulator, "whatever") as http:
            assert http.post(GENERATION, json=sync_body(data_url(wav2))).status_code == 200

    def test_requests_per_minute(self, start_emulator: Callable[..., Emulator], wav2: bytes) -> None:
        """The limit counts per key and model."""
        emulator = start_emulator(requests_per_minute=2)
        body = sync_body(data_url(wav2))
        with api_client(emulator) as http:
            assert [http.post(GENERATION, json=body).status_code for _ in range(2)] == [200, 200]
            assert _error(http.post(GENERATION, json=body)) == (429, "Throttling.RateQuota")
            other_model = sync_body(data_url(wav2), model="qwen3-asr-flash-2026-02-10")
            assert http.post(GENERATION, json=other_model).status_code == 200

    def test_unknown_path(self, client: httpx.Client) -> None:
        assert client.get("/services/nothing").status_code == 404
