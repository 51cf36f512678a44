"""The storage port: where audio is put so that the recognition backend can read it.

Implementations today are in :mod:`dropscribe.adapters.storage`: inline ``data:`` URLs, an
S3-compatible bucket, and DashScope's temporary ``oss://`` storage.

Contract for every implementation: keys are chosen by the caller from the content (ASCII letters,
digits, ``._-`` and ``/`` between segments), never from a user's file name, so putting the same key
twice stores the same bytes; a failure that another try may fix raises
:class:`~dropscribe.core.errors.StorageUnavailableError`, one that needs someone to act raises
:class:`~dropscribe.core.errors.AccountError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Protocol

from dropscribe.core.recognition import InlineAudio


class Storage(Protocol):
    """Where audio is put so that the API can read it."""

    oss_resolve: bool  # the API call needs X-DashScope-OssResourceResolve (temporary oss:// URLs)
    sync_only: bool  # the string put() returns cannot feed file-transcription tasks

    def put(self, key: str, data: BinaryIO, size: int, content_type: str, model: str) -> str:
        """Store ``size`` bytes read from ``data`` under ``key``; return what the API should read.

        ``model`` is the model that will read it (temporary storage binds objects to one model).
        """
        ...

    def put_file(self, key: str, path: Path, content_type: str, model: str) -> str | InlineAudio:
        """As :meth:`put`, from a file that stays as it is until its answer is journaled.

        A store that sends audio inside the request hands back the file itself (``InlineAudio``), read
        only while the request goes out, instead of a copy held in memory.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove what ``put`` stored, once its result is safe; a no-op where nothing can be removed."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
