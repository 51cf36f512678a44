"""Which way a recording is recognized, with which model, and the key its stored result goes under."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from dropscribe.core.recognition import FILETRANS_MODEL, is_filetrans_model

Mode = str  # "single" (one request), "split" (chunks at silences) or "filetrans" (one task)

#: The backend the ``dashscope`` section defines; its keys carry no backend name, as before backends existed.
DEFAULT_BACKEND = "dashscope"


@dataclass(frozen=True)
class Route:
    """How one recording is recognized, and the key under which its answer is stored and reused."""

    mode: Mode
    model: str
    context_sha256: str | None
    result_key: str


def mode_for(
    *, model: str, long_audio: str, chunk_max_s: float, duration_s: float, filetrans: bool = True
) -> Mode:
    """A file-transcription model always runs as a task; otherwise short audio goes in one request.

    ``filetrans`` False: the backend has no file transcription, so long audio is always split.
    """
    if not filetrans:
        return "single" if duration_s <= chunk_max_s else "split"
    if is_filetrans_model(model):
        return "filetrans"
    if duration_s <= chunk_max_s:
        return "single"
    return "filetrans" if long_audio == "filetrans" else "split"


def model_for(model: str, mode: Mode) -> str:
    """A task needs a file-transcription model: the configured one if it is one, else the default."""
    if mode == "filetrans":
        return model if is_filetrans_model(model) else FILETRANS_MODEL
    return model


def context_sha256(context: str) -> str | None:
    """The context enters keys and sidecars as its hash only: it may be long, or private."""
    return hashlib.sha256(context.encode()).hexdigest() if context else None


def result_key_material(
    sha256: str, *, model: str, language: str | None, enable_itn: bool, context_sha256: str | None,
    mode: Mode, chunk_max_s: float, backend: str = DEFAULT_BACKEND,
) -> str:  # fmt: skip
    """Everything that shapes what the API is asked, so equal keys mean an equal, reusable answer.

    Another backend's answer is another answer even for the same model name, so its name is part of
    the key; the ``dashscope`` backend's material stays as it always was, so old journals still match.
    """
    parts = [sha256, model, language or "auto", "itn" if enable_itn else "noitn",
             context_sha256 or "-", mode, f"{chunk_max_s:g}"]  # fmt: skip
    if backend != DEFAULT_BACKEND:
        parts.append(f"backend={backend}")
    return "|".join(parts)


def route(
    sha256: str, *, model: str, long_audio: str, language: str | None, enable_itn: bool, context: str,
    chunk_max_s: float, duration_s: float, backend: str = DEFAULT_BACKEND, filetrans: bool = True,
) -> Route:  # fmt: skip
    """The mode, the model and the result key for these bytes under these rules, on ``backend``.

    ``filetrans`` says whether the backend has file transcription at all.
    """
    mode = mode_for(model=model, long_audio=long_audio, chunk_max_s=chunk_max_s, duration_s=duration_s,
                    filetrans=filetrans)  # fmt: skip
    chosen = model_for(model, mode)
    context_hash = context_sha256(context)
    material = result_key_material(
        sha256, model=chosen, language=language, enable_itn=enable_itn, context_sha256=context_hash,
        mode=mode, chunk_max_s=chunk_max_s, backend=backend,
    )  # fmt: skip
    return Route(mode, chosen, context_hash, hashlib.sha256(material.encode()).hexdigest())
