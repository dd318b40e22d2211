"""Versioned training sets and the exact samples each one holds (lineage).

``training_set_samples.sample_id`` has no foreign key on purpose: erasure and retention delete
catalog rows, and the set must still say which samples it held (that is how it is tainted).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
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

TRAINING_SET_STATUSES = ("ready", "tainted")
SPLITS = ("train", "eval")


class TrainingSet(Base):
    """One version of a named training set: how it was built and what it holds."""

    __tablename__ = "training_sets"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        CheckConstraint("status IN ('ready', 'tainted')", name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="ready")
    # Build parameters: balance spec, validation rules, filters, seed.
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    manifest_hash: Mapped[str] = mapped_column(String(64))
    # Validation statistics and per-expectation outcomes (sample ids, never content).
    validation: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Balance summary, before/after distributions and deficit.
    balance: Mapped[dict[str, Any]] = mapped_column(JSON)
    sample_count: Mapped[int] = mapped_column(Integer)
    eval_count: Mapped[int] = mapped_column(Integer, default=0)
    duration_seconds: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    tainted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    taint_reason: Mapped[str | None] = mapped_column(String(1000))
    # The reports' own data key, only ever stored wrapped by the KEK. Both NULL for a set built
    # before reports were encrypted (plaintext until `mip curate encrypt-reports`); the key is
    # NULL once the reports were removed with an erasure or a purge (crypto-shredding).
    report_key_wrapped: Mapped[bytes | None] = mapped_column(LargeBinary)
    report_kek_version: Mapped[str | None] = mapped_column(String(256))
    reports_removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reports_removed_reason: Mapped[str | None] = mapped_column(String(1000))


class TrainingSetSample(Base):
    """Membership: sample ``sample_id`` of ``organization_id`` is in the set's train/eval split."""

    __tablename__ = "training_set_samples"
    __table_args__ = (
        CheckConstraint("split IN ('train', 'eval')", name="split"),
        Index("ix_training_set_samples_sample_id", "sample_id"),
        Index("ix_training_set_samples_organization_id", "organization_id"),
    )

    training_set_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("training_sets.id", ondelete="CASCADE"), primary_key=True
    )
    sample_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    split: Mapped[str] = mapped_column(String(8), default="train")
