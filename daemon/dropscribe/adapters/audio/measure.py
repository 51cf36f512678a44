"""Loudness over time: the RMS energy the chunk planner splits long audio by."""

from __future__ import annotations

import array
import math
import operator
from pathlib import Path
from typing import BinaryIO

from dropscribe.adapters.audio.decode import SAMPLE_RATE, MonoDecoder
from dropscribe.adapters.audio.opening import audio_stream, open_input


def measure_energy(source: BinaryIO | Path, window_s: float = 0.1) -> tuple[list[float], float]:
    """RMS energy of the 16 kHz mono signal per ``window_s`` window, and the decoded duration.

    Samples are scaled to full scale 1.0; the last window may be shorter than the others. Memory stays
    at one decoded frame plus the list of energies, whatever the file's length.

    Raises:
        InputRejectedError: As :func:`~dropscribe.adapters.audio.probe.probe`, plus ``truncated_audio``.
        ShareUnavailableError: Reading the file failed.
    """
    window = round(window_s * SAMPLE_RATE)
    if window < 1:
        raise ValueError(f"window_s must be at least one sample long, got {window_s!r}")
    energies: list[float] = []
    with open_input(source) as (container, reader):
        decoder = MonoDecoder(container, audio_stream(container)[0], reader, "flt")
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
