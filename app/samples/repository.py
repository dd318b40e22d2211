"""Every query of the samples domain."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Generator, Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.kit.db import paged
from app.tables.erasure import ErasureRequest
from app.tables.ledger import LedgerEntry
from app.tables.samples import Sample


def get_ledger_entry(
    session: Session, *, project_id: uuid.UUID, request_id: str
) -> LedgerEntry | None:
    """The request's ledger row: what a sample of it may be kept for."""
    return session.scalars(
        select(LedgerEntry).where(
            LedgerEntry.project_id == project_id, LedgerEntry.request_id == request_id
        )
    ).first()


def get_sample(session: Session, sample_id: uuid.UUID) -> Sample | None:
    return session.get(Sample, sample_id)


def get_sample_for_request(
    session: Session, *, project_id: uuid.UUID, request_id: str
) -> Sample | None:
    return session.scalars(
        select(Sample).where(Sample.project_id == project_id, Sample.request_id == request_id)
    ).first()


def list_samples(
    session: Session,
    *,
    organization_id: uuid.UUID | None,
    project_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Sample], int]:
    stmt = select(Sample)
    if organization_id is not None:
        stmt = stmt.where(Sample.organization_id == organization_id)
    if project_id is not None:
        stmt = stmt.where(Sample.project_id == project_id)
    order = (Sample.created_at.desc(), Sample.id)
    return paged(session, stmt, *order, limit=limit, offset=offset)


def expired_samples(session: Session, *, now: dt.datetime, limit: int) -> Sequence[Sample]:
    return session.scalars(
        select(Sample)
        .where(Sample.retention_until <= now, Sample.legal_hold.is_(False))
        .order_by(Sample.retention_until, Sample.id)
        .limit(limit)
    ).all()


def samples_in_scope(
    session: Session,
    *,
    organization_id: uuid.UUID,
    project_id: uuid.UUID | None,
    limit: int | None = None,
) -> Sequence[Sample]:
    stmt = select(Sample).where(Sample.organization_id == organization_id)
    if project_id is not None:
        stmt = stmt.where(Sample.project_id == project_id)
    if limit is not None:
        stmt = stmt.order_by(Sample.id).limit(limit)
    return session.scalars(stmt).all()


def count_in_scope(
    session: Session, *, organization_id: uuid.UUID, project_id: uuid.UUID | None
) -> int:
    stmt = select(func.count()).select_from(Sample).where(Sample.organization_id == organization_id)
    if project_id is not None:
        stmt = stmt.where(Sample.project_id == project_id)
    return session.scalar(stmt) or 0


def delete_in_scope(
    session: Session, *, organization_id: uuid.UUID, project_id: uuid.UUID | None
) -> int:
    stmt = delete(Sample).where(Sample.organization_id == organization_id)
    if project_id is not None:
        stmt = stmt.where(Sample.project_id == project_id)
    result = session.execute(stmt)
    session.flush()
    return int(result.rowcount)  # type: ignore[attr-defined]


def all_blob_keys(session: Session) -> dict[str, uuid.UUID]:
    """Every blob key the catalog refers to, with its sample id."""
    keys: dict[str, uuid.UUID] = {}
    for sample_id, audio, transcript in session.execute(
        select(Sample.id, Sample.audio_blob_key, Sample.transcript_blob_key)
    ):
        keys[audio] = sample_id
        keys[transcript] = sample_id
    return keys


def erasure_in_progress(
    session: Session, *, organization_id: uuid.UUID, project_id: uuid.UUID
) -> bool:
    """Whether an unfinished erasure covers this organization or this project of it."""
    stmt = select(ErasureRequest.scope, ErasureRequest.project_id).where(
        ErasureRequest.organization_id == organization_id,
        ErasureRequest.status != "done",
    )
    return any(
        scope == "organization" or scoped == project_id for scope, scoped in session.execute(stmt)
    )


def batches_in_scope(
    session: Session, *, organization_id: uuid.UUID, project_id: uuid.UUID | None, batch: int
) -> Generator[Sequence[Sample]]:
    """The scope's catalog rows, oldest first, ``batch`` at a time (streamed, never all held)."""
    stmt = select(Sample).where(Sample.organization_id == organization_id)
    if project_id is not None:
        stmt = stmt.where(Sample.project_id == project_id)
    stmt = stmt.order_by(Sample.created_at, Sample.id)
    result = session.scalars(stmt.execution_options(yield_per=batch))
    try:
        yield from result.partitions()
    finally:
        result.close()
