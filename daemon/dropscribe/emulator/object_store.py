"""The temporary-storage stand-in's data: upload policies and the objects stored under them.

Every store here is shared by the server's request threads and guards itself with a lock.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from datetime import datetime

from dropscribe.emulator.protocol import UPLOAD_VALIDITY_S


@dataclass(frozen=True)
class UploadPolicy:
    """The decoded content of an upload certificate's ``policy`` field."""

    model: str
    upload_dir: str
    expires_at: datetime
    max_bytes: int

    def encode(self) -> str:
        # Shaped like an OSS PostObject policy, plus the model the oss:// URL will be bound to.
        document = {
            "expiration": self.expires_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "conditions": [
                ["content-length-range", 0, self.max_bytes],
                ["starts-with", "$key", self.upload_dir],
                {"bucket": "dashscope-instant"},
                {"x-oss-object-acl": "private"},
                {"x-oss-forbid-overwrite": "true"},
                {"x-dashscope-model": self.model},
            ],
        }
        return base64.b64encode(json.dumps(document).encode("utf-8")).decode("ascii")

    @classmethod
    def decode(cls, policy: str) -> UploadPolicy:
        """Raises ValueError when ``policy`` was not made by :meth:`encode`."""
        try:
            document = json.loads(base64.b64decode(policy, validate=True))
            expires_at = datetime.strptime(document["expiration"], "%Y-%m-%dT%H:%M:%S.%f%z")
            conditions = document["conditions"]
            max_bytes = int(conditions[0][2])
            upload_dir = str(conditions[1][2])
            model = str(conditions[5]["x-dashscope-model"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ValueError("the policy cannot be decoded") from exc
        return cls(model, upload_dir, expires_at, max_bytes)


@dataclass(frozen=True)
class StoredObject:
    """A file uploaded through the emulator's OSS stand-in."""

    key: str
    model: str
    data: bytes
    sha256: str
    uploaded_at: float  # time.time()
    account: str = ""  # who asked for the certificate; the oss:// URL works for that account only

    def usable_by(self, model: str, account: str, now: float) -> bool:
        """A temporary URL is bound to the model and the account it was issued for, for 48 h."""
        return self.model == model and self.account == account and now - self.uploaded_at <= UPLOAD_VALIDITY_S


class ObjectStore:
    """Uploaded objects by key; keys are never overwritten, as with ``x-oss-forbid-overwrite``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, StoredObject] = {}
        # upload_dir of each certificate -> the account it was issued to. Kept server-side, so the
        # policy the client sees names no account and cannot be edited to claim another.
        self._dir_accounts: dict[str, str] = {}

    def issue_dir(self, upload_dir: str, account: str) -> None:
        with self._lock:
            self._dir_accounts[upload_dir] = account

    def account_of_dir(self, upload_dir: str) -> str:
        """The account a certificate for ``upload_dir`` went to ("" if this emulator never issued it)."""
        with self._lock:
            return self._dir_accounts.get(upload_dir, "")

    def put(self, obj: StoredObject) -> bool:
        """Store ``obj``; False if its key is taken."""
        with self._lock:
            if obj.key in self._objects:
                return False
            self._objects[obj.key] = obj
            return True

    def get(self, key: str) -> StoredObject | None:
        with self._lock:
            return self._objects.get(key)

    def clear(self) -> None:
        with self._lock:
            self._objects.clear()
            self._dir_accounts.clear()
