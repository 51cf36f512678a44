"""Recognition inputs put into storage for the API to fetch, and removed once their job is finished.

Every object is journaled before it is put, so one left behind by a crash is still found and removed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from dropscribe.adapters import audio
from dropscribe.adapters.storage import PayloadTooLargeError
from dropscribe.core.errors import InputRejectedError, TransientError
from dropscribe.core.formats import Encoding
from dropscribe.core.naming import object_key
from dropscribe.core.ports.journal import Journal
from dropscribe.core.ports.storage import Storage
from dropscribe.core.recognition import InlineAudio
from dropscribe.logs import get_logger

log = get_logger()


@dataclass(frozen=True)
class Staged:
    """A re-encoding of the source in the staging folder: the whole recording, or one chunk of it.

    ``part`` names both the file (with the encoding's suffix) and its object. Journals of earlier runs
    name those objects, so the parts must not change: ``whole``, and ``chunk-NNNN`` as the audio
    adapter names the chunks it writes.
    """

    staging: Path
    part: str
    encoding: Encoding

    @classmethod
    def whole(cls, staging: Path, encoding: Encoding) -> Staged:
        return cls(staging, "whole", encoding)

    @classmethod
    def chunk(cls, staging: Path, index: int, encoding: Encoding) -> Staged:
        return cls(staging, f"chunk-{index:04d}", encoding)

    @property
    def path(self) -> Path:
        return self.staging / f"{self.part}{self.encoding.suffix}"


class SourceObjects:
    def __init__(self, journal: Journal, storage: Storage) -> None:
        self.journal = journal
        self.storage = storage

    def upload(
        self, sha: str, model: str, handle: BinaryIO, probe: audio.Probe, encoded: Staged | None
    ) -> str | InlineAudio:
        """What the API reads: the source's own bytes when ``encoded`` is None, else that file.

        Sync requests (a whole file or a chunk) upload through here; an inline store gives a staged
        file back as it is, to be read while its request is sent.
        """
        if encoded is None:
            # read now through the job's handle, whatever the store: by the time a request goes out
            # its path may name other bytes (a user replacing the file), and only these were hashed.
            # A demuxer name is no path, but it becomes part of an object key: keep its last component.
            suffix = PurePosixPath(probe.format_name.split(",")[0]).name
            okey = object_key(sha, "source", f".{suffix}")
            with os.fdopen(os.dup(handle.fileno()), "rb") as data:
                data.seek(0)
                size = os.fstat(data.fileno()).st_size
                return self._put(
                    okey, lambda: self.storage.put(okey, data, size, audio.mime_type(probe), model)
                )
        okey = object_key(sha, encoded.part, encoded.encoding.suffix)
        return self._put(
            okey, lambda: self.storage.put_file(okey, encoded.path, encoded.encoding.mime_type, model)
        )

    def stored(
        self, sha: str, model: str, handle: BinaryIO, probe: audio.Probe, encoded: Staged | None
    ) -> str:
        """The URL a file-transcription task fetches (stores that keep objects only)."""
        where = self.upload(sha, model, handle, probe, encoded)
        if isinstance(where, InlineAudio):  # the config check refuses file transcription on inline storage
            raise RuntimeError("file transcription needs storage.type s3 or dashscope")
        return where

    def _put(self, okey: str, put: Callable[[], str | InlineAudio]) -> str | InlineAudio:
        self.journal.object_created(okey)
        try:
            return put()
        except PayloadTooLargeError as exc:
            raise InputRejectedError("too_large", str(exc)) from exc

    def remove_all(self, sha: str) -> None:
        """Every live object made for these bytes; one that cannot be deleted now stays journaled."""
        if not sha:
            return
        for okey in self.journal.live_objects(f"{sha[:2]}/{sha}/"):
            try:
                self.storage.delete(okey)
            except TransientError as exc:
                log.warning("object_delete_failed", object_key=okey, error=exc.message)
                continue
            self.journal.object_deleted(okey)
