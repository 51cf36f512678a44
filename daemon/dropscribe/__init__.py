"""dropscribe: watched inbox folders in, Qwen3-ASR transcripts out."""

from __future__ import annotations

import functools

__all__ = ["version"]


@functools.cache
def version() -> str:
    """The installed release; read on first use, since reading package metadata costs a quarter second
    at every start."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("dropscribe")
    except PackageNotFoundError:  # running from a source tree without installation
        return "0.0.0"
