"""The store ``storage.type`` names, built from the settings: the one place settings meet a store."""

from __future__ import annotations

from dropscribe.adapters.dashscope import DashScopeClient
from dropscribe.adapters.storage import DashScopeTempStorage, InlineStorage
from dropscribe.config.model import StorageSettings
from dropscribe.core.ports.storage import Storage


def make_storage(settings: StorageSettings, client: DashScopeClient) -> Storage:
    """The store ``settings.type`` names; ``client`` carries uploads to temporary storage."""
    if settings.type == "s3":
        from dropscribe.adapters.s3_storage import S3Storage  # boto3 is slow to import: only when used

        return S3Storage(
            bucket=settings.bucket,
            endpoint_url=settings.endpoint_url,
            prefix=settings.prefix,
            region=settings.region,
            addressing_style=settings.addressing_style,
            presign_ttl_s=settings.presign_ttl_s,
            keep=settings.keep,
        )
    if settings.type == "dashscope":
        return DashScopeTempStorage(client)
    return InlineStorage()
