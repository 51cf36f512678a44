"""The URL paths the emulator serves, and which of them speak OSS rather than DashScope."""

from __future__ import annotations

import re

API = "/api/v1"
GENERATION_PATH = f"{API}/services/aigc/multimodal-generation/generation"
TRANSCRIPTION_PATH = f"{API}/services/audio/asr/transcription"
UPLOADS_PATH = f"{API}/uploads"
ADMIN_PREFIX = "/_emulator/"
OSS_PATH = "/_emulator/oss"
RESULTS_PREFIX = "/_emulator/results/"
TASKS_PATH = f"{API}/tasks"
TASK_RE = re.compile(re.escape(API) + r"/tasks/([^/]+)")
CANCEL_RE = re.compile(re.escape(API) + r"/tasks/([^/]+)/cancel")
RESULT_RE = re.compile(re.escape(RESULTS_PREFIX) + r"([^/]+)\.json")
# What a self-hosted vLLM serves; fault paths should say "audio/transcriptions", since the bare word
# "transcription" also matches DashScope's file-transcription path.
OPENAI_PREFIX = "/v1/"
OPENAI_TRANSCRIPTIONS_PATH = "/v1/audio/transcriptions"
OPENAI_MODELS_PATH = "/v1/models"


def is_oss_like(path: str) -> bool:
    """True for the object-storage stand-ins (uploads, result files), which answer errors in XML."""
    return path == OSS_PATH or path.startswith((OSS_PATH + "/", RESULTS_PREFIX))


def is_openai(path: str) -> bool:
    """True for the OpenAI-compatible paths, which answer errors in the OpenAI envelope."""
    return path.startswith(OPENAI_PREFIX)


def task_id_in(path: str) -> str | None:
    """The task id a task query, cancel or result-file path names."""
    match = TASK_RE.fullmatch(path) or CANCEL_RE.fullmatch(path) or RESULT_RE.fullmatch(path)
    return match.group(1) if match else None
