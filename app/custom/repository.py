"""Queries of custom models (every one scoped to a reseller unless staff asks)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.tables.custom import CustomModel, CustomUpload
from app.tables.training import TrainingJob


def get_model(session: Session, model_id: uuid.UUID) -> CustomModel | None:
    return session.get(CustomModel, model_id)


def get_model_by_name(session: Session, reseller_id: uuid.UUID, name: str) -> CustomModel | None:
    stmt = select(CustomModel).where(
        CustomModel.reseller_id == reseller_id, CustomModel.name == name
    )
    return session.scalars(stmt).first()


def list_models(
    session: Session,
    *,
    reseller_id: uuid.UUID | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[CustomModel], int]:
    """A page of models (newest first) and the count of all matching; ``reseller_id`` None:
    every reseller's (staff)."""
    stmt = select(CustomModel)
    if reseller_id is not None:
        stmt = stmt.where(CustomModel.reseller_id == reseller_id)
    if status is not None:
        stmt = stmt.where(CustomModel.status == status)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    page = session.scalars(
        stmt.order_by(CustomModel.created_at.desc(), CustomModel.id).limit(limit).offset(offset)
    ).all()
    return page, total


def has_active_job(session: Session, model_id: uuid.UUID) -> bool:
    stmt = select(TrainingJob.id).where(
        TrainingJob.custom_model_id == model_id, TrainingJob.status.in_(("queued", "running"))
    )
    return session.scalar(stmt.limit(1)) is not None


def has_validating_upload(session: Session, model_id: uuid.UUID) -> bool:
    """Whether an upload of the model has all its bytes and is still being read."""
    stmt = select(CustomUpload.id).where(
        CustomUpload.model_id == model_id, CustomUpload.status == "validating"
    )
    return session.scalar(stmt.limit(1)) is not None
