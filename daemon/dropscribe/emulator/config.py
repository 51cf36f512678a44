"""Settings of one emulator instance."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path

from dropscribe.emulator.protocol import FILETRANS_MAX_BYTES, FILETRANS_MAX_DURATION_S


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator listens and which limits of the real service it enforces.

    ``api_keys`` None accepts any non-empty Bearer key; a set accepts only its members (401
    ``InvalidApiKey`` otherwise). ``requests_per_minute`` 0 disables the per key and model limit on
    recognition calls: the default here, so tests are throttled only when they ask for it, while
    ``dropscribe emulate`` starts at the documented quota (``protocol.DOCUMENTED_RPM``).
    ``task_run_s`` is how long a file-transcription task takes from submit to its final state
    (PENDING for the first half, RUNNING for the second). ``log_path`` adds a JSONL copy of the
    request log. Limits with a 0 value are off.
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_keys: Set[str] | None = None
    max_sync_bytes: int = 10 * 1024 * 1024
    max_sync_duration_s: float = 300.0
    requests_per_minute: int = 0
    task_run_s: float = 1.0
    log_path: str | Path | None = None
    max_filetrans_bytes: int = FILETRANS_MAX_BYTES
    max_filetrans_duration_s: float = FILETRANS_MAX_DURATION_S
    task_qps: int = 20
    policy_qps: int = 100
    policy_expire_s: int = 300
    max_upload_mb: int = 100
    fetch_timeout_s: float = 30.0
    # The OpenAI-compatible endpoints (vLLM): the one served model, vLLM's upload cap in MiB
    # (VLLM_MAX_AUDIO_CLIP_FILESIZE_MB), and whether texts keep the "language X<asr_text>" prefix.
    # Like vLLM without --api-key, these endpoints need no key while ``api_keys`` is None.
    openai_model: str = "Qwen/Qwen3-ASR-1.7B"
    openai_max_upload_mb: float = 25.0
    asr_text_marker: bool = False
