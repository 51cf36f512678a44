"""Probing, measuring, splitting and re-encoding audio with PyAV (the FFmpeg libraries in its wheel).

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

Time inside this module is the time of the decoded, resampled 16 kHz mono signal: spans and chunk
lengths count samples actually decoded, so :func:`measure_energy` and :func:`encode_chunks` agree to
the sample however odd the source's timestamps are.

Codes raised as :class:`~dropscribe.core.errors.InputRejectedError`:

- ``not_audio``: FFmpeg cannot open or parse the file (text, garbage, empty, a playlist, an image).
- ``no_audio_stream``: a real media file without any audio stream (a silent video).
- ``unsupported_codec``: an audio stream this FFmpeg build has no decoder for.
- ``corrupt_audio``: the audio stream breaks while decoding, or nothing in it decodes.
- ``truncated_audio``: a container that states its exact length (FLAC, AIFF, MP4) ends well before it.
"""

from __future__ import annotations

import array
import contextlib
import errno
import functools
import math
import operator
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, cast

import av
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.stream import Stream

from dropscribe.adapters.files import fsync_dir
from dropscribe.core.errors import InputRejectedError, ShareUnavailableError

#: Rate and layout of everything this module decodes to and encodes.
SAMPLE_RATE = 16000

#: Demuxers allowed to parse an input: audio formats and the usual recorder/camera containers.
#: Names as FFmpeg spells them; "mov" also covers mp4/m4a/3gp, "matroska" covers webm.
DEMUXERS: tuple[str, ...] = (
    "aac", "ac3", "aiff", "amr", "amrnb", "amrwb", "ape", "asf", "au", "avi", "caf", "dsf", "dts",
    "dtshd", "eac3", "flac", "flv", "gsm", "loas", "matroska", "mlp", "mov", "mp3", "mpc", "mpc8",
    "mpeg", "mpegts", "ogg", "tak", "truehd", "tta", "voc", "w64", "wav", "wv", "xwma",
)  # fmt: skip

#: Container names (parts of ``container.format.name``) that DashScope's sync API takes as they are.
ACCEPTED_FORMATS: frozenset[str] = frozenset(
    {"aac", "amr", "flac", "mp3", "ogg", "wav", "matroska", "webm", "asf", "mov", "mp4", "m4a",
     "aiff", "avi", "flv", "mpeg"}
)  # fmt: skip

#: Audio codecs (FFmpeg canonical names) DashScope is known to decode inside those containers;
#: anything else is re-encoded, which costs little and avoids a rejected request.
ACCEPTED_CODECS: frozenset[str] = frozenset(
    {"aac", "mp3", "mp2", "flac", "opus", "vorbis", "pcm_s16le", "pcm_s16be", "pcm_s24le",
     "pcm_u8", "pcm_alaw", "pcm_mulaw", "amr_nb", "amr_wb", "wmav1", "wmav2"}
)  # fmt: skip

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

# Formats whose header states the exact number of samples; a shortfall there means a cut-off file.
# Left out on purpose: MP3 (without a Xing header the length is a bitrate guess) and formats whose
# stated length FFmpeg already derives from the file size.
_EXACT_LENGTH_FORMATS = frozenset({"flac", "aiff", "mov"})
_TRUNCATION_SLACK_S = 1.0
_TRUNCATION_SLACK_RATIO = 0.05

# A few damaged packets are normal in field recordings and are skipped; a stream that is mostly
# damage is not worth sending.
_MAX_DAMAGED_PACKETS = 50

_READ_BUFFER = 1 << 16
_FLAC_FRAME = 4096


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


def probe(source: BinaryIO | Path) -> Probe:
    """Identify a file and find its length.

    Duration: the container's if it states one, else the audio stream's, else the decoded length.

    Raises:
        InputRejectedError: ``not_audio``, ``no_audio_stream``, ``unsupported_codec``, ``corrupt_audio``.
        ShareUnavailableError: Reading the file failed (the share went away, an I/O error).
    """
    with _open_input(source) as (container, reader):
        _raise_read_failure(reader)
        audio, context = _audio_stream(container)

        duration_s: float | None = None
        stream_s = _stream_seconds(audio)
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
    if "wav" in info.format_name.split(","):
        _check_riff(source)
    return info


def measure_energy(source: BinaryIO | Path, window_s: float = 0.1) -> tuple[list[float], float]:
    """RMS energy of the 16 kHz mono signal per ``window_s`` window, and the decoded duration.

    Samples are scaled to full scale 1.0; the last window may be shorter than the others. Memory stays
    at one decoded frame plus the list of energies, whatever the file's length.

    Raises:
        InputRejectedError: As :func:`probe`, plus ``truncated_audio``.
        ShareUnavailableError: Reading the file failed.
    """
    window = round(window_s * SAMPLE_RATE)
    if window < 1:
        raise ValueError(f"window_s must be at least one sample long, got {window_s!r}")
    energies: list[float] = []
    with _open_input(source) as (container, reader):
        decoder = _MonoDecoder(container, _audio_stream(container)[0], reader, "flt")
        pending = array.array("f")
        for block in decoder:
            pending.frombytes(block)
            whole = len(pending) - len(pending) % window
            for at in range(0, whole, window):
                part = pending[at : at + window]
                energies.append(math.sqrt(sum(map(operator.mul, part, part)) / window))
            del pending[:whole]
        if pending:
            energies.append(math.sqrt(sum(map(operator.mul, pending, pending)) / len(pending)))
        return energies, decoder.samples / SAMPLE_RATE


def encode_chunks(source: BinaryIO | Path, spans: Sequence[tuple[float, float]], out_dir: Path) -> list[Path]:
    """Write each ``(start_s, end_s)`` span as ``chunk-NNNN.flac`` (16 kHz mono s16) in ``out_dir``.

    One sequential decode pass serves every span. Spans must be in order and must not overlap; audio
    between spans is skipped. Each file appears under its final name only once complete and synced;
    on failure the chunks written by this call are removed again.

    Raises:
        ValueError: Spans out of order, overlapping, negative, or starting after the audio ends.
        InputRejectedError: As :func:`measure_energy`.
        ShareUnavailableError: Reading the file failed.
        OSError: Writing to ``out_dir`` failed.
    """
    bounds = _sample_bounds(spans)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = [out_dir / f"chunk-{index:04d}.flac" for index in range(len(bounds))]
    written: list[Path] = []
    writer: _FlacWriter | None = None
    try:
        with _open_input(source) as (container, reader):
            decoder = _MonoDecoder(container, _audio_stream(container)[0], reader, "s16")
            index = 0
            pos = 0  # samples decoded before the current block
            for block in decoder:
                view = memoryview(block)
                size = len(view) // 2
                offset = 0  # samples of this block already used or skipped
                while offset < size and index < len(bounds):
                    start, end = bounds[index]
                    here = pos + offset
                    if here < start:
                        offset += min(start - here, size - offset)
                        continue
                    if writer is None:
                        writer = _FlacWriter(targets[index])
                    take = min(end - here, size - offset)
                    writer.write(view[offset * 2 : (offset + take) * 2])
                    offset += take
                    if pos + offset >= end:
                        written.append(writer.finish())
                        writer = None
                        index += 1
                pos += size
                if index == len(bounds):
                    break
            if index < len(bounds) and writer is not None and writer.samples:
                # The audio ended inside the last span: that span is simply shorter.
                written.append(writer.finish())
                writer = None
                index += 1
            if index < len(bounds):
                raise ValueError(
                    f"span {index} starts at {bounds[index][0] / SAMPLE_RATE:.3f} s, "
                    f"after the audio ends ({pos / SAMPLE_RATE:.3f} s)"
                )
    except BaseException:
        if writer is not None:
            writer.abandon()
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    fsync_dir(out_dir)
    return written


def transcode(source: BinaryIO | Path, out_path: Path) -> Path:
    """Re-encode the whole audio as 16 kHz mono FLAC at ``out_path`` (atomically).

    Raises:
        InputRejectedError: As :func:`measure_energy`.
        ShareUnavailableError: Reading the file failed.
        OSError: Writing ``out_path`` failed.
    """
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = _FlacWriter(out_path)
    try:
        with _open_input(source) as (container, reader):
            for block in _MonoDecoder(container, _audio_stream(container)[0], reader, "s16"):
                writer.write(memoryview(block))
        writer.finish()
    except BaseException:
        writer.abandon()
        raise
    fsync_dir(out_path.parent)
    return out_path


def is_sendable_as_is(info: Probe) -> bool:
    """True when DashScope's sync API takes the file's container and codec without re-encoding.

    Size and length limits are the caller's business.
    """
    return (
        info.has_audio
        and info.codec in ACCEPTED_CODECS
        and any(part in ACCEPTED_FORMATS for part in info.format_name.split(","))
    )


def mime_type(info: Probe) -> str:
    """MIME type for a ``data:`` URL carrying the file as it is."""
    parts = info.format_name.split(",")
    for name, audio_only, with_video in _MIME_TYPES:
        if name in parts:
            return with_video if info.has_video else audio_only
    return "application/octet-stream"


# --- opening -------------------------------------------------------------------------------------


class _Reader:
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


@functools.cache
def _input_options() -> dict[str, str]:
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
def _open_input(source: BinaryIO | Path) -> Iterator[tuple[InputContainer, _Reader]]:
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
        reader = _Reader(raw, size)
        try:
            container = av.open(
                reader,
                "r",
                container_options=_input_options(),
                metadata_errors="replace",
                buffer_size=_READ_BUFFER,
            )
        except Exception as exc:
            mapped = _translate(exc, reader, "not_audio", "not a readable audio or video file")
            if mapped is None:
                raise
            raise mapped from exc
        stack.callback(container.close)
        yield container, reader


def _translate(exc: Exception, reader: _Reader, code: str, what: str) -> Exception | None:
    """The service's own error for a failure inside PyAV, without file names; None to re-raise."""
    if reader.failure is not None:
        return ShareUnavailableError(f"cannot read input: {reader.failure.strerror}")
    if isinstance(exc, av.FFmpegError):
        return InputRejectedError(code, f"{what} ({exc.strerror or type(exc).__name__})")
    if isinstance(exc, ValueError | RuntimeError | OSError | EOFError):
        # PyAV re-raises what FFmpeg's callbacks raised, and reports some parse failures this way.
        return InputRejectedError(code, f"{what} ({type(exc).__name__})")
    return None


def _raise_read_failure(reader: _Reader) -> None:
    if reader.failure is not None:
        raise ShareUnavailableError(f"cannot read input: {reader.failure.strerror}")


def _audio_stream(container: InputContainer) -> tuple[AudioStream, AudioCodecContext]:
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


def _codec_id_name(stream: Stream) -> str:
    with contextlib.suppress(Exception):
        return str(stream.codec.canonical_name)
    return "unknown"


# --- decoding ------------------------------------------------------------------------------------


class _MonoDecoder:
    """Iterate over the audio stream as 16 kHz mono PCM byte blocks of ``sample_format``.

    Damaged packets are skipped and counted; a stream that is mostly damage, or that ends well before
    its container says it should, is rejected at the end.
    """

    def __init__(
        self, container: InputContainer, stream: AudioStream, reader: _Reader, sample_format: str
    ) -> None:
        self._container = container
        self._stream = stream
        self._reader = reader
        self._format = sample_format
        self._bytes_per_sample = av.AudioFormat(sample_format).bytes
        self.samples = 0
        self.damaged = 0
        self.packets = 0

    def __iter__(self) -> Iterator[bytes]:
        resampler: AudioResampler | None = None
        source_shape: tuple[str, str, int] | None = None
        try:
            for packet in self._container.demux(self._stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    if isinstance(exc, av.error.EOFError):
                        break
                    self._damaged(exc)
                    continue
                self.packets += 1
                for frame in frames:
                    shape = (frame.format.name, frame.layout.name, frame.sample_rate)
                    if resampler is None or shape != source_shape:
                        # Rate or layout changed mid-stream (spliced recordings): drain the old
                        # resampler and start a new one, keeping the timeline continuous.
                        if resampler is not None:
                            yield from self._drain(resampler, None)
                        resampler = av.AudioResampler(format=self._format, layout="mono", rate=SAMPLE_RATE)
                        source_shape = shape
                    yield from self._drain(resampler, frame)
            if resampler is not None:
                yield from self._drain(resampler, None)
        except Exception as exc:
            at = self.samples / SAMPLE_RATE
            mapped = _translate(
                exc, self._reader, "corrupt_audio", f"the audio could not be read past {at:.1f} s"
            )
            if mapped is None:
                raise
            raise mapped from exc
        # FFmpeg may take a failed read for the end of the file; a short transcript must not follow.
        _raise_read_failure(self._reader)
        self._check_complete()

    def _drain(self, resampler: AudioResampler, frame: AudioFrame | None) -> Iterator[bytes]:
        for out in resampler.resample(frame):
            count = out.samples
            if count:
                self.samples += count
                yield bytes(memoryview(out.planes[0])[: count * self._bytes_per_sample])

    def _damaged(self, exc: av.FFmpegError) -> None:
        self.damaged += 1
        if self.damaged > _MAX_DAMAGED_PACKETS and self.damaged > self.packets:
            at = self.samples / SAMPLE_RATE
            raise InputRejectedError(
                "corrupt_audio",
                f"the audio stream is damaged: {self.damaged} packets failed to decode by "
                f"{at:.1f} s ({exc.strerror or type(exc).__name__})",
            )

    def _check_complete(self) -> None:
        if self.samples == 0:
            if self.damaged:
                raise InputRejectedError(
                    "corrupt_audio", f"none of the audio decodes ({self.damaged} damaged packets)"
                )
            raise InputRejectedError("not_audio", "the audio stream holds no sound")
        declared = _stream_seconds(self._stream)
        parts = set(str(self._container.format.name).split(","))
        if declared is None or not parts & _EXACT_LENGTH_FORMATS:
            return
        decoded = self.samples / SAMPLE_RATE
        if decoded < declared - max(_TRUNCATION_SLACK_S, declared * _TRUNCATION_SLACK_RATIO):
            raise InputRejectedError(
                "truncated_audio",
                f"the file states {declared:.1f} s of audio but ends after {decoded:.1f} s",
            )


def _stream_seconds(stream: Stream) -> float | None:
    if stream.duration is None or stream.duration <= 0 or not stream.time_base:
        return None
    return float(stream.duration * stream.time_base)


def _decoded_seconds(
    container: InputContainer, stream: AudioStream, context: AudioCodecContext, reader: _Reader
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
        mapped = _translate(exc, reader, "corrupt_audio", "the audio could not be read")
        if mapped is None:
            raise
        raise mapped from exc
    _raise_read_failure(reader)
    if samples == 0 and damaged:
        raise InputRejectedError("corrupt_audio", f"none of the audio decodes ({damaged} damaged packets)")
    return float(samples / rate)


# --- encoding ------------------------------------------------------------------------------------


class _FlacWriter:
    """One 16 kHz mono s16 FLAC file, written under a temporary name and renamed when complete."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.samples = 0
        self._tmp = target.with_name(f".{target.name}.tmp")
        self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in finish() or abandon()
        try:
            self._container = av.open(self._file, "w", format="flac")
            self._stream = self._container.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
            self._stream.codec_context.format = "s16"
            self._stream.codec_context.open()
            self._frame_samples = self._stream.codec_context.frame_size or _FLAC_FRAME
        except BaseException:
            self._file.close()
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            raise
        self._pending = bytearray()

    def write(self, pcm: memoryview) -> None:
        self._pending += pcm
        frame_bytes = self._frame_samples * 2
        if len(self._pending) < frame_bytes:
            return
        whole = len(self._pending) - len(self._pending) % frame_bytes
        for at in range(0, whole, frame_bytes):
            self._encode(self._pending[at : at + frame_bytes])
        del self._pending[:whole]

    def finish(self) -> Path:
        if self._pending:
            self._encode(self._pending)
            self._pending = bytearray()
        self._container.mux(self._stream.encode(None))
        self._container.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.target)
        return self.target

    def abandon(self) -> None:
        with contextlib.suppress(Exception):
            self._container.close()
        self._file.close()
        with contextlib.suppress(OSError):
            self._tmp.unlink()

    def _encode(self, pcm: bytes | bytearray) -> None:
        count = len(pcm) // 2
        frame = av.AudioFrame(format="s16", layout="mono", samples=count)
        frame.planes[0].update(bytes(pcm))
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self.samples
        frame.time_base = Fraction(1, SAMPLE_RATE)
        self.samples += count
        self._container.mux(self._stream.encode(frame))


def _sample_bounds(spans: Sequence[tuple[float, float]]) -> list[tuple[int, int]]:
    bounds: list[tuple[int, int]] = []
    previous_end = 0
    for index, (start_s, end_s) in enumerate(spans):
        start = round(start_s * SAMPLE_RATE)
        end = round(end_s * SAMPLE_RATE)
        if start < 0 or end <= start:
            raise ValueError(f"span {index} ({start_s}, {end_s}) is empty or negative")
        if start < previous_end:
            raise ValueError(f"span {index} ({start_s}, {end_s}) overlaps the one before")
        bounds.append((start, end))
        previous_end = end
    return bounds
