"""Real media files for tests, made on the spot with PyAV (and espeak-ng for actual speech).

Every generator writes exactly one file and returns its path. Samples are built from one precomputed
second of waveform repeated, so even minutes of audio take milliseconds to synthesise; the encoders
are what cost time (FLAC and WAV are the cheapest for long files).

Formats (``fmt``) and what they produce:

=======  ==========================================  ==========================
fmt      container (as written)                       codec
=======  ==========================================  ==========================
wav      RIFF WAVE                                    PCM s16le
mp3      MPEG audio with Xing/LAME header             MP3 (LAME)
m4a      MP4 audio (``ipod`` muxer)                   AAC-LC
flac     native FLAC                                  FLAC
ogg      Ogg                                          Opus
opus     Ogg, ``.opus`` flavour                       Opus
aac      ADTS                                         AAC-LC
webm     WebM                                         Opus
aiff     AIFF                                         PCM s16be
=======  ==========================================  ==========================
"""

from __future__ import annotations

import array
import functools
import hashlib
import math
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av

FORMATS = ("wav", "mp3", "m4a", "flac", "ogg", "opus", "aac", "webm", "aiff")

# fmt -> (muxer, encoder)
_ENCODINGS: dict[str, tuple[str, str]] = {
    "wav": ("wav", "pcm_s16le"),
    "mp3": ("mp3", "libmp3lame"),
    "m4a": ("ipod", "aac"),
    "flac": ("flac", "flac"),
    "ogg": ("ogg", "libopus"),
    "opus": ("opus", "libopus"),
    "aac": ("adts", "aac"),
    "webm": ("webm", "libopus"),
    "aiff": ("aiff", "pcm_s16be"),
}

AMPLITUDE = 0.3
ESPEAK = "espeak-ng"
_BURST_FREQS = (220.0, 330.0, 440.0, 550.0)


def make_tone(
    path: Path,
    *,
    seconds: float,
    fmt: str,
    freq: float = 440.0,
    sample_rate: int = 16000,
    channels: int = 1,
) -> Path:
    """A steady sine tone of ``seconds`` at ``AMPLITUDE`` of full scale."""
    total = round(seconds * sample_rate)
    wave = _Wave(sample_rate, channels)
    _encode(path, fmt, wave.tone(freq, total), sample_rate, channels)
    return path


def make_speechlike(
    path: Path,
    seconds: float,
    fmt: str,
    gaps: Sequence[tuple[float, float]] | None = None,
    *,
    sample_rate: int = 16000,
    channels: int = 1,
) -> Path:
    """Tone bursts separated by digital silence at the given ``(start_s, end_s)`` gaps.

    Each burst between two gaps has its own pitch, so the file sounds (and measures) like phrases
    with pauses. Without ``gaps``: a 0.5 s pause ending every 5 s, like unhurried speech.
    """
    if gaps is None:
        gaps = [(t - 0.5, t) for t in _frange(5.0, seconds, 5.0)]
    total = round(seconds * sample_rate)
    bounds = sorted((max(0, round(a * sample_rate)), min(total, round(b * sample_rate))) for a, b in gaps)
    wave = _Wave(sample_rate, channels)

    def pieces() -> Iterator[bytes]:
        pos = 0
        burst = 0
        for gap_start, gap_end in bounds:
            if gap_start > pos:
                yield from wave.tone(_BURST_FREQS[burst % len(_BURST_FREQS)], gap_start - pos, pos)
                burst += 1
            if gap_end > max(gap_start, pos):
                yield from wave.silence(gap_end - max(gap_start, pos))
            pos = max(pos, gap_end)
        if total > pos:
            yield from wave.tone(_BURST_FREQS[burst % len(_BURST_FREQS)], total - pos, pos)

    _encode(path, fmt, pieces(), sample_rate, channels)
    return path


def make_noise(path: Path, seconds: float, *, sample_rate: int = 16000, seed: int = 7) -> Path:
    """Full-scale white noise as a mono WAV: no pause to cut at, and nothing a lossless codec can shrink."""
    rng = random.Random(seed)
    samples = int(seconds * sample_rate)
    blocks = (
        rng.randbytes(2 * min(sample_rate, samples - start)) for start in range(0, samples, sample_rate)
    )
    _encode(path, "wav", blocks, sample_rate, 1)
    return path


def make_video_without_audio(path: Path, *, seconds: float = 1.0, codec: str = "mpeg4") -> Path:
    """A tiny grey MP4 (or whatever ``path``'s suffix names) with a video stream and no audio."""
    rate = 10
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        assert isinstance(stream, av.VideoStream)
        stream.width = 64
        stream.height = 64
        stream.pix_fmt = "yuv420p"
        for index in range(max(1, round(seconds * rate))):
            frame = av.VideoFrame(64, 64, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([0x80]) * plane.buffer_size)
            frame.pts = index
            frame.time_base = Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@functools.cache
def espeak_available() -> bool:
    """True when espeak-ng is installed and runs; tests needing real speech skip otherwise."""
    if shutil.which(ESPEAK) is None:
        return False
    try:
        done = subprocess.run([ESPEAK, "--version"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def make_speech(path: Path, text: str, fmt: str, *, voice: str = "en") -> Path:
    """``text`` spoken by espeak-ng (22.05 kHz mono), stored as ``fmt``."""
    with tempfile.TemporaryDirectory(prefix="speech-") as tmp:
        wav = Path(tmp) / "speech.wav"
        # Text on stdin, so words starting with '-' are never read as options.
        subprocess.run(
            [ESPEAK, "-v", voice, "-w", str(wav), "--stdin"],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=60,
            check=True,
        )
        with av.open(str(wav)) as src:
            stream = src.streams.audio[0]
            rate = stream.codec_context.sample_rate
            channels = stream.codec_context.channels
            _encode(path, fmt, _decoded_s16(src, stream), rate, channels)
    return path


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Wave:
    """Interleaved s16 sample bytes, cut from one cached second of each waveform."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.frame_bytes = 2 * channels
        self._seconds: dict[float, bytes] = {}

    def _second(self, freq: float) -> bytes:
        cached = self._seconds.get(freq)
        if cached is None:
            step = 2.0 * math.pi * freq / self.sample_rate
            peak = AMPLITUDE * 32767
            mono = [round(peak * math.sin(step * i)) for i in range(self.sample_rate)]
            cached = array.array("h", [s for s in mono for _ in range(self.channels)]).tobytes()
            self._seconds[freq] = cached
        return cached

    def tone(self, freq: float, samples: int, phase_at: int = 0) -> Iterator[bytes]:
        # An integral frequency fits a whole number of cycles in one second, so the phase
        # carries on seamlessly from one second to the next and from `phase_at`.
        second = self._second(freq)
        pos = phase_at % self.sample_rate
        left = samples
        while left > 0:
            take = min(left, self.sample_rate - pos)
            yield second[pos * self.frame_bytes : (pos + take) * self.frame_bytes]
            left -= take
            pos = 0

    def silence(self, samples: int) -> Iterator[bytes]:
        zero = bytes(self.sample_rate * self.frame_bytes)
        left = samples
        while left > 0:
            take = min(left, self.sample_rate)
            yield zero[: take * self.frame_bytes]
            left -= take


def _encode(path: Path, fmt: str, pcm: Iterable[bytes], sample_rate: int, channels: int) -> None:
    """Encode interleaved s16 ``pcm`` blocks into ``path`` as ``fmt``."""
    try:
        muxer, encoder = _ENCODINGS[fmt]
    except KeyError:
        raise ValueError(f"unknown fmt {fmt!r}; choose from {', '.join(FORMATS)}") from None
    layout = "mono" if channels == 1 else "stereo" if channels == 2 else f"{channels}c"
    supported = av.Codec(encoder, "w").audio_rates
    # Opus only runs at a few rates; resample to its native 48 kHz rather than fail.
    rate = sample_rate if not supported or sample_rate in supported else 48000
    with av.open(str(path), "w", format=muxer) as out:
        stream = out.add_stream(encoder, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        context = stream.codec_context
        context.open()
        resampler = av.AudioResampler(
            format=context.format, layout=layout, rate=rate, frame_size=context.frame_size or None
        )
        written = 0
        for block in pcm:
            samples = len(block) // (2 * channels)
            if not samples:
                continue
            frame = av.AudioFrame(format="s16", layout=layout, samples=samples)
            frame.planes[0].update(block)
            frame.sample_rate = sample_rate
            frame.pts = written
            frame.time_base = Fraction(1, sample_rate)
            written += samples
            for converted in resampler.resample(frame):
                out.mux(stream.encode(converted))
        for converted in resampler.resample(None):
            out.mux(stream.encode(converted))
        out.mux(stream.encode(None))


def _decoded_s16(container: av.container.InputContainer, stream: av.AudioStream) -> Iterator[bytes]:
    layout = stream.codec_context.layout
    resampler = av.AudioResampler(format="s16", layout=layout, rate=stream.codec_context.sample_rate)
    frame_bytes = 2 * stream.codec_context.channels
    for frame in container.decode(stream):
        for out in resampler.resample(frame):
            yield bytes(out.planes[0])[: out.samples * frame_bytes]
    for out in resampler.resample(None):
        yield bytes(out.planes[0])[: out.samples * frame_bytes]


def _frange(start: float, stop: float, step: float) -> Iterator[float]:
    value = start
    while value < stop:
        yield value
        value += step
