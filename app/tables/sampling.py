"""Sampling rates: which fraction of an organization's or a model's opted-in requests is kept."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, Float, ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime, utcnow


class SamplingRate(Base):
    """A sampling rate for an organization, a model, or a model within an organization."""

    __tablename__ = "sampling_rates"
    __table_args__ = (
        # NULLs are distinct in a unique constraint, so the pair is also kept as one key.
        UniqueConstraint("scope_key"),
        CheckConstraint("rate >= 0 AND rate <= 1", name="rate"),
        CheckConstraint("organization_id IS NOT NULL OR model_name IS NOT NULL", name="has_scope"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    scope_key: Mapped[str] = mapped_column(String(200))
    organization_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organizations.id"))
    model_name: Mapped[str | None] = mapped_column(String(128))
    rate: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))
