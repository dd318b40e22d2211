"""The encrypted sample store: catalog and data keys.

Only ciphertext lives in the blob store; these tables hold metadata, wrapped keys and the
labels DataOps uses to balance training sets. Never audio, never a transcript.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime, utcnow

# Speaker and recording attributes a sample can carry; each has a value and a source. The
# curation library names the same columns (curation.schema.ATTRIBUTE_COLUMNS; a test checks
# that they agree): tables import no library.
ATTRIBUTES: tuple[str, ...] = (
    "accent",
    "age_group",
    "sex",
    "noise_type",
    "snr_db",
    "environment",
    "domain",
)
ATTRIBUTE_SOURCES: tuple[str, ...] = ("measured", "labeled", "client")


class DataKey(Base):
    """An organization's AES-256 data key, stored only wrapped by the key-encryption key."""

    __tablename__ = "data_keys"
    __table_args__ = (
        UniqueConstraint("organization_id", "version"),
        CheckConstraint("status IN ('active', 'retired', 'destroyed')", name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="active")
    kek_provider: Mapped[str] = mapped_column(String(16))
    kek_version: Mapped[str] = mapped_column(String(256))
    # NULL once destroyed (crypto-shredding): the objects it sealed can never be read again.
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    rewrapped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    destroyed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Sample(Base):
    """One kept request: where its ciphertext is, what it sounds like, how long it may stay."""

    __tablename__ = "samples"
    __table_args__ = (
        UniqueConstraint("project_id", "request_id"),
        Index("ix_samples_org_created", "organization_id", "created_at"),
        Index("ix_samples_retention_until", "retention_until"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"))
    request_id: Mapped[str] = mapped_column(String(128))
    ledger_entry_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    retention_until: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    audio_blob_key: Mapped[str] = mapped_column(String(300))
    transcript_blob_key: Mapped[str] = mapped_column(String(300))
    # A labeler's corrected transcript (encrypted like the others); training prefers it.
    reference_blob_key: Mapped[str | None] = mapped_column(String(300))
    reference_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reference_by: Mapped[str | None] = mapped_column(String(100))
    # sha256 of the audio bytes as received (Deepgram returns the same in its metadata):
    # curation drops a second copy of the same audio.
    audio_sha256: Mapped[str | None] = mapped_column(String(64))
    key_version: Mapped[int] = mapped_column(Integer)
    audio_bytes: Mapped[int] = mapped_column(BigInteger)
    transcript_bytes: Mapped[int] = mapped_column(BigInteger)
    stored_bytes: Mapped[int] = mapped_column(BigInteger)
    audio_format: Mapped[str] = mapped_column(String(16))
    duration_seconds: Mapped[float] = mapped_column(Float)
    sample_rate: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    language: Mapped[str | None] = mapped_column(String(32))
    model_name: Mapped[str] = mapped_column(String(128))
    accent: Mapped[str | None] = mapped_column(String(64))
    accent_source: Mapped[str | None] = mapped_column(String(16))
    age_group: Mapped[str | None] = mapped_column(String(64))
    age_group_source: Mapped[str | None] = mapped_column(String(16))
    sex: Mapped[str | None] = mapped_column(String(64))
    sex_source: Mapped[str | None] = mapped_column(String(16))
    noise_type: Mapped[str | None] = mapped_column(String(64))
    noise_type_source: Mapped[str | None] = mapped_column(String(16))
    snr_db: Mapped[float | None] = mapped_column(Float)
    snr_db_source: Mapped[str | None] = mapped_column(String(16))
    environment: Mapped[str | None] = mapped_column(String(64))
    environment_source: Mapped[str | None] = mapped_column(String(16))
    domain: Mapped[str | None] = mapped_column(String(64))
    domain_source: Mapped[str | None] = mapped_column(String(16))
    labeled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    labeled_by: Mapped[str | None] = mapped_column(String(100))
