"""What the sample store needs at run time, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.kit.blob import BlobStore, open_blob_store
from app.kit.crypto import AwsKmsKeyProvider, KeyProvider, LocalKeyProvider
from app.kit.settings import Settings
from app.samples.keys import UnwrappedKeyCache


@dataclass(frozen=True)
class SampleStore:
    blobs: BlobStore
    keys: KeyProvider
    max_bytes: int
    max_seconds: float
    cache: UnwrappedKeyCache = field(default_factory=UnwrappedKeyCache)


def open_key_provider(settings: Settings) -> KeyProvider:
    if settings.key_provider == "aws-kms":
        assert settings.kms_key_id is not None  # enforced by Settings
        return AwsKmsKeyProvider(
            settings.kms_key_id,
            region=settings.s3_region,
            endpoint_url=settings.kms_endpoint_url,
        )
    return LocalKeyProvider(settings.effective_key_file)


def open_sample_store(settings: Settings) -> SampleStore:
    """Nothing is contacted here: S3 and KMS clients are created on first use."""
    return SampleStore(
        blobs=open_blob_store(
            settings.effective_blob_url,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
        ),
        keys=open_key_provider(settings),
        max_bytes=settings.max_sample_bytes,
        max_seconds=settings.max_sample_seconds,
    )
