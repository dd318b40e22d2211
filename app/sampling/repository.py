"""Every query of the sampling domain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.tables.sampling import SamplingRate


def list_sampling_rates(session: Session) -> Sequence[SamplingRate]:
    return session.scalars(
        select(SamplingRate).order_by(SamplingRate.organization_id, SamplingRate.model_name)
    ).all()


def get_sampling_rate(session: Session, rate_id: uuid.UUID) -> SamplingRate | None:
    return session.get(SamplingRate, rate_id)


def get_sampling_rate_by_scope(session: Session, scope_key: str) -> SamplingRate | None:
    return session.scalars(select(SamplingRate).where(SamplingRate.scope_key == scope_key)).first()
