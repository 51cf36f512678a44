"""Probing, measuring, splitting and re-encoding audio with PyAV (the FFmpeg libraries in its wheel).

One module per idea: :mod:`.opening` (confining FFmpeg to audio for hostile input), :mod:`.probe`
(what a file is), :mod:`.decode` (mono PCM at one rate), :mod:`.measure` (energy over time),
:mod:`.encode` (re-encoding and splitting) and :mod:`.stream` (splitting long audio as it is
decoded). Which formats a backend takes as they are is not decided here but in
:mod:`dropscribe.core.formats`. The names below are the ones the service uses.
"""

from dropscribe.adapters.audio.decode import SAMPLE_RATE
from dropscribe.adapters.audio.encode import encode_chunks, transcode
from dropscribe.adapters.audio.measure import measure_energy
from dropscribe.adapters.audio.opening import DEMUXERS
from dropscribe.adapters.audio.probe import Probe, is_sendable_as_is, mime_type, probe
from dropscribe.adapters.audio.stream import StreamedChunk, stream_chunks

__all__ = [
    "DEMUXERS",
    "SAMPLE_RATE",
    "Probe",
    "StreamedChunk",
    "encode_chunks",
    "is_sendable_as_is",
    "measure_energy",
    "mime_type",
    "probe",
    "stream_chunks",
    "transcode",
]
