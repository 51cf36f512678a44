"""How audio reaches the API: inline as a data URL, through an S3-compatible bucket, or through
DashScope's temporary ``oss://`` storage. Which one, and with what values, the service decides from
``storage`` in the config.

Each store keeps the port :class:`dropscribe.core.ports.storage.Storage`: it takes a key chosen by the
caller from the content (see :func:`dropscribe.core.naming.object_key`), never from a user's file
name, and returns the string to hand to the API.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO, Literal

import boto3
import boto3.exceptions
import botocore.config
import botocore.exceptions
import structlog
from boto3.s3.transfer import TransferConfig

from dropscribe.adapters.dashscope import DashScopeClient, is_safe_object_name
from dropscribe.core.errors import AccountError, ConfigError, StorageUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = [
    "MAX_DATA_URL_BYTES",
    "DashScopeTempStorage",
    "InlineStorage",
    "PayloadTooLargeError",
    "S3Storage",
]

# The sync API takes at most 10 MB per request, counted on the encoded data URL (docs/dashscope.md,
# "Sync recognition"). Decimal megabytes: if the service meant MiB we lose 5 % of headroom, the other
# way round we lose files.
MAX_DATA_URL_BYTES = 10_000_000

_log = structlog.get_logger(__name__)


def _check_key(key: str) -> None:
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
    return len(f"data:{content_type};base64,") + 4 * ((size + 2) // 3)


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
        _check_key(key)
        expected = data_url_size(size, content_type)
        if expected > self.limit_bytes:
            # checked before reading, so a mistaken call with a 2 GB file does not load it all
            raise PayloadTooLargeError(expected, self.limit_bytes)
        raw = data.read(size + 1)
        if len(raw) != size:
            raise ValueError(f"expected {size} bytes of audio, read {len(raw)}")
        return f"data:{content_type};base64,{base64.b64encode(raw).decode('ascii')}"

    def delete(self, key: str) -> None:
        """Nothing was stored."""

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return "InlineStorage()"


# Error codes that no retry will fix: the bucket or the credentials are wrong, which affects every
# file alike, so the queue pauses instead of filling failed/.
_ACCOUNT_CODES = frozenset(
    {
        "NoSuchBucket",
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidBucketName",
        "AccountProblem",
    }
)
# What an S3-compatible store may answer to a checksum header it does not implement.
_CHECKSUM_UNSUPPORTED_CODES = frozenset(
    {"InvalidArgument", "InvalidRequest", "NotImplemented", "BadRequest", "UnsupportedOperation"}
)


@contextlib.contextmanager
def _map_storage_errors(what: str) -> Iterator[None]:
    """Turn every botocore/boto3 failure into a service error; the one place for it."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code") or "Unknown"
        message = error.get("Message") or str(exc)
        if code in _ACCOUNT_CODES:
            raise AccountError(code, f"{what}: {message}") from exc
        raise StorageUnavailableError(f"{what}: {code}: {message}", remote_code=code) from exc
    except (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError) as exc:
        raise AccountError("NoCredentials", f"{what}: {exc}") from exc
    except (botocore.exceptions.BotoCoreError, boto3.exceptions.Boto3Error) as exc:
        # connection refused, timeouts, S3UploadFailedError after botocore's own retries
        raise StorageUnavailableError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _client_error_code(exc: botocore.exceptions.ClientError) -> str:
    return exc.response.get("Error", {}).get("Code") or ""


class S3Storage:
    """Any S3-compatible bucket (AWS S3, Alibaba OSS through its S3 endpoint, MinIO).

    Credentials come from boto3's default chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
    shared config files, instance roles), never from the YAML. The API reads each object through a
    presigned GET URL valid for ``presign_ttl_s``.
    """

    oss_resolve = False
    sync_only = False

    def __init__(
        self,
        *,
        bucket: str | None,
        endpoint_url: str | None = None,
        prefix: str = "dropscribe/",
        region: str | None = None,
        addressing_style: Literal["auto", "virtual", "path"] = "auto",
        presign_ttl_s: int = 86400,
        keep: bool = False,
    ) -> None:
        if not bucket:
            raise ConfigError(["storage.bucket: required when storage.type is s3"])
        self.bucket = bucket
        self.prefix = prefix
        self.presign_ttl_s = presign_ttl_s
        self.keep = keep
        config = botocore.config.Config(
            signature_version="s3v4",
            s3={"addressing_style": addressing_style},
            connect_timeout=10,
            read_timeout=120,
            # botocore's own retries only smooth over a dropped pooled connection; the service
            # does the real backoff and knows when to stop
            retries={"max_attempts": 2, "mode": "standard"},
            # no default CRC32 trailer: several S3-compatible stores reject aws-chunked bodies;
            # put() asks for SHA-256 explicitly where it works
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=config,
        )
        self._transfer = TransferConfig(max_concurrency=4)
        self._checksum = True  # dropped after the store refuses x-amz-checksum-sha256 once

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _object_key(self, key: str) -> str:
        _check_key(key)
        return self.prefix + key

    def put(self, key: str, data: BinaryIO, size: int, content_type: str, model: str) -> str:
        """Upload ``data`` to ``prefix + key`` and return a presigned GET URL for it.

        The URL is a bearer credential until it expires: never log it (use ``redact_url``).
        Raises ``StorageUnavailableError`` (retry) or ``AccountError`` (bucket or credentials).
        """
        object_key = self._object_key(key)
        start = data.tell()
        with _map_storage_errors("s3 upload"):
            try:
                self._upload(data, object_key, content_type)
            except botocore.exceptions.ClientError as exc:
                if not self._checksum or _client_error_code(exc) not in _CHECKSUM_UNSUPPORTED_CODES:
                    raise
                _log.warning("s3_checksum_unsupported", code=_client_error_code(exc))
                self._checksum = False
                data.seek(start)
                self._upload(data, object_key, content_type)
            return self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": object_key},
                ExpiresIn=self.presign_ttl_s,
            )

    def _upload(self, data: BinaryIO, object_key: str, content_type: str) -> None:
        extra = {"ContentType": content_type}
        if self._checksum:
            # the store verifies the body against it and refuses a corrupted upload
            extra["ChecksumAlgorithm"] = "SHA256"
        self._client.upload_fileobj(data, self.bucket, object_key, ExtraArgs=extra, Config=self._transfer)

    def delete(self, key: str) -> None:
        """Remove the object, unless ``keep`` is set. Deleting a missing object is not an error."""
        if self.keep:
            return
        with _map_storage_errors("s3 delete"):
            self._client.delete_object(Bucket=self.bucket, Key=self._object_key(key))

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


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
        _check_key(key)
        # httpx sends a stream from its very start; a stream already advanced gives only its rest
        payload: BinaryIO | bytes = data if data.tell() == 0 else data.read(size)
        return self._client.upload_temp(model, key, payload, content_type=content_type)

    def delete(self, key: str) -> None:
        """Temporary objects cannot be deleted; they expire after 48 h."""

    def close(self) -> None:
        """The client belongs to the caller, who closes it."""
