"""Storage adapters against real things: a moto S3 server over HTTP, and plain bytes for data URLs."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from dropscribe.adapters.s3_storage import S3Storage
from dropscribe.adapters.storage import MAX_DATA_URL_BYTES, InlineStorage, PayloadTooLargeError
from dropscribe.core.errors import AccountError, ConfigError, StorageUnavailableError
from dropscribe.core.recognition import InlineAudio
from tests.support.s3 import (  # noqa: F401  (fixtures are used by name)
    REGION,
    S3Target,
    fixture_aws_credentials,
    fixture_moto_endpoint,
    fixture_s3_bucket,
    unused_port,
)

AUDIO = bytes(range(256)) * 1000 + b"tail"
KEY = f"{hashlib.sha256(AUDIO).hexdigest()}/0.flac"


def s3_store(target: S3Target, *, bucket: str | None = None, keep: bool = False) -> S3Storage:
    return S3Storage(
        bucket=bucket or target.bucket,
        endpoint_url=target.endpoint_url,
        region=REGION,
        addressing_style="path",
        presign_ttl_s=600,
        prefix="dropscribe/",
        keep=keep,
    )


@pytest.fixture
def storage(s3_bucket: S3Target) -> Iterator[S3Storage]:
    store = s3_store(s3_bucket)
    yield store
    store.close()


def object_keys(target: S3Target) -> list[str]:
    client = boto3.session.Session().client("s3", endpoint_url=target.endpoint_url, region_name=REGION)
    listing = client.list_objects_v2(Bucket=target.bucket)
    client.close()
    return [item["Key"] for item in listing.get("Contents", [])]


class TestS3Storage:
    def test_round_trip(self, storage: S3Storage, s3_bucket: S3Target) -> None:
        """put stores the bytes under prefix+key, the presigned URL serves them, delete removes them."""
        url = storage.put(KEY, io.BytesIO(AUDIO), len(AUDIO), "audio/flac", "qwen3-asr-flash-filetrans")

        assert url.startswith(f"{s3_bucket.endpoint_url}/{s3_bucket.bucket}/dropscribe/{KEY}?")
        assert "X-Amz-Signature=" in url
        response = httpx.get(url)
        assert response.status_code == 200
        assert response.content == AUDIO
        assert response.headers["content-type"] == "audio/flac"
        assert [f"dropscribe/{KEY}"] == object_keys(s3_bucket)

        storage.delete(KEY)

        assert object_keys(s3_bucket) == []
        assert httpx.get(url).status_code == 404

    def test_a_file_is_uploaded_whole(self, storage: S3Storage, s3_bucket: S3Target, tmp_path: Path) -> None:
        staged = tmp_path / "chunk-0003.flac"
        staged.write_bytes(AUDIO)

        url = storage.put_file(KEY, staged, "audio/flac", "qwen3-asr-flash")

        assert httpx.get(url).content == AUDIO

    def test_upload_carries_sha256_checksum(self, storage: S3Storage, s3_bucket: S3Target) -> None:
        """The store receives and keeps a SHA-256 of the body, so a corrupted upload is refused."""
        storage.put(KEY, io.BytesIO(AUDIO), len(AUDIO), "audio/flac", "qwen3-asr-flash")

        client = boto3.session.Session().client("s3", endpoint_url=s3_bucket.endpoint_url, region_name=REGION)
        head = client.head_object(Bucket=s3_bucket.bucket, Key=f"dropscribe/{KEY}", ChecksumMode="ENABLED")
        client.close()
        assert base64.b64encode(hashlib.sha256(AUDIO).digest()).decode() == head["ChecksumSHA256"]

    def test_upload_starts_at_stream_position(self, storage: S3Storage) -> None:
        """Only the bytes from the stream's current position on are stored."""
        stream = io.BytesIO(b"HEADER" + AUDIO)
        stream.seek(6)

        url = storage.put(KEY, stream, len(AUDIO), "audio/flac", "qwen3-asr-flash")

        assert httpx.get(url).content == AUDIO

    def test_keep_leaves_the_object(self, s3_bucket: S3Target) -> None:
        """With keep: true, delete does nothing and the object stays for inspection."""
        store = s3_store(s3_bucket, keep=True)
        store.put(KEY, io.BytesIO(AUDIO), len(AUDIO), "audio/flac", "qwen3-asr-flash")

        store.delete(KEY)
        store.close()

        assert [f"dropscribe/{KEY}"] == object_keys(s3_bucket)

    def test_delete_of_missing_object_is_quiet(self, storage: S3Storage) -> None:
        """Deleting twice (a replay after a crash) is not an error."""
        storage.delete(KEY)
        storage.delete(KEY)

    def test_endpoint_down_is_transient(self, aws_credentials: None) -> None:
        """An endpoint nobody answers on makes the upload wait, not fail the file."""
        target = S3Target(f"http://127.0.0.1:{unused_port()}", "some-bucket")
        store = s3_store(target)

        with pytest.raises(StorageUnavailableError):
            store.put(KEY, io.BytesIO(AUDIO), len(AUDIO), "audio/flac", "qwen3-asr-flash")
        with pytest.raises(StorageUnavailableError):
            store.delete(KEY)
        store.close()

    def test_missing_bucket_pauses(self, s3_bucket: S3Target) -> None:
        """A bucket that does not exist is a configuration problem: AccountError pauses the queue."""
        store = s3_store(s3_bucket, bucket=s3_bucket.bucket + "-missing")

        with pytest.raises(AccountError) as caught:
            store.put(KEY, io.BytesIO(AUDIO), len(AUDIO), "audio/flac", "qwen3-asr-flash")
        store.close()

        assert caught.value.remote_code == "NoSuchBucket"

    def test_no_credentials_pauses(
        self,
        s3_bucket: S3Target,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Without credentials in the default chain nothing can be uploaded: AccountError."""
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        store = s3_store(s3_bucket)

        with pytest.raises(AccountError) as caught:
            store.put(KEY, io.BytesIO(AUDIO), len(AUDIO), "audio/flac", "qwen3-asr-flash")
        store.close()

        assert caught.value.remote_code == "NoCredentials"

    @pytest.mark.parametrize("key", ["../escape.flac", "/abs.flac", "a b.flac", "ünï.flac", "a//b.flac", ""])
    def test_unsafe_keys_refused(self, storage: S3Storage, key: str) -> None:
        """Keys that could climb out of the prefix or need escaping never reach the store."""
        with pytest.raises(ValueError, match="storage keys"):
            storage.put(key, io.BytesIO(AUDIO), len(AUDIO), "audio/flac", "qwen3-asr-flash")

    def test_repr_names_no_secret(self, storage: S3Storage, s3_bucket: S3Target) -> None:
        """The repr shows where objects go and nothing of the credentials."""
        assert "testing-secret-key" not in repr(storage)
        assert s3_bucket.bucket in repr(storage)


class TestInlineStorage:
    def test_data_url(self) -> None:
        """The audio travels base64-encoded in a data URL with its media type."""
        url = InlineStorage().put(KEY, io.BytesIO(AUDIO), len(AUDIO), "audio/wav", "qwen3-asr-flash")

        prefix, _, payload = url.partition(",")
        assert prefix == "data:audio/wav;base64"
        assert base64.b64decode(payload) == AUDIO

    def test_limit_is_on_the_encoded_url(self) -> None:
        """Audio whose data URL hits the limit exactly passes; one more base64 quantum does not."""
        prefix_len = len("data:audio/flac;base64,")
        fits = (MAX_DATA_URL_BYTES - prefix_len) // 4 * 3
        store = InlineStorage()

        url = store.put(KEY, io.BytesIO(b"\0" * fits), fits, "audio/flac", "qwen3-asr-flash")
        assert len(url) <= MAX_DATA_URL_BYTES

        with pytest.raises(PayloadTooLargeError) as caught:
            store.put(KEY, io.BytesIO(b"\0" * (fits + 1)), fits + 1, "audio/flac", "qwen3-asr-flash")
        assert caught.value.limit_bytes == MAX_DATA_URL_BYTES
        assert caught.value.url_bytes > MAX_DATA_URL_BYTES

    def test_too_large_is_refused_before_reading(self) -> None:
        """The size cap is checked from the announced size, so a huge stream is never read."""
        stream = io.BytesIO(AUDIO)

        with pytest.raises(PayloadTooLargeError):
            InlineStorage(limit_bytes=1000).put(KEY, stream, len(AUDIO), "audio/flac", "qwen3-asr-flash")
        assert stream.tell() == 0

    def test_size_mismatch_is_a_bug(self) -> None:
        """A stream longer or shorter than the announced size is refused, not silently cut."""
        with pytest.raises(ValueError, match="expected"):
            InlineStorage().put(KEY, io.BytesIO(AUDIO), len(AUDIO) - 1, "audio/flac", "qwen3-asr-flash")

    def test_a_file_is_handed_back_to_be_read_as_its_request_is_sent(self, tmp_path: Path) -> None:
        staged = tmp_path / "chunk-0003.flac"
        staged.write_bytes(AUDIO)

        audio = InlineStorage().put_file(KEY, staged, "audio/flac", "qwen3-asr-flash")

        assert audio == InlineAudio(str(staged), "audio/flac", len(AUDIO))
        assert audio.url_length == len(
            InlineStorage().put(KEY, io.BytesIO(AUDIO), len(AUDIO), "audio/flac", "m")
        )

    def test_a_file_too_large_for_one_request_is_refused(self, tmp_path: Path) -> None:
        staged = tmp_path / "chunk-0003.flac"
        staged.write_bytes(AUDIO)

        with pytest.raises(PayloadTooLargeError):
            InlineStorage(limit_bytes=1000).put_file(KEY, staged, "audio/flac", "qwen3-asr-flash")

    def test_flags(self) -> None:
        """Inline data URLs need no OSS header and cannot feed file-transcription tasks."""
        store = InlineStorage()
        assert (store.oss_resolve, store.sync_only) == (False, True)
        store.delete(KEY)
        store.close()


def test_s3_needs_a_bucket() -> None:
    """An s3 store without a bucket is a config error naming the key."""
    with pytest.raises(ConfigError, match=r"storage\.bucket"):
        S3Storage(bucket=None, endpoint_url="http://127.0.0.1:9")
