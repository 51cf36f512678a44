"""Temporary upload: the upload certificate (``GET /uploads``) and the OSS PostObject stand-in.

A client asks for a certificate, posts its file as a form to the ``upload_host`` it names, and then
refers to the file as ``oss://{key}``, usable only with the model the certificate was issued for.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime, timedelta
from html import escape

from dropscribe.emulator.auth import authorize
from dropscribe.emulator.config import EmulatorConfig
from dropscribe.emulator.http_messages import HttpRequest, Reply, json_reply
from dropscribe.emulator.multipart import FormField
from dropscribe.emulator.object_store import ObjectStore, StoredObject, UploadPolicy
from dropscribe.emulator.paths import OSS_PATH
from dropscribe.emulator.protocol import ApiError, OssError
from dropscribe.emulator.rate_limits import RateLimits
from dropscribe.emulator.request_log import Trace
from dropscribe.emulator.signing import OSS_ACCESS_KEY_ID, Signer

_UPLOAD_FIELDS = (
    "OSSAccessKeyId",
    "Signature",
    "policy",
    "key",
    "x-oss-object-acl",
    "x-oss-forbid-overwrite",
    "success_action_status",
    "file",
)
_SIGNATURE_MISMATCH = "The request signature we calculated does not match the signature you provided."


class TemporaryUpload:
    """``GET /uploads?action=getPolicy`` and ``POST /_emulator/oss``."""

    def __init__(
        self, config: EmulatorConfig, objects: ObjectStore, signer: Signer, limits: RateLimits
    ) -> None:
        self._config = config
        self._objects = objects
        self._signer = signer
        self._limits = limits

    def policy(self, request: HttpRequest, trace: Trace) -> Reply:
        key_id = authorize(request, self._config.api_keys)
        if request.query_value("action") != "getPolicy":
            raise ApiError(400, "InvalidParameter", "Parameter 'action' must be 'getPolicy'.")
        model = request.query_value("model")
        if not model:
            raise ApiError(400, "BadRequest.EmptyModel")
        trace.model = model
        self._limits.count_policy(key_id, model)
        now = datetime.now(UTC)
        upload_dir = f"dashscope-instant/{secrets.token_hex(16)}/{now:%Y-%m-%d}/{secrets.token_hex(8)}"
        policy = UploadPolicy(
            model=model,
            upload_dir=upload_dir,
            expires_at=now + timedelta(seconds=self._config.policy_expire_s),
            max_bytes=self._config.max_upload_mb * 1024 * 1024,
        )
        self._objects.issue_dir(upload_dir, key_id)
        encoded = policy.encode()
        data = {
            "policy": encoded,
            "signature": self._signer.sign(encoded),
            "upload_dir": upload_dir,
            "upload_host": f"{request.origin}{OSS_PATH}",
            "expire_in_seconds": self._config.policy_expire_s,
            "max_file_size_mb": self._config.max_upload_mb,
            "capacity_limit_mb": 999999999,
            "oss_access_key_id": OSS_ACCESS_KEY_ID,
            "x_oss_object_acl": "private",
            "x_oss_forbid_overwrite": "true",
        }
        return json_reply(200, {"request_id": trace.reply_id(), "data": data})

    def post_object(self, request: HttpRequest, trace: Trace) -> Reply:
        fields = _checked_form(request.form)
        if not self._signer.verify(fields["policy"].text, fields["Signature"].text):
            raise OssError(403, "SignatureDoesNotMatch", _SIGNATURE_MISMATCH)
        policy = UploadPolicy.decode(fields["policy"].text)
        trace.model = policy.model
        if datetime.now(UTC) >= policy.expires_at:
            raise OssError(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        key = fields["key"].text
        _check_conditions(policy, key, fields)
        data = fields["file"].data
        if len(data) > policy.max_bytes:
            raise OssError(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.")
        digest = hashlib.sha256(data).hexdigest()
        trace.audio_sha256 = digest
        trace.audio_bytes = len(data)
        account = self._objects.account_of_dir(policy.upload_dir)
        stored = StoredObject(key, policy.model, data, digest, time.time(), account)
        if not self._objects.put(stored):
            raise OssError(
                409,
                "FileAlreadyExists",
                "The object you specified already exists and can not be overwritten.",
            )
        headers = {
            "x-oss-request-id": trace.reply_id(),
            "ETag": '"' + hashlib.md5(data, usedforsecurity=False).hexdigest().upper() + '"',
        }
        status = fields["success_action_status"].text.strip()
        if status == "200":
            return Reply(200, content_type=None, headers=headers)
        if status == "201":
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n<PostResponse>\n'
                f"  <Bucket>dashscope-instant</Bucket>\n  <Key>{escape(key)}</Key>\n"
                f"  <ETag>{headers['ETag']}</ETag>\n</PostResponse>\n"
            ).encode()
            return Reply(201, body, content_type="application/xml", headers=headers)
        return Reply(204, content_type=None, headers=headers)


def _checked_form(form: list[FormField]) -> dict[str, FormField]:
    """The form's fields by name (first wins), once every required one is there, file last."""
    fields: dict[str, FormField] = {}
    for item in form:
        fields.setdefault(item.name, item)
    for name in _UPLOAD_FIELDS:
        if name not in fields:
            raise OssError(400, "InvalidArgument", f"The form field {name} is missing.")
    if form[-1].name != "file":
        raise OssError(400, "InvalidArgument", "The file must be the last field of the form.")
    if fields["OSSAccessKeyId"].text != OSS_ACCESS_KEY_ID:
        raise OssError(
            403,
            "InvalidAccessKeyId",
            "The OSS Access Key Id you provided does not exist in our records.",
        )
    return fields


def _check_conditions(policy: UploadPolicy, key: str, fields: dict[str, FormField]) -> None:
    """The policy's conditions on the key and headers, refused as OSS refuses them."""
    if not key.startswith(policy.upload_dir + "/") or "/../" in f"/{key}/":
        raise OssError(
            403,
            "AccessDenied",
            "Invalid according to Policy: Policy Condition failed: "
            f'["starts-with", "$key", "{policy.upload_dir}"]',
        )
    for name, wanted in (("x-oss-object-acl", "private"), ("x-oss-forbid-overwrite", "true")):
        if fields[name].text != wanted:
            raise OssError(
                403,
                "AccessDenied",
                f'Invalid according to Policy: Policy Condition failed: ["eq", "${name}", "{wanted}"]',
            )
