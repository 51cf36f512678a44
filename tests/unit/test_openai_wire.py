"""The OpenAI-compatible wire: form fields, answers, and what each refusal means, on plain values."""

from __future__ import annotations

from typing import Any

import pytest

from dropscribe.core.errors import AccountError, AsrUnavailableError, RemoteRejectedError
from dropscribe.core.openai_wire import (
    classify_failure,
    error_of,
    form_fields,
    parse_transcription,
    retry_after,
    strip_marker,
    upload_chunk_max_s,
    upload_max_bytes,
)
from dropscribe.core.recognition import AsrOptions


def _envelope(message: str, code: Any, kind: str = "BadRequestError") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class TestRequest:
    def test_language_and_prompt_only_when_set(self) -> None:
        assert form_fields("Qwen/Qwen3-ASR-1.7B", AsrOptions()) == {
            "model": "Qwen/Qwen3-ASR-1.7B", "response_format": "json",
        }  # fmt: skip
        fields = form_fields("m", AsrOptions(language="de", enable_itn=True, context="Namen: Ada"))
        assert fields == {"model": "m", "response_format": "json", "language": "de", "prompt": "Namen: Ada"}


class TestAnswer:
    def test_text_and_usage_seconds(self) -> None:
        result = parse_transcription({"text": "Hello.", "usage": {"type": "duration", "seconds": 7}}, "r-1")
        assert (result.text, result.usage_seconds, result.request_id) == ("Hello.", 7.0, "r-1")

    def test_duration_when_there_is_no_usage(self) -> None:
        assert parse_transcription({"text": "x", "duration": 3.5}).usage_seconds == 3.5

    def test_no_seconds_reported_is_zero(self) -> None:
        """Zero means "nothing to hold the answer against" for the truncation check."""
        assert parse_transcription({"text": "x", "usage": {"seconds": "n/a"}}).usage_seconds == 0.0
        assert parse_transcription({"text": "x", "usage": {"seconds": True}}).usage_seconds == 0.0

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("language English<asr_text>Hello there.", "Hello there."),
            ("language Chinese<asr_text>你好", "你好"),
            ("  language None<asr_text>", ""),
            ("Hello language English<asr_text> kept", "Hello language English<asr_text> kept"),
            ("The language of love", "The language of love"),
        ],
    )
    def test_a_leading_language_marker_is_stripped(self, text: str, expected: str) -> None:
        assert strip_marker(text) == expected

    def test_the_marker_goes_before_the_text_is_kept(self) -> None:
        assert parse_transcription({"text": "language English<asr_text>Hi."}).text == "Hi."

    @pytest.mark.parametrize("payload", [None, [], {"detail": "x"}, {"text": 5}, "text"])
    def test_a_body_without_text_is_worth_another_try(self, payload: Any) -> None:
        with pytest.raises(AsrUnavailableError):
            parse_transcription(payload, "r-2")


class TestFailures:
    def test_both_error_dialects_are_read(self) -> None:
        assert error_of(_envelope("Maximum file size exceeded", 400)) == ("400", "Maximum file size exceeded")
        assert error_of(_envelope("slow down", "rate_limit_exceeded")) == ("rate_limit_exceeded", "slow down")
        assert error_of({"error": "Unauthorized"}) == (None, "Unauthorized")
        assert error_of({"error": {"message": "m", "type": "invalid_request_error", "code": None}}) == (
            "invalid_request_error", "m",
        )  # fmt: skip
        assert error_of({"detail": "Not Found"}) == (None, "Not Found")
        assert error_of(b"<html>") == (None, "")

    @pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
    def test_throttling_and_server_trouble_are_transient(self, status: int) -> None:
        error = classify_failure(status, _envelope("busy", status), retry_after_s=4.0, request_id="r")
        assert isinstance(error, AsrUnavailableError)
        assert (error.retry_after_s, error.remote_code, error.request_id) == (4.0, str(status), "r")

    def test_a_gateway_page_without_json_is_transient(self) -> None:
        assert isinstance(classify_failure(502, None), AsrUnavailableError)

    @pytest.mark.parametrize(
        ("status", "payload", "code"),
        [
            (401, {"error": "Unauthorized"}, "401"),  # vllm serve --api-key
            (
                401,
                _envelope("Incorrect API key", "invalid_api_key", "invalid_request_error"),
                "invalid_api_key",
            ),
            (403, _envelope("forbidden", 403), "403"),
            (404, _envelope("The model `x` does not exist.", 404, "NotFoundError"), "404"),
        ],
    )
    def test_key_rights_and_unknown_models_pause_the_queue(
        self, status: int, payload: Any, code: str
    ) -> None:
        error = classify_failure(status, payload)
        assert isinstance(error, AccountError)
        assert error.remote_code == code

    @pytest.mark.parametrize(
        "payload",
        [
            _envelope("Maximum file size exceeded", 400),
            _envelope("Invalid or unsupported audio file.", 400),
            None,
        ],
    )
    def test_a_bad_request_refuses_this_input(self, payload: Any) -> None:
        error = classify_failure(400, payload, request_id="r-9")
        assert isinstance(error, RemoteRejectedError)
        assert error.request_id == "r-9"
        assert error.message == (error_of(payload)[1] or "HTTP 400")

    def test_retry_after_in_seconds_only(self) -> None:
        assert retry_after("3") == 3.0
        assert retry_after(" 1.5 ") == 1.5
        assert retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None
        assert retry_after("-1") is None
        assert retry_after(None) is None


class TestUploadCap:
    def test_chunks_of_the_longest_length_fit_under_the_cap(self) -> None:
        """16 kHz mono 16-bit is the most a chunk's FLAC can take per second."""
        cap_mb = 25.0
        assert upload_chunk_max_s(cap_mb) * 16000 * 2 < cap_mb * 1024 * 1024
        assert upload_chunk_max_s(cap_mb) > 300  # vLLM's default cap never shortens the usual chunks
        assert upload_chunk_max_s(0.5) < 16.5
        assert upload_max_bytes(1.0) < 1024 * 1024
