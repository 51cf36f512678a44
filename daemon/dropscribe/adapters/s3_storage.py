"""Any S3-compatible bucket (AWS S3, Alibaba OSS through its S3 endpoint, MinIO) as the way audio reaches
the API: uploaded once, read by the API through a presigned GET URL.

Apart from the other stores because boto3 takes a third of a second to import: a service that does not
use a bucket never loads it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

import boto3
import boto3.exceptions
import botocore.config
import botocore.exceptions
import structlog
from boto3.s3.transfer import TransferConfig

from dropscribe.adapters.storage import check_key, put_from_file
from dropscribe.core.errors import AccountError, ConfigError, StorageUnavailableError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3Storage"]

_log = structlog.get_logger(__name__)


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
        check_key(key)
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

    def put_file(self, key: str, path: Path, content_type: str, model: str) -> str:
        return put_from_file(self, key, path, content_type, model)

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
