"""Real, if rough, English speech recognition for the emulator, with pocketsphinx.

The optional extra ``dropscribe[hear]`` installs pocketsphinx, whose wheel ships an en-US model, so
nothing is downloaded. Audio is decoded with PyAV to what the model expects (16 kHz mono s16) and
recognized in one utterance; the words come back with their times, so file-transcription results
can carry sentences and word timestamps. It is far weaker than Qwen3-ASR: it lets a person trying
the demo read back words they said, not judge transcripts.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import IO, Any

import av

SAMPLE_RATE = 16000
_FRAMES_PER_S = 100  # pocketsphinx's default frame rate (-frate)
# Markers pocketsphinx puts between words: utterance bounds, silence, noise and filler models.
_NOT_A_WORD = re.compile(r"^(<.*>|\[.*\]|\+\+.*\+\+)$")
_VARIANT = re.compile(r"\(\d+\)$")  # "the(2)": the second pronunciation in the dictionary


class HearingUnavailableError(RuntimeError):
    """Raised when the pocketsphinx recognizer is asked for but the extra is not installed."""


@dataclass(frozen=True)
class HeardWord:
    """One recognized word and where it was heard, in seconds from the start of the audio."""

    text: str
    start_s: float
    end_s: float


class PocketsphinxHearing:
    """One pocketsphinx decoder, shared by the server's threads one utterance at a time."""

    def __init__(self) -> None:
        try:
            from pocketsphinx import Decoder  # type: ignore[import-untyped]
        except ImportError as exc:
            raise HearingUnavailableError(
                "the pocketsphinx recognizer needs the optional extra: install dropscribe[hear] "
                "(pip install 'dropscribe[hear]')"
            ) from exc
        self._decoder: Any = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
        self._lock = threading.Lock()

    def hear(self, source: IO[bytes]) -> list[HeardWord]:
        """The words recognized in the (already decodable) audio of ``source``, in order."""
        pcm = pcm_16k_mono(source)
        if not pcm:
            return []
        with self._lock:
            decoder = self._decoder
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            segments = [(seg.word, seg.start_frame, seg.end_frame) for seg in decoder.seg()]
        return [
            HeardWord(_VARIANT.sub("", word), start / _FRAMES_PER_S, (end + 1) / _FRAMES_PER_S)
            for word, start, end in segments
            if not _NOT_A_WORD.match(word)
        ]


def pcm_16k_mono(source: IO[bytes]) -> bytes:
    """The first audio stream of ``source`` as 16 kHz mono signed 16-bit PCM; a damaged tail is dropped."""
    source.seek(0)
    out = bytearray()
    with av.open(source, mode="r") as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        try:
            for frame in container.decode(container.streams.audio[0]):
                for chunk in resampler.resample(frame):
                    out += bytes(chunk.planes[0])[: chunk.samples * 2]
        except av.FFmpegError:
            pass  # what decoded before the damage is what a recognizer would hear
        for chunk in resampler.resample(None):
            out += bytes(chunk.planes[0])[: chunk.samples * 2]
    return bytes(out)
