"""What a media file is before any audio is decoded: container, codec, length, and whether it is cut.

Codes raised as :class:`~dropscribe.core.errors.InputRejectedError`:

- ``not_audio``: FFmpeg cannot open or parse the file (text, garbage, empty, a playlist, an image).
- ``no_audio_stream``: a real media file without any audio stream (a silent video).
- ``unsupported_codec``: an audio stream this FFmpeg build has no decoder for.
- ``corrupt_audio``: the audio stream breaks while decoding, or nothing in it decodes.
- ``truncated_audio``: a container that states its exact length (WAV, FLAC, AIFF, MP4) ends well
  before it (the last three while decoding, see :mod:`~dropscribe.adapters.audio.decode`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.stream import AudioStream
from av.container import InputContainer

from dropscribe.adapters.audio.opening import (
    GuardedReader,
    audio_stream,
    open_input,
    raise_read_failure,
    stream_seconds,
    translate,
)
from dropscribe.core import formats
from dropscribe.core.errors import InputRejectedError


@dataclass(frozen=True)
class Probe:
    """What FFmpeg says about a file before any audio is decoded.

    ``format_name`` is FFmpeg's demuxer name, possibly a comma list ("mov,mp4,m4a,3gp,3g2,mj2");
    ``codec`` is the canonical name of the audio codec ("aac", "mp3", "pcm_s16le"...).
    """

    format_name: str
    duration_s: float
    has_audio: bool
    has_video: bool
    codec: str | None
    sample_rate: int | None
    channels: int | None
    bit_rate: int | None


def probe(source: BinaryIO | Path) -> Probe:
    """Identify a file and find its length.

    Duration: the container's if it states one, else the audio stream's, else the decoded length.

    Raises:
        InputRejectedError: ``not_audio``, ``no_audio_stream``, ``unsupported_codec``, ``corrupt_audio``.
        ShareUnavailableError: Reading the file failed (the share went away, an I/O error).
    """
    with open_input(source) as (container, reader):
        raise_read_failure(reader)
        audio, context = audio_stream(container)

        duration_s: float | None = None
        stream_s = stream_seconds(audio)
        if container.duration is not None and container.duration > 0:
            duration_s = container.duration / av.time_base
        elif stream_s is not None:
            duration_s = stream_s
        else:
            duration_s = _decoded_seconds(container, audio, context, reader)

        info = Probe(
            format_name=str(container.format.name),
            duration_s=duration_s,
            has_audio=True,
            has_video=any(stream.type == "video" for stream in container.streams),
            codec=str(context.codec.canonical_name),
            sample_rate=int(context.sample_rate) or None,
            channels=int(context.channels) or None,
            bit_rate=int(container.bit_rate or context.bit_rate or 0) or None,
        )
    if "wav" in formats.format_parts(info.format_name):
        _check_riff(source)
    return info


def is_sendable_as_is(info: Probe, policy: formats.FormatPolicy) -> bool:
    """True when ``policy`` (a backend's, for one way of sending) takes the file's container and codec
    without re-encoding.

    The decision is :meth:`dropscribe.core.formats.FormatPolicy.takes_as_is`; size and length limits
    are the caller's business.
    """
    return info.has_audio and policy.takes_as_is(info.format_name, info.codec)


def mime_type(info: Probe) -> str:
    """MIME type for a ``data:`` URL or an upload carrying the file as it is."""
    return formats.mime_type(info.format_name, info.has_video)


_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # streaming writers leave these in RIFF headers


def _check_riff(source: BinaryIO | Path) -> None:
    """A WAV states its own length; one that ends before it is still being written, or was cut off.

    FFmpeg quietly clamps the length to what is there, so this is checked from the header itself.
    """
    if isinstance(source, Path):
        with source.open("rb") as handle:
            return _check_riff(handle)
    source.seek(0)
    head = source.read(65536)
    size = source.seek(0, os.SEEK_END)
    source.seek(0)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    riff_size = int.from_bytes(head[4:8], "little")
    offset = 12
    while offset + 8 <= len(head):
        chunk_id, chunk_size = (
            head[offset : offset + 4],
            int.from_bytes(head[offset + 4 : offset + 8], "little"),
        )
        if chunk_id == b"data":
            if chunk_size not in _UNKNOWN_SIZES and offset + 8 + chunk_size > size:
                raise InputRejectedError(
                    "truncated_audio",
                    f"the WAV header states {chunk_size} bytes of audio but the file holds "
                    f"{max(0, size - offset - 8)}",
                )
            return None
        offset += 8 + chunk_size + (chunk_size & 1)
    if riff_size not in _UNKNOWN_SIZES and size < 8 + riff_size - 1:
        raise InputRejectedError(
            "truncated_audio", f"the WAV header states {8 + riff_size} bytes but the file holds {size}"
        )
    return None


def _decoded_seconds(
    container: InputContainer, stream: AudioStream, context: AudioCodecContext, reader: GuardedReader
) -> float:
    """Length by decoding, for containers that state none (some Ogg and ADTS files)."""
    rate = context.sample_rate
    if not rate:
        raise InputRejectedError("corrupt_audio", "the audio stream has no sample rate")
    samples = 0
    damaged = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:
                damaged += 1
                continue
            samples += sum(frame.samples for frame in frames)
    except Exception as exc:
        mapped = translate(exc, reader, "corrupt_audio", "the audio could not be read")
        if mapped is None:
            raise
        raise mapped from exc
    raise_read_failure(reader)
    if samples == 0 and damaged:
        raise InputRejectedError("corrupt_audio", f"none of the audio decodes ({damaged} damaged packets)")
    return float(samples / rate)
