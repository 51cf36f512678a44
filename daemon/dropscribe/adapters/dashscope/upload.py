"""DashScope's temporary storage (docs/dashscope.md, "Temporary upload"): a certificate, then OSS PostObject.

Objects live 48 h, are bound to one model and cannot be overwritten; their ``oss://`` URLs are read
only by calls that send the resolve header. The certificate is cached per model while it lives.
"""

from __future__ import annotations

import mimetypes
import re
import threading
import time
from typing import BinaryIO

import httpx
import structlog

from dropscribe.adapters.dashscope.connection import ApiConnection
from dropscribe.adapters.dashscope.failures import map_transport_errors
from dropscribe.adapters.dashscope.redaction import redact_text
from dropscribe.core.dashscope_wire import UPLOADS_PATH, UploadPolicy
from dropscribe.core.errors import InputRejectedError, StorageUnavailableError

# A certificate is dropped this long before it expires: an upload started just before expiry fails.
_POLICY_MARGIN_S = 30.0
_OBJECT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_XML_CODE_RE = re.compile(r"<Code>([^<]*)</Code>")
_XML_MESSAGE_RE = re.compile(r"<Message>([^<]*)</Message>")

_log = structlog.get_logger(__name__)


def is_safe_object_name(name: str) -> bool:
    """True for names made of ASCII letters, digits and ``._-``, with ``/`` between segments.

    No segment starts with a dot, so ``..`` cannot climb out of a prefix, and nothing needs
    escaping in an object key, a form field or a URL.
    """
    return bool(_OBJECT_NAME_RE.fullmatch(name))


class TemporaryUploads:
    """Uploads through ``connection``'s pool; certificates come from the API, objects go to OSS."""

    def __init__(self, connection: ApiConnection) -> None:
        self._api = connection
        self._policies: dict[str, tuple[UploadPolicy, float]] = {}
        self._policies_lock = threading.Lock()

    def policy(self, model: str) -> UploadPolicy:
        """The upload certificate for ``model``, from cache while it has 30 s or more to live.

        Raises ``StorageUnavailableError`` (retry) or ``AccountError``: a certificate refused for a
        reason other than throttling is a key or configuration problem, never the file's.
        """
        with self._policies_lock:
            cached = self._policies.get(model)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        what = "upload policy"
        payload = self._api.call(
            "GET",
            UPLOADS_PATH,
            what=what,
            params={"action": "getPolicy", "model": model},
            result_key="data",
            transient=StorageUnavailableError,
            reject_means_account=True,
        )
        fetched_at = time.monotonic()
        try:
            policy = UploadPolicy.from_data(payload.get("data"))
        except ValueError as exc:
            raise StorageUnavailableError(
                f"{what}: malformed answer: {exc}", remote_code="MalformedResponse"
            ) from exc
        expires_at = fetched_at + policy.expire_in_seconds - _POLICY_MARGIN_S
        with self._policies_lock:
            self._policies[model] = (policy, expires_at)
        return policy

    def upload(
        self, model: str, name: str, data: BinaryIO | bytes, *, content_type: str | None = None
    ) -> str:
        """Upload for ``model``; returns the ``oss://`` URL. See ``DashScopeClient.upload_temp``."""
        if not is_safe_object_name(name):
            raise ValueError("object name must be ASCII letters, digits, '._-' and '/' segments")
        mime = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        policy = self.policy(model)
        limit = int(policy.max_file_size_mb * 1024 * 1024)
        if _size_of(data) > limit:
            raise InputRejectedError(
                "too_large", f"the file exceeds the {limit} bytes temporary storage takes"
            )
        response = self._post_object(policy, name, data, mime)
        if response.status_code == 403 and "expired" in _oss_error(response)[1].lower():
            # the cached certificate outlived its real validity (clock skew): one fresh try
            self._forget_policy(model)
            policy = self.policy(model)
            response = self._post_object(policy, name, data, mime)
        url = f"oss://{policy.upload_dir}/{name}"
        if response.is_success:
            return url
        code, message = _oss_error(response)
        if response.status_code == 409 and code == "FileAlreadyExists":
            # the name comes from the content, so the object there holds these very bytes
            return url
        _log.warning("dashscope_upload_failed", status=response.status_code, code=code)
        raise StorageUnavailableError(
            f"temporary upload: HTTP {response.status_code} {code}: {redact_text(message)}",
            remote_code=code,
        )

    def _post_object(
        self, policy: UploadPolicy, name: str, data: BinaryIO | bytes, mime: str
    ) -> httpx.Response:
        """One OSS PostObject; no DashScope credentials go to the upload host."""
        fields = {
            "OSSAccessKeyId": policy.oss_access_key_id,
            "Signature": policy.signature,
            "policy": policy.policy,
            "key": f"{policy.upload_dir}/{name}",
            "x-oss-object-acl": policy.x_oss_object_acl,
            "x-oss-forbid-overwrite": policy.x_oss_forbid_overwrite,
            "success_action_status": "200",
            "x-oss-content-type": mime,
        }
        # httpx writes form fields before files, the order OSS requires (file last); it also
        # rewinds a stream before sending, so the retry after an expired policy sends it whole
        files = {"file": (name.rsplit("/", 1)[-1], data, mime)}
        with map_transport_errors("temporary upload", StorageUnavailableError):
            return self._api.post_form(policy.upload_host, fields, files)

    def _forget_policy(self, model: str) -> None:
        with self._policies_lock:
            self._policies.pop(model, None)


def _size_of(data: BinaryIO | bytes) -> int:
    # the whole stream, not what is left of it: httpx rewinds a file before sending it
    if isinstance(data, bytes | bytearray | memoryview):
        return len(data)
    position = data.tell()
    end = data.seek(0, 2)
    data.seek(position)
    return end


def _oss_error(response: httpx.Response) -> tuple[str, str]:
    """Code and message of an OSS PostObject error (an XML document)."""
    text = response.text
    code = _XML_CODE_RE.search(text)
    message = _XML_MESSAGE_RE.search(text)
    return (
        code.group(1) if code else f"HTTP{response.status_code}",
        message.group(1) if message else text[:200],
    )
