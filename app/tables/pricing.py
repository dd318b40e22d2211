"""The effective-dated price book."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, CheckConstraint, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.kit.db import Base, UTCDateTime, utcnow


class PriceBookEntry(Base):
    """Rate per audio minute (micro-dollars) for a plan and model tier from ``effective_from``.

    ``tier = "*"`` is the plan's rate for any tier without a row of its own.
    """

    __tablename__ = "price_book"
    __table_args__ = (
        UniqueConstraint("plan", "tier", "effective_from"),
        CheckConstraint("rate_micros_per_minute >= 0", name="rate_non_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    version: Mapped[str] = mapped_column(String(64))
    plan: Mapped[str] = mapped_column(String(32))
    tier: Mapped[str] = mapped_column(String(64))
    rate_micros_per_minute: Mapped[int] = mapped_column(BigInteger)
    effective_from: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
