"""Writing audio the backend takes: a whole file re-encoded, or long audio split into chunks.

The target format is a :class:`~dropscribe.core.formats.Encoding` chosen by the backend's format
policy; when none is given, DashScope's (16 kHz mono FLAC). Every file appears under its final name
only once complete and synced.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
from av.audio.stream import AudioStream

from dropscribe.adapters.audio.decode import MonoDecoder
from dropscribe.adapters.audio.opening import audio_stream, open_input
from dropscribe.adapters.files import fsync_dir
from dropscribe.core.formats import DASHSCOPE, Encoding, format_policy

_DEFAULT_FRAME = 4096  # samples per frame when the encoder states no frame size


def encode_chunks(
    source: BinaryIO | Path,
    spans: Sequence[tuple[float, float]],
    out_dir: Path,
    encoding: Encoding | None = None,
) -> list[Path]:
    """Write each ``(start_s, end_s)`` span as ``chunk-NNNN<suffix>`` in ``out_dir``.

    One sequential decode pass serves every span. Spans must be in order and must not overlap; audio
    between spans is skipped. On failure the chunks written by this call are removed again.

    Raises:
        ValueError: Spans out of order, overlapping, negative, or starting after the audio ends.
        InputRejectedError: As :func:`~dropscribe.adapters.audio.measure.measure_energy`.
        ShareUnavailableError: Reading the file failed.
        OSError: Writing to ``out_dir`` failed.
    """
    encoding = encoding or format_policy(DASHSCOPE).chunk_encoding
    rate = encoding.sample_rate
    bounds = _sample_bounds(spans, rate)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = [out_dir / f"chunk-{index:04d}{encoding.suffix}" for index in range(len(bounds))]
    width = av.AudioFormat(encoding.sample_format).bytes
    written: list[Path] = []
    writer: MonoWriter | None = None
    try:
        with open_input(source) as (container, reader):
            decoder = MonoDecoder(container, audio_stream(container)[0], reader, encoding.sample_format, rate)
            index = 0
            pos = 0  # samples decoded before the current block
            for block in decoder:
                view = memoryview(block)
                size = len(view) // width
                offset = 0  # samples of this block already used or skipped
                while offset < size and index < len(bounds):
                    start, end = bounds[index]
                    here = pos + offset
                    if here < start:
                        offset += min(start - here, size - offset)
                        continue
                    if writer is None:
                        writer = MonoWriter(targets[index], encoding)
                    take = min(end - here, size - offset)
                    writer.write(view[offset * width : (offset + take) * width])
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
                    f"span {index} starts at {bounds[index][0] / rate:.3f} s, "
                    f"after the audio ends ({pos / rate:.3f} s)"
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


def transcode(source: BinaryIO | Path, out_path: Path, encoding: Encoding | None = None) -> Path:
    """Re-encode the whole audio as ``encoding`` at ``out_path`` (atomically).

    Raises:
        InputRejectedError: As :func:`~dropscribe.adapters.audio.measure.measure_energy`.
        ShareUnavailableError: Reading the file failed.
        OSError: Writing ``out_path`` failed.
    """
    encoding = encoding or format_policy(DASHSCOPE).transcode_to
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = MonoWriter(out_path, encoding)
    try:
        with open_input(source) as (container, reader):
            stream = audio_stream(container)[0]
            for block in MonoDecoder(container, stream, reader, encoding.sample_format, encoding.sample_rate):
                writer.write(memoryview(block))
        writer.finish()
    except BaseException:
        writer.abandon()
        raise
    fsync_dir(out_path.parent)
    return out_path


class MonoWriter:
    """One mono audio file of ``encoding``, written under a temporary name and renamed when complete."""

    def __init__(self, target: Path, encoding: Encoding) -> None:
        self.target = target
        self.samples = 0
        self._encoding = encoding
        self._width = av.AudioFormat(encoding.sample_format).bytes
        self._tmp = target.with_name(f".{target.name}.tmp")
        self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in finish() or abandon()
        try:
            self._container = av.open(self._file, "w", format=encoding.container)
            stream = self._container.add_stream(encoding.codec, rate=encoding.sample_rate, layout="mono")
            if not isinstance(stream, AudioStream):
                raise ValueError(f"{encoding.codec!r} is not an audio encoder")
            self._stream = stream
            self._stream.codec_context.format = encoding.sample_format
            self._stream.codec_context.open()
            self._frame_samples = self._stream.codec_context.frame_size or _DEFAULT_FRAME
        except BaseException:
            self._file.close()
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            raise
        self._pending = bytearray()

    def write(self, pcm: memoryview) -> None:
        self._pending += pcm
        frame_bytes = self._frame_samples * self._width
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
        count = len(pcm) // self._width
        frame = av.AudioFrame(format=self._encoding.sample_format, layout="mono", samples=count)
        frame.planes[0].update(bytes(pcm))
        frame.sample_rate = self._encoding.sample_rate
        frame.pts = self.samples
        frame.time_base = Fraction(1, self._encoding.sample_rate)
        self.samples += count
        self._container.mux(self._stream.encode(frame))


def _sample_bounds(spans: Sequence[tuple[float, float]], rate: int) -> list[tuple[int, int]]:
    bounds: list[tuple[int, int]] = []
    previous_end = 0
    for index, (start_s, end_s) in enumerate(spans):
        start = round(start_s * rate)
        end = round(end_s * rate)
        if start < 0 or end <= start:
            raise ValueError(f"span {index} ({start_s}, {end_s}) is empty or negative")
        if start < previous_end:
            raise ValueError(f"span {index} ({start_s}, {end_s}) overlaps the one before")
        bounds.append((start, end))
        previous_end = end
    return bounds
