"""A custom model's usage: per day, organization and version — requests, audio minutes, last
used — from the ledger rows of the requests its versions served (by package uuid).

    rows = model_usage(session, model, start=dt.date(2026, 12, 1), end=dt.date(2026, 12, 31))
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.kit.db import utc_day
from app.kit.errors import BadRequest
from app.tables.custom import CustomModel, CustomModelVersion
from app.tables.ledger import LedgerEntry

MAX_DAYS = 366


@dataclass(frozen=True, slots=True)
class UsageLine:
    day: dt.date
    organization_id: uuid.UUID
    version: int | None
    requests: int
    audio_seconds: float
    last_used: dt.datetime


def model_usage(
    session: Session,
    model: CustomModel,
    *,
    start: dt.date,
    end: dt.date,
    organization_id: uuid.UUID | None = None,
) -> Sequence[UsageLine]:
    """Successful requests served by any version of ``model`` from ``start`` to ``end``
    (UTC days, both included), aggregated in the database."""
    if end < start:
        raise BadRequest("end must not be before start.")
    if (end - start).days >= MAX_DAYS:
        raise BadRequest(f"A usage period is at most {MAX_DAYS} days.")
    day = utc_day(session, LedgerEntry.created_at).label("day")
    begin = dt.datetime.combine(start, dt.time(), dt.UTC)
    finish = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)
    stmt = (
        select(
            day,
            LedgerEntry.organization_id,
            CustomModelVersion.number,
            func.count(),
            func.coalesce(func.sum(LedgerEntry.duration_seconds), 0.0),
            func.max(LedgerEntry.created_at),
        )
        .join(CustomModelVersion, CustomModelVersion.package_uuid == LedgerEntry.model_uuid)
        .where(
            CustomModelVersion.model_id == model.id,
            LedgerEntry.created_at >= begin,
            LedgerEntry.created_at < finish,
            LedgerEntry.http_status < 400,
        )
        .group_by(day, LedgerEntry.organization_id, CustomModelVersion.number)
        .order_by(day, LedgerEntry.organization_id, CustomModelVersion.number)
    )
    if organization_id is not None:
        stmt = stmt.where(LedgerEntry.organization_id == organization_id)
    lines = []
    for when, org, number, count, seconds, last in session.execute(stmt):
        lines.append(
            UsageLine(
                day=dt.date.fromisoformat(str(when)),
                organization_id=org,
                version=number,
                requests=int(count),
                audio_seconds=float(seconds),
                last_used=last if last.tzinfo else last.replace(tzinfo=dt.UTC),
            )
        )
    return lines
