"""Custom models: a reseller's own models, built from its customers' transcribed audio."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime, utcnow

CUSTOM_MODEL_STATUSES = (
    "collecting",
    "validating",
    "ready_to_train",
    "training",
    "testing",
    "published",
    "failed",
    "archived",
)


class CustomModel(Base):
    """A reseller's model. Its name is unique per reseller; its base is the served model it
    was created from (name, version and uuid as they were then)."""

    __tablename__ = "custom_models"
    __table_args__ = (
        UniqueConstraint("reseller_id", "name"),
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{s}'" for s in CUSTOM_MODEL_STATUSES)),
            name="status",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    reseller_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("resellers.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(1000), default="")
    language: Mapped[str] = mapped_column(String(16))
    domain: Mapped[str] = mapped_column(String(64))
    base_model_name: Mapped[str] = mapped_column(String(128))
    base_model_version: Mapped[str] = mapped_column(String(64))
    base_model_uuid: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16), default="collecting")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    archived_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The model's data key (its training data is sealed under it), wrapped by the KEK.
    data_key_wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    data_kek_version: Mapped[str | None] = mapped_column(String(256))
    # The confirmed data set: frozen by its content hash (files, audio and transcript hashes).
    data_hash: Mapped[str | None] = mapped_column(String(64))
    data_files: Mapped[int | None] = mapped_column(Integer)
    data_seconds: Mapped[float | None] = mapped_column(Float)
    data_confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    data_confirmed_by: Mapped[str | None] = mapped_column(String(100))
    # The vocabulary the next version is trained and decoded with (asr.vocabulary rows).
    vocabulary: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    published_version_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)


CUSTOM_DATA_STATUSES = ("accepted", "rejected", "removed")


class CustomDataFile(Base):
    """One uploaded (audio, transcript) pair of a custom model, with its validation.

    The audio and the transcript are sealed under the model's data key; a pair whose audio
    does not decode keeps its record (the reasons) and no object.
    """

    __tablename__ = "custom_data_files"
    __table_args__ = (
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{s}'" for s in CUSTOM_DATA_STATUSES)),
            name="status",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("custom_models.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    speaker: Mapped[str | None] = mapped_column(String(128))
    # Set when an organization the model is shared with contributed the pair: it is sealed
    # under that organization's data key and goes with the organization's erasure.
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    audio_format: Mapped[str | None] = mapped_column(String(16))
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    snr_db: Mapped[float | None] = mapped_column(Float)
    chars_per_second: Mapped[float | None] = mapped_column(Float)
    loss_per_char: Mapped[float | None] = mapped_column(Float)
    audio_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    audio_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    audio_blob_key: Mapped[str | None] = mapped_column(String(512))
    transcript_blob_key: Mapped[str | None] = mapped_column(String(512))
    uploaded_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


CUSTOM_UPLOAD_STATUSES = ("uploading", "validating", "complete", "failed", "terminated")


class CustomUpload(Base):
    """A resumable (tus 1.0) upload of a training-data archive to a custom model.

    Each PATCH's bytes are one object sealed under the model's data key; ``offset`` counts the
    bytes received. When the last byte arrives the archive is read as an archive upload is, its
    outcome kept in ``result``, and the parts are deleted.
    """

    __tablename__ = "custom_uploads"
    __table_args__ = (
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{s}'" for s in CUSTOM_UPLOAD_STATUSES)),
            name="status",
        ),
        CheckConstraint("upload_offset >= 0 AND upload_offset <= upload_length", name="offset"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("custom_models.id", ondelete="RESTRICT"), index=True
    )
    upload_length: Mapped[int] = mapped_column(BigInteger)
    upload_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    parts: Mapped[int] = mapped_column(Integer, default=0)
    upload_metadata: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="uploading")
    result: Mapped[dict[str, object] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


CUSTOM_VERSION_STATUSES = ("candidate", "published", "retired", "rejected")


class CustomModelVersion(Base):
    """One trained version of a custom model: immutable once written, numbered per model.

    It records what it was built from (data-set hash, vocabulary, base model, settings), its
    test against the standard model, and its package (a ``.dg`` sealed in the blob store,
    installed in the models directory while it is published).
    """

    __tablename__ = "custom_model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "number"),
        UniqueConstraint("package_uuid"),
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{s}'" for s in CUSTOM_VERSION_STATUSES)),
            name="status",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("custom_models.id", ondelete="RESTRICT"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    package_uuid: Mapped[str] = mapped_column(String(36))
    package_name: Mapped[str] = mapped_column(String(128))
    package_version: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(300))
    blob_key: Mapped[str] = mapped_column(String(512))
    package_sha256: Mapped[str] = mapped_column(String(64))
    data_hash: Mapped[str] = mapped_column(String(64))
    data_files: Mapped[int] = mapped_column(Integer)
    data_seconds: Mapped[float] = mapped_column(Float)
    vocabulary: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    base_model: Mapped[dict[str, Any]] = mapped_column(JSON)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    test: Mapped[dict[str, Any]] = mapped_column(JSON)
    report_blob_key: Mapped[str | None] = mapped_column(String(512))
    job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    published_by: Mapped[str | None] = mapped_column(String(100))


ASSIGNMENT_MODES = ("default", "optional")
PERMISSIONS = ("view", "use", "contribute")


class CustomModelAssignment(Base):
    """A custom model shared with one organization of its reseller.

    ``mode`` default: used when a request of the organization names no model; optional: when
    it names this one. Active while ``revoke_at`` is unset or still ahead: a revocation,
    immediate or scheduled, takes effect on the next request without a restart.
    """

    __tablename__ = "custom_model_assignments"
    __table_args__ = (
        UniqueConstraint("model_id", "organization_id"),
        CheckConstraint("mode IN ('default', 'optional')", name="mode"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("custom_models.id", ondelete="RESTRICT"), index=True
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    mode: Mapped[str] = mapped_column(String(16))
    can_view: Mapped[bool] = mapped_column(Boolean, default=True)
    can_use: Mapped[bool] = mapped_column(Boolean, default=True)
    can_contribute: Mapped[bool] = mapped_column(Boolean, default=False)
    revoke_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
