"""Every query of the erasure domain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.tables.erasure import ErasureRequest


def get_erasure(session: Session, erasure_id: uuid.UUID) -> ErasureRequest | None:
    return session.get(ErasureRequest, erasure_id)


def open_erasure(
    session: Session, *, organization_id: uuid.UUID, project_id: uuid.UUID | None
) -> ErasureRequest | None:
    """An unfinished erasure covering this organization (or this project of it)."""
    stmt = select(ErasureRequest).where(
        ErasureRequest.organization_id == organization_id,
        ErasureRequest.status != "done",
    )
    for row in session.scalars(stmt):
        if row.scope == "organization" or row.project_id == project_id:
            return row
    return None


def list_erasures(
    session: Session, *, organization_id: uuid.UUID | None
) -> Sequence[ErasureRequest]:
    stmt = select(ErasureRequest).order_by(ErasureRequest.created_at.desc())
    if organization_id is not None:
        stmt = stmt.where(ErasureRequest.organization_id == organization_id)
    return session.scalars(stmt).all()
