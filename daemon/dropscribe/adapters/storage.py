"""How audio reaches the API: inline as a data URL, or through DashScope's temporary ``oss://`` storage
(an S3-compatible bucket is :mod:`dropscribe.adapters.s3_storage`, kept apart so that only a service
configured for it loads boto3). Which one, and with what values, the service decides from ``storage``
in the config.

Each store keeps the port :class:`dropscribe.core.ports.storage.Storage`: it takes a key chosen by the
caller from the content (see :func:`dropscribe.core.naming.object_key`), never from a user's file
name, and returns the string to hand to the API.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import BinaryIO, Protocol

from dropscribe.adapters.dashscope import DashScopeClient, is_safe_object_name
from dropscribe.core.recognition import InlineAudio

__all__ = [
    "MAX_DATA_URL_BYTES",
    "DashScopeTempStorage",
    "InlineStorage",
    "PayloadTooLargeError",
    "check_key",
    "put_from_file",
]

# The sync API takes at most 10 MB per request, counted on the encoded data URL (docs/dashscope.md,
# "Sync recognition"). Decimal megabytes: if the service meant MiB we lose 5 % of headroom, the other
# way round we lose files.
MAX_DATA_URL_BYTES = 10_000_000


def check_key(key: str) -> None:
    if not is_safe_object_name(key):
        raise ValueError("storage keys are ASCII letters, digits, '._-' and '/' between segments")


class PayloadTooLargeError(ValueError):
    """Raised when audio would make a data URL above the API's request limit.

    Not a rejection of the file: the caller re-encodes it smaller or splits it, then tries again.
    """

    def __init__(self, url_bytes: int, limit_bytes: int) -> None:
        super().__init__(f"a data URL of {url_bytes} bytes exceeds the {limit_bytes} bytes limit")
        self.url_bytes = url_bytes
        self.limit_bytes = limit_bytes


def data_url_size(size: int, content_type: str) -> int:
    """Length of the data URL for ``size`` bytes of ``content_type``, without building it."""
    return InlineAudio("", content_type, size).url_length


class _Puts(Protocol):
    def put(self, key: str, data: BinaryIO, size: int, content_type: str, model: str) -> str: ...


def put_from_file(store: _Puts, key: str, path: Path, content_type: str, model: str) -> str:
    """``store.put`` with the bytes of the file at ``path``: for stores that keep their own copy."""
    with open(path, "rb") as data:
        return store.put(key, data, os.fstat(data.fileno()).st_size, content_type, model)


class InlineStorage:
    """Sends the audio inside the request as a base64 ``data:`` URL: nothing to store or delete.

    Works in every region and leaves no object behind, but only for sync models and small clips.
    """

    oss_resolve = False
    sync_only = True

    def __init__(self, limit_bytes: int = MAX_DATA_URL_BYTES) -> None:
        self.limit_bytes = limit_bytes

    def put(self, key: str, data: BinaryIO, size: int, content_type: str, model: str) -> str:
        """Return ``data:<content_type>;base64,...``; raise ``PayloadTooLargeError`` above the limit."""
        check_key(key)
        expected = data_url_size(size, content_type)
        if expected > self.limit_bytes:
            # checked before reading, so a mistaken call with a 2 GB file does not load it all
            raise PayloadTooLargeError(expected, self.limit_bytes)
        raw = data.read(size + 1)
        if len(raw) != size:
            raise ValueError(f"expected {size} bytes of audio, read {len(raw)}")
        return f"data:{content_type};base64,{base64.b64encode(raw).decode('ascii')}"

    def put_file(self, key: str, path: Path, content_type: str, model: str) -> InlineAudio:
        """The file itself, to be read as its request is sent; ``PayloadTooLargeError`` above the limit."""
        check_key(key)
        audio = InlineAudio(str(path), content_type, path.stat().st_size)
        if audio.url_length > self.limit_bytes:
            raise PayloadTooLargeError(audio.url_length, self.limit_bytes)
        return audio

    def delete(self, key: str) -> None:
        """Nothing was stored."""

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return "InlineStorage()"


class DashScopeTempStorage:
    """DashScope's own temporary storage (docs/dashscope.md, "Temporary upload"): ``oss://`` URLs,
    48 h, bound to one model.

    For development: the service documents it as Beijing-only, 100 QPS, not for production. Its
    objects cannot be deleted; they expire by themselves.
    """

    oss_resolve = True
    # filetrans tasks read oss:// URLs too when the resolve header is sent (docs/dashscope.md,
    # "File transcription"; community-verified)
    sync_only = False

    def __init__(self, client: DashScopeClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return "DashScopeTempStorage()"

    def put(self, key: str, data: BinaryIO, size: int, content_type: str, model: str) -> str:
        """Upload through a certificate for ``model``; returns ``oss://...``."""
        check_key(key)
        # httpx sends a stream from its very start; a stream already advanced gives only its rest
        payload: BinaryIO | bytes = data if data.tell() == 0 else data.read(size)
        return self._client.upload_temp(model, key, payload, content_type=content_type)

    def put_file(self, key: str, path: Path, content_type: str, model: str) -> str:
        return put_from_file(self, key, path, content_type, model)

    def delete(self, key: str) -> None:
        """Temporary objects cannot be deleted; they expire after 48 h."""

    def close(self) -> None:
        """The client belongs to the caller, who closes it."""
