"""Every query of the audit domain that is not part of appending or verifying the chain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.tables.audit import AuditEntry


def list_entries(
    session: Session,
    *,
    action: str | None = None,
    organization_id: uuid.UUID | None = None,
    after_seq: int = 0,
    limit: int = 100,
) -> Sequence[AuditEntry]:
    """Entries with ``seq > after_seq`` matching the filters, oldest first."""
    stmt = select(AuditEntry).where(AuditEntry.seq > after_seq)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    if organization_id is not None:
        stmt = stmt.where(AuditEntry.organization_id == organization_id)
    return session.scalars(stmt.order_by(AuditEntry.seq).limit(limit)).all()


def newest_entries(session: Session, *, limit: int) -> list[AuditEntry]:
    """The newest ``limit`` entries, oldest first."""
    stmt = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
    return list(reversed(session.scalars(stmt).all()))
