"""Custom models: a reseller's own models, built from its customers' transcribed audio."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint, Uuid
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
