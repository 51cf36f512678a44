"""Getting the audio a request points at, and finding out what it is with PyAV."""

from __future__ import annotations

import base64
import binascii
import hashlib
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from typing import IO

import av
import httpx

_SPOOL_MAX_BYTES = 32 * 1024 * 1024
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class AudioInfo:
    """What PyAV found in a file."""

    duration_s: float
    format: str
    sample_rate: int
    channels: int
    language_tag: str | None = None  # a "language" metadata tag of the stream or container


class UndecodableAudioError(Exception):
    """Raised when the bytes are not a container PyAV can open, or hold no decodable audio stream."""


class FetchError(Exception):
    """Raised when an http(s) URL could not be downloaded."""


class TooLargeError(Exception):
    """Raised when a download exceeds the limit given to :func:`fetch_url`."""


@dataclass
class Blob:
    """Received audio bytes, possibly spooled to disk, with their digest."""

    file: IO[bytes]
    size: int
    sha256: str

    @classmethod
    def from_bytes(cls, data: bytes) -> Blob:
        file = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX_BYTES)  # noqa: SIM115 - owned by the Blob
        file.write(data)
        file.seek(0)
        return cls(file, len(data), hashlib.sha256(data).hexdigest())

    def read_all(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()


def decode_data_url(url: str) -> bytes:
    """The payload of a ``data:<mime>;base64,<b64>`` URL; raises ValueError when it is not one."""
    header, comma, payload = url.partition(",")
    if not comma or not header.startswith("data:") or not header.endswith(";base64"):
        raise ValueError("the audio data URL must look like data:<mime>;base64,<data>")
    try:
        # Line breaks are common in hand-made base64; anything else outside the alphabet is an error.
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"the base64 audio data cannot be decoded: {exc}") from exc


def fetch_url(url: str, *, limit: int, timeout_s: float = 30.0) -> Blob:
    """Download ``url``, reading at most ``limit`` bytes before giving up with :class:`TooLargeError`."""
    file = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX_BYTES)  # noqa: SIM115 - owned by the Blob
    digest = hashlib.sha256()
    size = 0
    try:
        with (
            httpx.Client(timeout=timeout_s, follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise FetchError(f"the audio URL answered HTTP {response.status_code}")
            for chunk in response.iter_bytes(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLargeError(f"the audio at the URL is larger than {limit} bytes")
                digest.update(chunk)
                file.write(chunk)
    except httpx.HTTPError as exc:
        file.close()
        raise FetchError(f"the audio URL could not be fetched: {type(exc).__name__}") from exc
    except (FetchError, TooLargeError):
        file.close()
        raise
    file.seek(0)
    return Blob(file, size, digest.hexdigest())


def probe_audio(source: IO[bytes], *, full_decode: bool) -> AudioInfo:
    """Open ``source`` with PyAV and measure its first audio stream.

    With ``full_decode`` the duration is the count of decoded samples, exact and proof that the whole
    stream decodes; without it the container's own duration is trusted (after decoding one frame), so
    that hours-long files are measured in milliseconds.
    """
    source.seek(0)
    try:
        with av.open(source, mode="r") as container:
            if not container.streams.audio:
                raise UndecodableAudioError("the file has no audio stream")
            stream = container.streams.audio[0]
            fmt = container.format.name.split(",")[0]
            sample_rate = int(stream.codec_context.sample_rate or 0)
            channels = int(stream.codec_context.channels or 1)
            language_tag = _metadata_value(stream.metadata, "language") or _metadata_value(
                container.metadata, "language"
            )
            declared = None if full_decode else _declared_duration(container, stream)
        if declared is None:
            source.seek(0)
            with av.open(source, mode="r") as again:
                duration = _decoded_duration(again, again.streams.audio[0])
        else:
            duration = declared
    except av.FFmpegError as exc:
        raise UndecodableAudioError(f"PyAV cannot read the file: {exc}") from exc
    return AudioInfo(
        duration_s=duration,
        format=fmt,
        sample_rate=sample_rate,
        channels=channels,
        language_tag=language_tag,
    )


def _metadata_value(metadata: dict[str, str], name: str) -> str | None:
    # Vorbis comments keep the writer's case ("LANGUAGE"); Matroska and ID3 come back lower-case.
    for key, value in metadata.items():
        if key.lower() == name and value:
            return value
    return None


def _decoded_duration(container: av.container.InputContainer, stream: av.AudioStream) -> float:
    total = Fraction(0)
    frames = 0
    try:
        for frame in container.decode(stream):
            frames += 1
            total += Fraction(frame.samples, frame.sample_rate or 1)
    except av.FFmpegError:
        # A damaged tail is common in real uploads; what decoded before it still counts.
        if frames == 0:
            raise
    if frames == 0:
        raise UndecodableAudioError("no audio frame could be decoded")
    return float(total)


def _declared_duration(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    # Proves at least one frame decodes before trusting the header.
    for _frame in container.decode(stream):
        break
    else:
        raise UndecodableAudioError("no audio frame could be decoded")
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None
