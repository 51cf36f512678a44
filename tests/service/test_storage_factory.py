"""The store the settings name, built by the service: each storage type, and every s3 value reaching it."""

from __future__ import annotations

import hashlib
import io
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from dropscribe.adapters.dashscope import DashScopeClient
from dropscribe.adapters.s3_storage import S3Storage
from dropscribe.adapters.storage import DashScopeTempStorage, InlineStorage
from dropscribe.config.model import StorageSettings
from dropscribe.core.errors import ConfigError
from dropscribe.service.storage_factory import make_storage
from tests.support.s3 import (  # noqa: F401  (fixtures are used by name)
    REGION,
    S3Target,
    fixture_aws_credentials,
    fixture_moto_endpoint,
    fixture_s3_bucket,
)

AUDIO = b"RIFF" + bytes(range(256)) * 64
KEY = f"{hashlib.sha256(AUDIO).hexdigest()}/0.wav"


def test_type_picks_the_store(s3_bucket: S3Target) -> None:
    """storage.type picks the adapter; temporary storage needs the resolve header and feeds filetrans."""
    client = DashScopeClient("http://127.0.0.1:9/api/v1", "sk-test")
    s3 = make_storage(
        StorageSettings(type="s3", endpoint_url=s3_bucket.endpoint_url, bucket=s3_bucket.bucket), client
    )
    try:
        assert isinstance(s3, S3Storage)
        assert isinstance(make_storage(StorageSettings(type="inline"), client), InlineStorage)
        temp = make_storage(StorageSettings(type="dashscope"), client)
        assert isinstance(temp, DashScopeTempStorage)
        assert (temp.oss_resolve, temp.sync_only) == (True, False)
    finally:
        s3.close()
        client.close()


def test_s3_settings_reach_the_store(s3_bucket: S3Target) -> None:
    """Prefix, URL lifetime, addressing and keep, as configured, shape what is stored and handed out."""
    settings = StorageSettings(
        type="s3",
        endpoint_url=s3_bucket.endpoint_url,
        bucket=s3_bucket.bucket,
        prefix="team-a/",
        region=REGION,
        addressing_style="path",
        presign_ttl_s=900,
        keep=True,
    )
    client = DashScopeClient("http://127.0.0.1:9/api/v1", "sk-test")
    store = make_storage(settings, client)
    try:
        url = store.put(KEY, io.BytesIO(AUDIO), len(AUDIO), "audio/wav", "qwen3-asr-flash-filetrans")
        store.delete(KEY)
    finally:
        store.close()
        client.close()

    parts = urlsplit(url)
    assert parts.path == f"/{s3_bucket.bucket}/team-a/{KEY}"  # path-style, under the prefix
    assert parse_qs(parts.query)["X-Amz-Expires"] == ["900"]
    assert httpx.get(url).content == AUDIO  # kept: delete left it for inspection
    s3 = boto3.session.Session().client("s3", endpoint_url=s3_bucket.endpoint_url, region_name=REGION)
    listing = s3.list_objects_v2(Bucket=s3_bucket.bucket)
    s3.close()
    assert [item["Key"] for item in listing["Contents"]] == [f"team-a/{KEY}"]


def test_s3_without_bucket_is_a_config_error() -> None:
    """A settings object that skipped validation still cannot build a bucketless store."""
    client = DashScopeClient("http://127.0.0.1:9/api/v1", "sk-test")
    try:
        with pytest.raises(ConfigError, match=r"storage\.bucket"):
            make_storage(StorageSettings(type="s3"), client)
    finally:
        client.close()
