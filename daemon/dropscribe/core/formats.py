"""Which audio a recognition backend takes as it is, and what everything else is re-encoded to.

Pure policy over the names a media probe reports (FFmpeg's container and codec names); the audio
adapters carry it out. Policies are keyed by backend type and way of sending: DashScope documents one
list for its sync models and another for file transcription (the sync list lost m4a and mp4 in 2026,
file transcription keeps them but has no aiff), and an OpenAI-compatible server brings its own.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DASHSCOPE",
    "FILETRANS",
    "OPENAI",
    "SYNC",
    "Encoding",
    "FormatPolicy",
    "format_parts",
    "format_policy",
    "mime_type",
    "policy_for",
]

#: The backend name of DashScope's Qwen3-ASR API.
DASHSCOPE = "dashscope"

#: The backend type of an OpenAI-compatible speech server (vLLM serving Qwen3-ASR).
OPENAI = "openai"

#: Ways of sending: one request per file or chunk, or one file-transcription task.
SYNC = "sync"
FILETRANS = "filetrans"


@dataclass(frozen=True)
class Encoding:
    """A mono audio format the service writes: FFmpeg's muxer and encoder names, rate and sample format.

    ``sample_format`` is a packed (interleaved) FFmpeg sample format such as ``s16``.
    """

    container: str
    codec: str
    sample_rate: int
    sample_format: str
    mime_type: str
    suffix: str


@dataclass(frozen=True)
class FormatPolicy:
    """What one backend accepts untouched, and what the rest becomes.

    ``containers`` are parts of FFmpeg's demuxer name (it may be a comma list such as
    ``mov,mp4,m4a,3gp,3g2,mj2``); ``codecs`` are FFmpeg canonical codec names. A file is sent as it
    is only when both its container and its codec are listed; re-encoding costs little and avoids a
    rejected request. ``transcode_to`` is what a whole file that cannot go as it is becomes;
    ``chunk_encoding`` is what the pieces of split long audio are written as.
    """

    backend: str
    containers: frozenset[str]
    codecs: frozenset[str]
    transcode_to: Encoding
    chunk_encoding: Encoding
    way: str = SYNC

    def takes_as_is(self, format_name: str, codec: str | None) -> bool:
        """True when the backend takes a file of this container and audio codec without re-encoding.

        Size and length limits are the caller's business.
        """
        return codec in self.codecs and any(part in self.containers for part in format_parts(format_name))


def format_parts(format_name: str) -> list[str]:
    """The names in FFmpeg's comma-separated demuxer name, in order."""
    return format_name.split(",")


#: 16 kHz mono FLAC: lossless, about half the size of WAV, and what the sync API decodes natively.
_FLAC_16K_MONO = Encoding(
    container="flac",
    codec="flac",
    sample_rate=16000,
    sample_format="s16",
    mime_type="audio/flac",
    suffix=".flac",
)

# FFmpeg's demuxer names for the documented lists: mkv is ``matroska``, wma/wmv are ``asf``, opus
# travels in ``ogg``, and m4a/mp4/mov are the one demuxer ``mov,mp4,m4a,3gp,3g2,mj2``.
_DASHSCOPE_SYNC_CONTAINERS = frozenset(
    {"aac", "amr", "avi", "aiff", "flac", "flv", "matroska", "mp3", "mpeg", "ogg", "wav", "webm", "asf"}
)
_DASHSCOPE_FILETRANS_CONTAINERS = frozenset(
    {"aac", "amr", "avi", "flac", "flv", "m4a", "matroska", "mov", "mp3", "mp4", "mpeg", "ogg", "wav",
     "webm", "asf"}
)  # fmt: skip

# Codecs DashScope is known to decode inside those containers.
_DASHSCOPE_CODECS = frozenset(
    {"aac", "mp3", "mp2", "flac", "opus", "vorbis", "pcm_s16le", "pcm_s16be", "pcm_s24le",
     "pcm_u8", "pcm_alaw", "pcm_mulaw", "amr_nb", "amr_wb", "wmav1", "wmav2"}
)  # fmt: skip

# What an OpenAI-compatible server such as vLLM reliably decodes as it is (libsndfile and MP3 decoders):
# plain PCM WAV, FLAC, MP3 and Ogg Vorbis; everything else is sent as 16 kHz mono FLAC.
_OPENAI_CONTAINERS = frozenset({"wav", "flac", "mp3", "ogg"})
_OPENAI_CODECS = frozenset({"pcm_s16le", "flac", "mp3", "vorbis"})

_POLICIES: dict[tuple[str, str], FormatPolicy] = {
    (DASHSCOPE, SYNC): FormatPolicy(
        backend=DASHSCOPE,
        containers=_DASHSCOPE_SYNC_CONTAINERS,
        codecs=_DASHSCOPE_CODECS,
        transcode_to=_FLAC_16K_MONO,
        chunk_encoding=_FLAC_16K_MONO,
    ),
    (DASHSCOPE, FILETRANS): FormatPolicy(
        backend=DASHSCOPE,
        containers=_DASHSCOPE_FILETRANS_CONTAINERS,
        codecs=_DASHSCOPE_CODECS,
        transcode_to=_FLAC_16K_MONO,
        chunk_encoding=_FLAC_16K_MONO,
        way=FILETRANS,
    ),
    (OPENAI, SYNC): FormatPolicy(
        backend=OPENAI,
        containers=_OPENAI_CONTAINERS,
        codecs=_OPENAI_CODECS,
        transcode_to=_FLAC_16K_MONO,
        chunk_encoding=_FLAC_16K_MONO,
    ),
}


def format_policy(backend: str, way: str = SYNC) -> FormatPolicy:
    """The policy of ``backend`` for ``way``; raises ``ValueError`` for a pair that has none."""
    try:
        return _POLICIES[(backend, way)]
    except KeyError:
        raise ValueError(f"no format policy for backend {backend!r} sending by {way!r}") from None


def policy_for(policy: FormatPolicy, way: str) -> FormatPolicy:
    """The policy of ``policy``'s backend for ``way``; ``policy`` itself when that pair has none."""
    return _POLICIES.get((policy.backend, way), policy)


_MIME_TYPES: tuple[tuple[str, str, str], ...] = (
    # (container name, MIME for audio only, MIME when the file also carries video)
    ("wav", "audio/wav", "audio/wav"),
    ("mp3", "audio/mpeg", "audio/mpeg"),
    ("flac", "audio/flac", "audio/flac"),
    ("ogg", "audio/ogg", "video/ogg"),
    ("mov", "audio/mp4", "video/mp4"),
    ("aac", "audio/aac", "audio/aac"),
    ("amr", "audio/amr", "audio/amr"),
    ("matroska", "audio/webm", "video/webm"),
    ("asf", "audio/x-ms-wma", "video/x-ms-wmv"),
    ("aiff", "audio/aiff", "audio/aiff"),
    ("avi", "video/x-msvideo", "video/x-msvideo"),
    ("flv", "video/x-flv", "video/x-flv"),
    ("mpeg", "audio/mpeg", "video/mpeg"),
)


def mime_type(format_name: str, has_video: bool) -> str:
    """MIME type of a file sent as it is, from FFmpeg's demuxer name; the first match in the table wins."""
    parts = format_parts(format_name)
    for name, audio_only, with_video in _MIME_TYPES:
        if name in parts:
            return with_video if has_video else audio_only
    return "application/octet-stream"
