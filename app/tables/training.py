"""Training jobs, their log lines, and the model versions they produce.

A job is claimed by one worker at a time (``worker_id``, ``heartbeat_at``); a worker that stops
heart-beating loses the job, which is retried up to ``max_attempts`` or failed with the reason.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from uuid import UUID  # ModelVersion has a column named uuid

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime, utcnow

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
VERSION_STATUSES = ("candidate", "promoted", "demoted", "rejected")


class TrainingJob(Base):
    __tablename__ = "training_jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="status"
        ),
        Index("ix_training_jobs_status_created", "status", "created_at"),
        # A job trains either a training set (a new base version) or a custom model.
        CheckConstraint(
            "(training_set_id IS NULL) <> (custom_model_id IS NULL)", name="one_subject"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    base_model: Mapped[str] = mapped_column(String(200))  # a model name, alias or uuid
    training_set_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("training_sets.id"))
    custom_model_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("custom_models.id"), index=True
    )
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(2000))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=2)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class TrainingJobLog(Base):
    __tablename__ = "training_job_logs"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("training_jobs.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    level: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)


class ModelVersion(Base):
    """A packaged model a job produced: a candidate until promoted (then served) or rejected."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        UniqueConstraint("uuid"),
        CheckConstraint(
            "status IN ('candidate', 'promoted', 'demoted', 'rejected')", name="status"
        ),
        # One served version per name: of two promotions racing, the second one fails.
        Index(
            "uq_model_versions_promoted_name",
            "name",
            unique=True,
            postgresql_where=text("status = 'promoted'"),
            sqlite_where=text("status = 'promoted'"),
        ),
    )

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    uuid: Mapped[UUID] = mapped_column(Uuid)  # the package manifest's uuid
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    filename: Mapped[str] = mapped_column(String(300))  # the .dg file name
    blob_key: Mapped[str] = mapped_column(String(300))  # where the package is kept
    job_id: Mapped[UUID | None] = mapped_column(ForeignKey("training_jobs.id"))
    training_set_id: Mapped[UUID | None] = mapped_column(ForeignKey("training_sets.id"))
    base_model: Mapped[str | None] = mapped_column(String(200))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    policy: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the promotion policy verdict
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    promoted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    promoted_by: Mapped[str | None] = mapped_column(String(100))
    # The version this one replaced when promoted; demotion puts that one back.
    replaced_id: Mapped[UUID | None] = mapped_column(Uuid)
    # Set when its training set was tainted (an erasure or a purge removed samples it held):
    # it cannot be promoted, and a served one is handled by MIP_TAINTED_MODEL_POLICY.
    tainted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    taint_reason: Mapped[str | None] = mapped_column(String(1000))
