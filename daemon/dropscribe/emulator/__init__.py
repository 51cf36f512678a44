"""A local DashScope-compatible emulator for trying dropscribe and for tests.

It speaks the HTTP contract of ``docs/dashscope.md`` (synchronous recognition with SSE,
file-transcription tasks, temporary ``oss://`` uploads, errors, rate limits) and records every request,
but it does not recognise speech: transcripts are derived from the audio's duration and SHA-256 (see
:func:`emulated_text`), so tests can tell exactly which bytes arrived. It also serves what a
self-hosted vLLM serving Qwen3-ASR serves (``/v1/audio/transcriptions``, ``/v1/models``; see
:mod:`.openai_transcription`).

For example::

    from dropscribe.emulator import Emulator, EmulatorConfig, Fault

    emu = Emulator(EmulatorConfig(max_sync_duration_s=180))
    emu.start()
    emu.add_fault(Fault(path="generation", status=503, code="ServiceUnavailable", times=2))
    ...  # point the client at emu.base_url
    emu.stop()
"""

from dropscribe.emulator.config import EmulatorConfig
from dropscribe.emulator.faults import Fault
from dropscribe.emulator.server import Emulator
from dropscribe.emulator.transcripts import emulated_sentence, emulated_text

__all__ = ["Emulator", "EmulatorConfig", "Fault", "emulated_sentence", "emulated_text"]
