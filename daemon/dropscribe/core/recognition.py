"""Values that describe a recognition request and its result, independent of any transport."""

from __future__ import annotations

from dataclasses import dataclass, field

from dropscribe.core.errors import TransientError

FILETRANS_MODEL = "qwen3-asr-flash-filetrans"


def is_filetrans_model(model: str) -> bool:
    """True for the asynchronous file-transcription family."""
    return "filetrans" in model


def accepts_options(model: str) -> bool:
    """qwen-audio-asr takes no context and no asr_options; the qwen3 family does."""
    return not model.startswith("qwen-audio-asr")


@dataclass(frozen=True)
class AsrOptions:
    """What the user asked for: ``language`` None means auto-detect; ``context`` may be empty."""

    language: str | None = None
    enable_itn: bool = False
    context: str = ""


@dataclass(frozen=True)
class Sentence:
    """A timed piece of transcript, in seconds from the start of the whole source."""

    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class InlineAudio:
    """Audio that goes inside the request as a ``data:`` URL, read from ``path`` while the request is
    sent: no worker holds the encoded text (4/3 of the audio) or a body built from it.

    ``path`` is a file of ``size`` bytes that stays as it is until its answer is journaled (a staged
    chunk or re-encoding, never a user's file, which could change between hashing and sending).
    """

    path: str
    content_type: str
    size: int

    @property
    def url_prefix(self) -> str:
        return f"data:{self.content_type};base64,"

    @property
    def url_length(self) -> int:
        """Characters of the whole ``data:`` URL, without building it."""
        return len(self.url_prefix) + 4 * ((self.size + 2) // 3)


@dataclass(frozen=True)
class AsrResult:
    """One answer of the API: a sync reply, or a finished file-transcription task."""

    text: str
    language: str | None = None
    emotion: str | None = None
    request_id: str | None = None
    usage_seconds: float = 0.0
    sentences: tuple[Sentence, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class TaskState:
    """A file-transcription task as seen by one poll."""

    task_id: str
    status: str  # PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED, UNKNOWN
    request_id: str | None = None
    transcription_url: str | None = None
    code: str | None = None
    message: str | None = None
    usage_seconds: float = 0.0

    @property
    def finished(self) -> bool:
        return self.status in {"SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"}


class ResultExpiredError(TransientError):
    """Raised when a finished task's result file is gone (403/404 after its 24 h, or never there).

    Transient for the file, not for the task: the task id is useless now and the audio must be
    submitted again, so the service must forget the task id rather than retry the download.
    """
