"""Whether a refusal was about the file's format, so that one re-encoded send may still succeed.

The documented format lists are a promise about what a backend decodes, not a proof: a container on
the list can hold a codec variant the backend's decoder chokes on, and the lists change. A file the
backend refuses for its format or codec while it was sent as it is gets one more chance as 16 kHz mono
FLAC, which every backend decodes; anything else it refuses stays refused. A refusal is not billed,
so the second send costs nothing extra. Pure: the error's parts in, a decision out.
"""

from __future__ import annotations

__all__ = [
    "FORMAT_REFUSAL_CODES",
    "is_format_refusal",
    "refused_twice_message",
    "retry_reencoded",
]

#: DashScope codes that always mean "this format or codec is not decoded here".
FORMAT_REFUSAL_CODES = frozenset({"BadRequest.UnsupportedFileFormat"})

# The inspection code also covers a missing OSS header; only its media-format wording is about the file.
_INSPECTION_CODE = "InvalidParameter.DataInspection"

# OpenAI-compatible servers put the status (vLLM) or an error type in ``code``; the message says what
# went wrong, in the words of the server's audio loader.
_FORMAT_WORDS = (
    "decod",
    "unsupported audio",
    "unsupported file",
    "audio format",
    "file format",
    "media format",
    "format not recognised",
    "format not recognized",
    "unrecognized format",
    "invalid audio",
    "could not read audio",
    "error opening",
)


def is_format_refusal(code: str | None, message: str, status: int | None = None) -> bool:
    """Whether a refusal with this code, message (and HTTP status, when known) is about the format.

    415 "unsupported media type" is a format refusal, except DashScope's download failure, which
    shares that status.
    """
    code = code or ""
    if code in FORMAT_REFUSAL_CODES:
        return True
    lowered = message.lower()
    if code == _INSPECTION_CODE:
        return "media format" in lowered
    if code == "BadRequest.InputDownloadFailed":
        return False
    if status == 415 or code == "415":
        return True
    return any(words in lowered for words in _FORMAT_WORDS)


def retry_reencoded(code: str | None, message: str, *, sent_as_is: bool, status: int | None = None) -> bool:
    """Whether a refused send earns one more send re-encoded: only bytes that went as they were."""
    return sent_as_is and is_format_refusal(code, message, status)


def refused_twice_message(first: str, second: str, encoding: str) -> str:
    """The failure's message when the re-encoded send was refused too: both refusals, in order."""
    return f"refused as it was ({first}), and again re-encoded to {encoding} ({second})"
