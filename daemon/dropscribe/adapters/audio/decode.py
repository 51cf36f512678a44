"""Decoding the audio stream of an opened input to mono PCM at one rate, with damage accounted for.

Time downstream of this module is the time of the decoded, resampled signal: spans and chunk lengths
count samples actually decoded, so measuring and splitting agree to the sample however odd the
source's timestamps are.
"""

from __future__ import annotations

from collections.abc import Iterator

import av
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import InputContainer

from dropscribe.adapters.audio.opening import GuardedReader, raise_read_failure, stream_seconds, translate
from dropscribe.core.errors import InputRejectedError

#: The rate audio is analysed at (energy windows, chunk planning).
SAMPLE_RATE = 16000

# Formats whose header states the exact number of samples; a shortfall there means a cut-off file.
# Left out on purpose: MP3 (without a Xing header the length is a bitrate guess) and formats whose
# stated length FFmpeg already derives from the file size.
_EXACT_LENGTH_FORMATS = frozenset({"flac", "aiff", "mov"})
_TRUNCATION_SLACK_S = 1.0
_TRUNCATION_SLACK_RATIO = 0.05

# A few damaged packets are normal in field recordings and are skipped; a stream that is mostly
# damage is not worth sending.
_MAX_DAMAGED_PACKETS = 50


class MonoDecoder:
    """Iterate over the audio stream as mono PCM byte blocks of ``sample_format`` at ``rate``.

    Damaged packets are skipped and counted; a stream that is mostly damage, or that ends well before
    its container says it should, is rejected at the end. ``samples`` counts what was yielded.
    """

    def __init__(
        self,
        container: InputContainer,
        stream: AudioStream,
        reader: GuardedReader,
        sample_format: str,
        rate: int = SAMPLE_RATE,
    ) -> None:
        self._container = container
        self._stream = stream
        self._reader = reader
        self._format = sample_format
        self._rate = rate
        self._bytes_per_sample = av.AudioFormat(sample_format).bytes
        self.samples = 0
        self.damaged = 0
        self.packets = 0

    def __iter__(self) -> Iterator[bytes]:
        resampler: AudioResampler | None = None
        source_shape: tuple[str, str, int] | None = None
        try:
            for packet in self._container.demux(self._stream):
                if self._reader.interrupted is not None:
                    # swallowed by FFmpeg's read callback, which then goes on reading: stop here
                    raise self._reader.interrupted
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
                        resampler = av.AudioResampler(format=self._format, layout="mono", rate=self._rate)
                        source_shape = shape
                    yield from self._drain(resampler, frame)
            if resampler is not None:
                yield from self._drain(resampler, None)
        except Exception as exc:
            at = self.samples / self._rate
            what = f"the audio could not be read past {at:.1f} s"
            mapped = translate(exc, self._reader, "corrupt_audio", what)
            if mapped is None:
                raise
            raise mapped from exc
        # FFmpeg may take a failed read for the end of the file; a short transcript must not follow.
        raise_read_failure(self._reader)
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
            at = self.samples / self._rate
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
        declared = stream_seconds(self._stream)
        parts = set(str(self._container.format.name).split(","))
        if declared is None or not parts & _EXACT_LENGTH_FORMATS:
            return
        decoded = self.samples / self._rate
        if decoded < declared - max(_TRUNCATION_SLACK_S, declared * _TRUNCATION_SLACK_RATIO):
            raise InputRejectedError(
                "truncated_audio",
                f"the file states {declared:.1f} s of audio but ends after {decoded:.1f} s",
            )
