"""Request and response bodies of the samples endpoints."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field

from app.tables.samples import Sample


class SampleAttributes(BaseModel):
    accent: str | None = None
    age_group: str | None = None
    sex: str | None = None
    noise_type: str | None = None
    snr_db: float | None = None
    environment: str | None = None
    domain: str | None = None


class AttributeSources(BaseModel):
    accent: str | None = None
    age_group: str | None = None
    sex: str | None = None
    noise_type: str | None = None
    snr_db: str | None = None
    environment: str | None = None
    domain: str | None = None


class SampleRead(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    project_id: uuid.UUID
    request_id: str
    created_at: dt.datetime
    retention_until: dt.datetime
    legal_hold: bool
    key_version: int
    audio_format: str
    audio_bytes: int
    transcript_bytes: int
    stored_bytes: int
    duration_seconds: float
    sample_rate: int
    channels: int
    language: str | None
    model_name: str
    audio_sha256: str | None = Field(description="sha256 of the audio as received")
    has_reference: bool = Field(description="a labeler's corrected transcript is stored")
    reference_at: dt.datetime | None
    attributes: SampleAttributes
    attribute_sources: AttributeSources = Field(
        description="measured (from the audio), labeled (by DataOps) or client (sent with it)"
    )

    @classmethod
    def of(cls, sample: Sample) -> SampleRead:
        names = SampleAttributes.model_fields
        return cls(
            id=sample.id,
            organization_id=sample.organization_id,
            project_id=sample.project_id,
            request_id=sample.request_id,
            created_at=sample.created_at,
            retention_until=sample.retention_until,
            legal_hold=sample.legal_hold,
            key_version=sample.key_version,
            audio_format=sample.audio_format,
            audio_bytes=sample.audio_bytes,
            transcript_bytes=sample.transcript_bytes,
            stored_bytes=sample.stored_bytes,
            audio_sha256=sample.audio_sha256,
            has_reference=sample.reference_blob_key is not None,
            reference_at=sample.reference_at,
            duration_seconds=sample.duration_seconds,
            sample_rate=sample.sample_rate,
            channels=sample.channels,
            language=sample.language,
            model_name=sample.model_name,
            attributes=SampleAttributes(**{n: getattr(sample, n) for n in names}),
            attribute_sources=AttributeSources(
                **{n: getattr(sample, f"{n}_source") for n in names}
            ),
        )


class SampleList(BaseModel):
    samples: list[SampleRead]
    total: int
    page: int
    limit: int


class SampleUpdate(BaseModel):
    """Labels to set (``null`` clears one); ``legal_hold`` needs the admin role."""

    model_config = ConfigDict(extra="forbid")

    attributes: dict[str, str | float | None] = Field(default_factory=dict)
    legal_hold: bool | None = None


class ReferenceIn(BaseModel):
    """A corrected transcript of the sample's audio (plain text, as spoken)."""

    model_config = ConfigDict(extra="forbid")

    transcript: str = Field(min_length=1, max_length=20_000)
