"""Resellers, organizations, projects and API keys (project keys and staff keys)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime, utcnow


class Reseller(Base):
    __tablename__ = "resellers"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Organization(Base):
    __tablename__ = "organizations"
    __table_args__ = (
        CheckConstraint("plan IN ('pay_as_you_go', 'growth', 'enterprise')", name="plan"),
        CheckConstraint("retention_days > 0", name="retention_days"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str] = mapped_column(String(32))
    reseller_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("resellers.id", ondelete="RESTRICT"), index=True
    )
    # Enterprise contract: rate per audio minute in micro-dollars, by model tier ("*" = any tier).
    contract_rates: Mapped[dict[str, int] | None] = mapped_column(JSON)
    contract_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set by an erasure that withdrew consent: every later request is opted out.
    consent_withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    retention_days: Mapped[int] = mapped_column(Integer, default=30)
    # Prepaid credit in micro-dollars; the balance is this minus every ledger amount of the org.
    prepaid_credit_micros: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default=text("0")
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set by an erasure of this project that withdrew consent (see Organization).
    consent_withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


ONE_OWNER = (
    "(CASE WHEN project_id IS NULL THEN 0 ELSE 1 END) + "
    "(CASE WHEN role IS NULL THEN 0 ELSE 1 END) + "
    "(CASE WHEN reseller_id IS NULL THEN 0 ELSE 1 END) = 1"
)


class ApiKey(Base):
    """A project key (``project_id`` set, project scopes), a staff key (``role`` set) or a
    reseller key (``reseller_id`` set, reseller scopes): exactly one of the three."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(ONE_OWNER, name="one_owner"),
        CheckConstraint(
            "role IS NULL OR role IN ('admin', 'billing', 'dataops', 'auditor')", name="role"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.id", ondelete="RESTRICT"), index=True
    )
    role: Mapped[str | None] = mapped_column(String(16))
    reseller_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("resellers.id", ondelete="RESTRICT"), index=True
    )
    comment: Mapped[str] = mapped_column(String(500), default="")
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # SHA-256 of the secret: the secret has 160 random bits, so a slow hash adds nothing.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(100), default="cli")
