"""The request-metadata ledger and billing periods."""

from __future__ import annotations

import datetime as dt
import uuid

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
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime, utcnow


class LedgerEntry(Base):
    """One transcription request: metadata only, never audio or transcript."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("project_id", "request_id"),
        CheckConstraint("method IN ('sync', 'async', 'streaming')", name="method"),
        CheckConstraint(
            "opt_out_source IN ('request', 'contract', 'default', 'consent_withdrawn')",
            name="opt_out_source",
        ),
        CheckConstraint("list_amount_micros = discount_micros + amount_micros", name="amounts"),
        Index("ix_ledger_entries_billing_period_org", "billing_period", "organization_id"),
        Index("ix_ledger_entries_project_created", "project_id", "created_at"),
        Index("ix_ledger_entries_org_created", "organization_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    request_id: Mapped[str] = mapped_column(String(128))
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    endpoint: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str] = mapped_column(String(128))
    model_uuid: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(64))
    model_tier: Mapped[str] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(32))
    features: Mapped[list[str]] = mapped_column(JSON)
    tags: Mapped[list[str]] = mapped_column(JSON)
    duration_seconds: Mapped[float] = mapped_column(Float)
    channels: Mapped[int] = mapped_column(Integer)
    http_status: Mapped[int] = mapped_column(Integer)
    mip_opt_out: Mapped[bool] = mapped_column(Boolean)
    opt_out_source: Mapped[str] = mapped_column(String(32))
    sample_kept: Mapped[bool] = mapped_column(Boolean, default=False)
    # The sampling decision, recomputable by an audit: selected iff the request was a
    # candidate (opted in, status < 400) and HMAC(secret, request_id) mapped to [0, 1) was
    # below sampling_rate (NULL when it was no candidate).
    sample_selected: Mapped[bool] = mapped_column(Boolean, default=False)
    sampling_rate: Mapped[float | None] = mapped_column(Float)
    # Pricing as applied when recorded; later price changes never rewrite it.
    plan: Mapped[str] = mapped_column(String(32))
    price_book_version: Mapped[str] = mapped_column(String(64))
    rate_micros_per_minute: Mapped[int] = mapped_column(BigInteger)
    discount_bps: Mapped[int] = mapped_column(Integer)
    list_amount_micros: Mapped[int] = mapped_column(BigInteger)
    discount_micros: Mapped[int] = mapped_column(BigInteger)
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    # usage_period: the month the request happened; billing_period: the month that bills it
    # (later than usage_period when it arrived after that month was closed: an adjustment).
    usage_period: Mapped[str] = mapped_column(String(7))
    billing_period: Mapped[str] = mapped_column(String(7))
    is_adjustment: Mapped[bool] = mapped_column(Boolean)
    event_hash: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BillingPeriod(Base):
    """A calendar month (UTC). A missing row means the month is open."""

    __tablename__ = "billing_periods"
    __table_args__ = (CheckConstraint("status IN ('open', 'closed')", name="status"),)

    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[str | None] = mapped_column(String(100))
