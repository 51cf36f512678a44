"""Opening untrusted media with PyAV (the FFmpeg libraries in its wheel), and nothing but audio.

Inputs come from a shared drop folder, so every file is treated as hostile:

- The service opens the file itself (``O_NOFOLLOW``, see :mod:`dropscribe.adapters.files`) and hands
  over the file object; FFmpeg only ever reads through that object, never by name, so names such as
  ``concat:a|b`` or ``subfile,,...`` mean nothing here.
- Only the demuxers in :data:`DEMUXERS` may parse the file. Playlist and indirection demuxers (``hls``,
  ``concat``, ``dash``, ``image2``, ``tee``...) are refused, so a playlist dressed up as audio can never
  point FFmpeg at ``/etc/...`` or a URL. FFmpeg copies the list into nested demuxers it opens itself
  (the AVI GAB2 subtitle case).
- ``protocol_whitelist`` names no protocol at all, so any nested open that slips past the demuxer list
  fails before it reaches the filesystem or the network.
- ``codec_whitelist`` holds audio decoders only: stream analysis never runs a video or subtitle
  decoder on untrusted data.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.stream import Stream

from dropscribe.core.errors import InputRejectedError, ShareUnavailableError

#: Demuxers allowed to parse an input: audio formats and the usual recorder/camera containers.
#: Names as FFmpeg spells them; "mov" also covers mp4/m4a/3gp, "matroska" covers webm.
DEMUXERS: tuple[str, ...] = (
    "aac", "ac3", "aiff", "amr", "amrnb", "amrwb", "ape", "asf", "au", "avi", "caf", "dsf", "dts",
    "dtshd", "eac3", "flac", "flv", "gsm", "loas", "matroska", "mlp", "mov", "mp3", "mpc", "mpc8",
    "mpeg", "mpegts", "ogg", "tak", "truehd", "tta", "voc", "w64", "wav", "wv", "xwma",
)  # fmt: skip

_READ_BUFFER = 1 << 16


class GuardedReader:
    """The caller's file object as FFmpeg sees it: read and seek only, with I/O failures recorded.

    PyAV re-raises whatever the file object raised, and FFmpeg seeking before the start of a
    malformed file is a parse failure, not an I/O one; so seeks out of range return an FFmpeg error
    code instead of raising, and real read or seek errors are kept in ``failure`` for the caller to
    tell the two apart. There is no ``name`` (relative references cannot be resolved against the
    real path) and no ``close`` (PyAV must not close the caller's file).
    """

    def __init__(self, raw: BinaryIO, size: int) -> None:
        self._raw = raw
        self._size = size
        self.failure: OSError | None = None
        # PyAV's read callback reports what is not an Exception (Ctrl-C) as "ignored" and goes on as if
        # the file had ended: kept here so the caller raises it instead of finishing a shorter audio
        self.interrupted: BaseException | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._raw.read(size)
        except OSError as exc:
            self.failure = exc
            raise
        except BaseException as exc:
            self.interrupted = exc
            raise
        return data or b""

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            target = offset
        elif whence == os.SEEK_CUR:
            target = self._raw.tell() + offset
        elif whence == os.SEEK_END:
            target = self._size + offset
        else:
            return -errno.EINVAL
        if target < 0:
            return -errno.EINVAL
        try:
            return self._raw.seek(target)
        except OSError as exc:
            self.failure = exc
            raise
        except BaseException as exc:
            self.interrupted = exc
            raise


@functools.cache
def input_options() -> dict[str, str]:
    """The FFmpeg options that confine parsing to the listed demuxers and audio decoders."""
    audio_decoders = []
    for name in sorted(av.codecs_available):
        try:
            codec = av.Codec(name, "r")
        except (av.FFmpegError, ValueError):
            continue
        if codec.type == "audio":
            audio_decoders.append(name)
    return {
        "format_whitelist": ",".join(DEMUXERS),
        # A name no protocol has: nested opens fail whatever demuxer asks for them.
        "protocol_whitelist": "none",
        "codec_whitelist": ",".join(audio_decoders),
    }


@contextlib.contextmanager
def open_input(source: BinaryIO | Path) -> Iterator[tuple[InputContainer, GuardedReader]]:
    """Open ``source`` under :func:`input_options`; closes the container (never the caller's file)."""
    with contextlib.ExitStack() as stack:
        if isinstance(source, Path):
            try:
                raw: BinaryIO = stack.enter_context(source.open("rb"))
            except OSError as exc:
                raise ShareUnavailableError(f"cannot open input: {exc.strerror}") from exc
        else:
            raw = source
        try:
            size = raw.seek(0, os.SEEK_END)
            raw.seek(0)
        except OSError as exc:
            raise ShareUnavailableError(f"cannot read input: {exc.strerror}") from exc
        if size == 0:
            raise InputRejectedError("not_audio", "the file is empty")
        reader = GuardedReader(raw, size)
        try:
            container = av.open(
                reader,
                "r",
                container_options=input_options(),
                metadata_errors="replace",
                buffer_size=_READ_BUFFER,
            )
        except Exception as exc:
            mapped = translate(exc, reader, "not_audio", "not a readable audio or video file")
            if mapped is None:
                raise
            raise mapped from exc
        stack.callback(container.close)
        yield container, reader


def translate(exc: Exception, reader: GuardedReader, code: str, what: str) -> Exception | None:
    """The service's own error for a failure inside PyAV, without file names; None to re-raise."""
    if reader.interrupted is not None:
        raise reader.interrupted
    if reader.failure is not None:
        return ShareUnavailableError(f"cannot read input: {reader.failure.strerror}")
    if isinstance(exc, av.FFmpegError):
        return InputRejectedError(code, f"{what} ({exc.strerror or type(exc).__name__})")
    if isinstance(exc, ValueError | RuntimeError | OSError | EOFError):
        # PyAV re-raises what FFmpeg's callbacks raised, and reports some parse failures this way.
        return InputRejectedError(code, f"{what} ({type(exc).__name__})")
    return None


def raise_read_failure(reader: GuardedReader) -> None:
    """Raise ``ShareUnavailableError`` if reading failed: FFmpeg may have taken it for the end; an
    interrupt swallowed on the way is raised again as it was."""
    if reader.interrupted is not None:
        raise reader.interrupted
    if reader.failure is not None:
        raise ShareUnavailableError(f"cannot read input: {reader.failure.strerror}")


def audio_stream(container: InputContainer) -> tuple[AudioStream, AudioCodecContext]:
    """The best audio stream and its decoder context, or the reason there is none."""
    stream = container.streams.best("audio")
    if not isinstance(stream, AudioStream):
        if any(s.type == "video" for s in container.streams):
            raise InputRejectedError("no_audio_stream", "the file has video but no audio track")
        raise InputRejectedError("not_audio", "the file holds no audio or video stream")
    # PyAV leaves the context out when this FFmpeg build has no decoder, whatever its stubs say.
    context = cast("AudioCodecContext | None", stream.codec_context)
    if context is None:
        raise InputRejectedError(
            "unsupported_codec", f"no decoder for the audio codec {_codec_id_name(stream)!r}"
        )
    return stream, context


def stream_seconds(stream: Stream) -> float | None:
    """The length the stream states, or None when it states none."""
    if stream.duration is None or stream.duration <= 0 or not stream.time_base:
        return None
    return float(stream.duration * stream.time_base)


def _codec_id_name(stream: Stream) -> str:
    with contextlib.suppress(Exception):
        return str(stream.codec.canonical_name)
    return "unknown"
