"""Sampling rates per organization, per model, or per model within an organization."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.kit.db import utcnow
from app.kit.errors import BadRequest, NotFound
from app.sampling import repository
from app.sampling.policy import scope_key
from app.tables.sampling import SamplingRate
from app.tenancy import repository as tenancy_repository


def set_rate(
    session: Session,
    *,
    organization_id: uuid.UUID | None,
    model_name: str | None,
    rate: float,
    actor: str,
) -> SamplingRate:
    """Create or replace the rate of one scope (audited: it decides what is kept)."""
    if organization_id is None and model_name is None:
        raise BadRequest(
            "Name an organization_id, a model, or both; the global rate is MIP_SAMPLING_RATE."
        )
    if not 0.0 <= rate <= 1.0:
        raise BadRequest("rate must be between 0 and 1.")
    if organization_id is not None:
        tenancy_repository.get_organization_or_raise(session, organization_id)
    key = scope_key(organization_id, model_name)
    row = repository.get_sampling_rate_by_scope(session, key)
    previous = row.rate if row is not None else None
    if row is None:
        row = SamplingRate(
            scope_key=key, organization_id=organization_id, model_name=model_name, rate=rate
        )
        session.add(row)
    row.rate = rate
    row.updated_at = utcnow()
    row.updated_by = actor
    session.flush()
    record_event(
        session,
        actor=actor,
        action="sampling_rate.set",
        target_type="sampling_rate",
        target_id=key,
        organization_id=organization_id,
        details={"rate": rate, "previous": previous, "model": model_name},
    )
    return row


def delete_rate(session: Session, rate_id: uuid.UUID, *, actor: str) -> None:
    row = repository.get_sampling_rate(session, rate_id)
    if row is None:
        raise NotFound(f"Sampling rate {rate_id} not found.")
    session.delete(row)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="sampling_rate.deleted",
        target_type="sampling_rate",
        target_id=row.scope_key,
        organization_id=row.organization_id,
        details={"rate": row.rate},
    )
