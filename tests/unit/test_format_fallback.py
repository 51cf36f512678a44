"""Which refusals are about the file's format, and so earn one re-encoded send."""

from __future__ import annotations

import pytest

from dropscribe.core.format_fallback import is_format_refusal, refused_twice_message, retry_reencoded

INSPECTION = "The media format is not supported or incorrect for the data inspection."


class TestDashScope:
    def test_unsupported_file_format_is_a_format_refusal(self) -> None:
        assert is_format_refusal(
            "BadRequest.UnsupportedFileFormat", "Input file format is not supported.", 415
        )

    def test_data_inspection_counts_only_when_it_speaks_of_the_media_format(self) -> None:
        assert is_format_refusal("InvalidParameter.DataInspection", INSPECTION, 400)
        assert not is_format_refusal(
            "InvalidParameter.DataInspection", "Input data may be inappropriate.", 400
        )

    @pytest.mark.parametrize(
        ("code", "message", "status"),
        [("BadRequest.InputDownloadFailed", "Failed to download the input file.", 415),
         ("DataInspectionFailed", "Input or output data may contain inappropriate content.", 400),
         ("InvalidParameter", "Required parameter(s) missing or invalid.", 400),
         ("BadRequest.TooLarge", "Payload Too Large.", 413),
         ("InvalidURL", "Invalid URL provided in your request.", 400)],
    )  # fmt: skip
    def test_other_refusals_are_not(self, code: str, message: str, status: int) -> None:
        assert not is_format_refusal(code, message, status)


class TestOpenAICompatible:
    @pytest.mark.parametrize(
        "message",
        ["Invalid or unsupported audio file.", "Error decoding audio: could not find codec parameters",
         "Format not recognised.", "Invalid file format. Supported formats: ['flac', 'mp3', 'wav']"],
    )  # fmt: skip
    def test_a_400_that_says_the_audio_cannot_be_decoded_is_a_format_refusal(self, message: str) -> None:
        """vLLM puts the status in ``code``; OpenAI itself puts an error type there."""
        assert is_format_refusal("400", message)
        assert is_format_refusal("invalid_request_error", message, 400)

    def test_a_415_is_a_format_refusal_whatever_it_says(self) -> None:
        assert is_format_refusal("415", "Unsupported Media Type")
        assert is_format_refusal(None, "", 415)

    @pytest.mark.parametrize(
        "message",
        ["Maximum file size exceeded", "Currently do not support verbose_json for Qwen/Qwen3-ASR-1.7B",
         "The model `x` does not exist.", "HTTP 400"],
    )  # fmt: skip
    def test_other_400s_are_not(self, message: str) -> None:
        assert not is_format_refusal("400", message)


class TestRetryReencoded:
    def test_only_bytes_sent_as_they_were_get_a_second_send(self) -> None:
        """A re-encoding the backend refuses is refused for good: no third send."""
        code, message = "BadRequest.UnsupportedFileFormat", "Input file format is not supported."
        assert retry_reencoded(code, message, sent_as_is=True)
        assert not retry_reencoded(code, message, sent_as_is=False)

    def test_a_refusal_for_something_else_gets_none(self) -> None:
        assert not retry_reencoded("InvalidParameter", "bad language", sent_as_is=True)

    def test_the_message_of_two_refusals_names_both_in_order(self) -> None:
        text = refused_twice_message("A: first", "B: second", "16 kHz mono FLAC")
        assert text == "refused as it was (A: first), and again re-encoded to 16 kHz mono FLAC (B: second)"
