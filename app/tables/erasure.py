"""Erasure requests: what was asked to be erased, how far it got, and its tombstone."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime, utcnow


class ErasureRequest(Base):
    """An erasure of an organization's or a project's samples, and its tombstone afterwards.

    ``stores`` tracks each store separately ({"keys": "done", "blobs": "pending", ...}) so an
    interrupted request resumes where it stopped and is never reported done too early.
    """

    __tablename__ = "erasure_requests"
    __table_args__ = (
        CheckConstraint("scope IN ('organization', 'project')", name="scope"),
        CheckConstraint("status IN ('pending', 'in_progress', 'done', 'failed')", name="status"),
        Index("ix_erasure_requests_org", "organization_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    scope: Mapped[str] = mapped_column(String(16))
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    project_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    stores: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str | None] = mapped_column(String(1000))
    requested_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
