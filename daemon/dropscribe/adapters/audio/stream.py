"""Long audio split while it is decoded: one pass finds the pauses and writes each chunk as it is cut.

The loudness of every window is measured by FFmpeg's ``astats`` filter on the decoded signal, so the
pauses are found at C speed from the same samples that are encoded; a cut is decided as soon as the
audio reaches one chunk (plus the planner's look-ahead) past the previous cut, and the chunk is written
and handed out before the rest of the file is read. Memory holds one span of PCM, whatever the length.
"""

from __future__ import annotations

import math
from collections.abc import Container, Generator, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import structlog

from dropscribe.adapters.audio.decode import MonoDecoder
from dropscribe.adapters.audio.encode import MonoWriter
from dropscribe.adapters.audio.opening import audio_stream, open_input
from dropscribe.adapters.files import fsync_dir
from dropscribe.core.chunking import ChunkPlanner
from dropscribe.core.formats import Encoding

#: Length of one loudness window; the planner's unit of time.
WINDOW_S = 0.1

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class StreamedChunk:
    """One span of the plan, handed out once its audio has been read.

    ``path`` is the chunk written for it, or None when its index was in ``skip``; ``new`` tells a span
    decided by this pass from one passed in as already planned.
    """

    index: int
    start_s: float
    end_s: float
    path: Path | None
    new: bool


def stream_chunks(
    source: BinaryIO | Path,
    out_dir: Path,
    encoding: Encoding,
    chunk_max_s: float,
    *,
    planned: Sequence[tuple[float, float]] = (),
    skip: Container[int] = frozenset(),
    first_index: int = 0,
) -> Generator[StreamedChunk, None, None]:
    """Every span of the plan for ``source`` in order, each written as ``chunk-NNNN`` unless skipped.

    ``planned`` are spans decided earlier (a restart); the plan goes on from the end of the last one
    exactly as it would have. The generator reads no further than it must to hand out the next chunk,
    so a consumer that stops pulling holds the decoding (and the staging) where it is. Chunks are
    numbered from ``first_index`` (``planned`` included), which keeps a second plan's names apart.

    Raises:
        InputRejectedError: As :class:`~dropscribe.adapters.audio.decode.MonoDecoder`; a truncated or
            damaged stream is found only when the decoding reaches it.
        ShareUnavailableError: Reading the file failed.
        ValueError: ``planned`` spans that start after the audio ends.
        OSError: Writing to ``out_dir`` failed.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    splitter = _Splitter(out_dir, encoding, planned, skip, first_index)
    planner = ChunkPlanner(WINDOW_S, chunk_max_s, start_s=planned[-1][1] if planned else 0.0)
    rate = encoding.sample_rate
    with open_input(source) as (container, reader):
        decoder = MonoDecoder(container, audio_stream(container)[0], reader, encoding.sample_format, rate)
        meter = _Loudness(encoding.sample_format, rate)
        for block in decoder:
            splitter.add(block)
            for start, end in planner.feed(meter.push(block)):
                splitter.plan(start, end)
            yield from splitter.ready(final=False)
        planner.feed(meter.push(None))
        for start, end in planner.finish(decoder.samples / rate):
            splitter.plan(start, end)
        yield from splitter.ready(final=True)
    if splitter.pending():
        at = splitter.pending()[0]
        raise ValueError(f"span {at[0]} starts at {at[1]:.3f} s, after the audio ends")


class _Loudness:
    """RMS energy per window (full scale 1.0) of the PCM pushed in, computed by FFmpeg's astats."""

    def __init__(self, sample_format: str, rate: int) -> None:
        self._format = sample_format
        self._rate = rate
        self._pts = 0
        self._graph = av.filter.Graph()
        source = self._graph.add_abuffer(
            format=sample_format, sample_rate=rate, layout="mono", time_base=Fraction(1, rate)
        )
        windows = self._graph.add("asetnsamples", f"n={round(WINDOW_S * rate)}:p=0")
        stats = self._graph.add(
            "astats", "metadata=1:reset=1:measure_perchannel=none:measure_overall=RMS_level"
        )
        sink = self._graph.add("abuffersink")
        source.link_to(windows)
        windows.link_to(stats)
        stats.link_to(sink)
        self._graph.configure()
        self._width = av.AudioFormat(sample_format).bytes

    def push(self, pcm: bytes | None) -> list[float]:
        """Energies of the windows completed by ``pcm``; None flushes the last, shorter one."""
        if pcm is None:
            self._graph.push(None)
        else:
            count = len(pcm) // self._width
            frame = av.AudioFrame(format=self._format, layout="mono", samples=count)
            frame.planes[0].update(pcm)
            frame.sample_rate = self._rate
            frame.pts = self._pts
            frame.time_base = Fraction(1, self._rate)
            self._pts += count
            self._graph.push(frame)
        energies: list[float] = []
        while True:
            try:
                out = self._graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return energies
            level = float(out.metadata.get("lavfi.astats.Overall.RMS_level", "-inf"))
            energies.append(0.0 if math.isinf(level) or math.isnan(level) else 10.0 ** (level / 20.0))


class _Splitter:
    """PCM from the current span's start, written out span by span as the plan grows."""

    def __init__(
        self, out_dir: Path, encoding: Encoding, planned: Sequence[tuple[float, float]], skip: Container[int],
        first_index: int,
    ) -> None:  # fmt: skip
        self._out_dir = out_dir
        self._encoding = encoding
        self._skip = skip
        self._width = av.AudioFormat(encoding.sample_format).bytes
        self._spans: list[tuple[int, float, float, bool]] = [
            (i, a, b, False) for i, (a, b) in enumerate(planned, start=first_index)
        ]
        self._next = first_index + len(self._spans)
        self._buffer = bytearray()
        self._buffer_at = 0  # sample index of self._buffer[0]
        self._queue_at = 0  # spans before this one are handed out

    def add(self, pcm: bytes) -> None:
        self._buffer += pcm

    def plan(self, start: float, end: float) -> None:
        self._spans.append((self._next, start, end, True))
        self._next += 1

    def pending(self) -> list[tuple[int, float]]:
        return [(i, a) for i, a, _, _ in self._spans[self._queue_at :]]

    def ready(self, *, final: bool) -> Iterator[StreamedChunk]:
        rate = self._encoding.sample_rate
        decoded = self._buffer_at + len(self._buffer) // self._width
        while self._queue_at < len(self._spans):
            index, start_s, end_s, new = self._spans[self._queue_at]
            start, end = round(start_s * rate), round(end_s * rate)
            if end > decoded and not final:
                return
            if start >= decoded and final:
                return  # reported by the caller: planned beyond the audio
            path = None
            if index not in self._skip:
                path = self._write(index, start, min(end, decoded))
            self._drop_until(min(end, decoded))
            self._queue_at += 1
            log.info("chunk_encoded", chunk=index, start_s=round(start_s, 3), end_s=round(end_s, 3),
                     written=path is not None)  # fmt: skip
            yield StreamedChunk(index, start_s, end_s, path, new)

    def _write(self, index: int, start: int, end: int) -> Path:
        target = self._out_dir / f"chunk-{index:04d}{self._encoding.suffix}"
        writer = MonoWriter(target, self._encoding)
        try:
            lo = max(0, start - self._buffer_at) * self._width
            hi = (end - self._buffer_at) * self._width
            with memoryview(self._buffer) as view:  # released before the buffer is trimmed
                writer.write(view[lo:hi])
            writer.finish()
        except BaseException:
            writer.abandon()
            raise
        fsync_dir(self._out_dir)
        return target

    def _drop_until(self, sample: int) -> None:
        if sample > self._buffer_at:
            del self._buffer[: (sample - self._buffer_at) * self._width]
            self._buffer_at = sample
