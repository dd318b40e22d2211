"""Every query of the datasets domain (training sets and their membership)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.orm import Session

from app.kit.db import paged, utcnow
from app.tables.datasets import TrainingSet, TrainingSetSample
from app.tables.erasure import ErasureRequest
from app.tables.ledger import LedgerEntry
from app.tables.samples import DataKey, Sample
from app.tables.tenancy import Organization

_INSERT_BATCH = 1000


def get_training_set(session: Session, set_id: uuid.UUID) -> TrainingSet | None:
    return session.get(TrainingSet, set_id)


def get_training_set_by_name(
    session: Session, *, name: str, version: int | None
) -> TrainingSet | None:
    stmt = select(TrainingSet).where(TrainingSet.name == name)
    if version is not None:
        stmt = stmt.where(TrainingSet.version == version)
    return session.scalars(stmt.order_by(TrainingSet.version.desc())).first()


def list_training_sets(
    session: Session, *, name: str | None, limit: int, offset: int
) -> tuple[Sequence[TrainingSet], int]:
    stmt = select(TrainingSet)
    if name is not None:
        stmt = stmt.where(TrainingSet.name == name)
    order = (TrainingSet.created_at.desc(), TrainingSet.version.desc())
    return paged(session, stmt, *order, limit=limit, offset=offset)


def next_version(session: Session, *, name: str) -> int:
    latest = session.scalar(select(func.max(TrainingSet.version)).where(TrainingSet.name == name))
    return (latest or 0) + 1


def add_members(
    session: Session, *, set_id: uuid.UUID, members: Iterable[tuple[uuid.UUID, uuid.UUID, str]]
) -> None:
    """Insert (sample id, organization id, split) rows in batches."""
    batch: list[dict[str, object]] = []
    for sample_id, organization_id, split in members:
        batch.append(
            {
                "training_set_id": set_id,
                "sample_id": sample_id,
                "organization_id": organization_id,
                "split": split,
            }
        )
        if len(batch) == _INSERT_BATCH:
            session.execute(insert(TrainingSetSample), batch)
            batch = []
    if batch:
        session.execute(insert(TrainingSetSample), batch)


def members(session: Session, set_id: uuid.UUID) -> Sequence[Row[uuid.UUID, uuid.UUID, str]]:
    return session.execute(
        select(
            TrainingSetSample.sample_id,
            TrainingSetSample.organization_id,
            TrainingSetSample.split,
        )
        .where(TrainingSetSample.training_set_id == set_id)
        .order_by(TrainingSetSample.sample_id)
    ).all()


def sets_holding_organization(session: Session, organization_id: uuid.UUID) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(TrainingSetSample.training_set_id)
            .where(TrainingSetSample.organization_id == organization_id)
            .distinct()
        )
    )


def sets_holding_samples(session: Session, sample_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    found: set[uuid.UUID] = set()
    for start in range(0, len(sample_ids), _INSERT_BATCH):
        chunk = sample_ids[start : start + _INSERT_BATCH]
        found.update(
            session.scalars(
                select(TrainingSetSample.training_set_id)
                .where(TrainingSetSample.sample_id.in_(chunk))
                .distinct()
            )
        )
    return sorted(found)


def project_sample_ids(
    session: Session, *, organization_id: uuid.UUID, project_id: uuid.UUID
) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(Sample.id).where(
                Sample.organization_id == organization_id, Sample.project_id == project_id
            )
        )
    )


def mark_tainted(session: Session, set_ids: Sequence[uuid.UUID], *, reason: str) -> list[uuid.UUID]:
    """Mark the sets not yet tainted; returns the ids that changed."""
    if not set_ids:
        return []
    changed = list(
        session.scalars(
            select(TrainingSet.id).where(
                TrainingSet.id.in_(set_ids), TrainingSet.status != "tainted"
            )
        )
    )
    if changed:
        session.execute(
            update(TrainingSet)
            .where(TrainingSet.id.in_(changed))
            .values(status="tainted", tainted_at=utcnow(), taint_reason=reason[:1000])
            .execution_options(synchronize_session="fetch")
        )
    return sorted(changed)


def catalog_rows(
    session: Session,
    *,
    organization_ids: Sequence[uuid.UUID] | None,
    domain: str | None,
    language: str | None,
) -> Sequence[Row[Sample, bool, bool]]:
    """Samples with their ledger row's opt-out flag and their organization's contract opt-out."""
    stmt = (
        select(Sample, LedgerEntry.mip_opt_out, Organization.contract_opt_out)
        .join(LedgerEntry, LedgerEntry.id == Sample.ledger_entry_id, isouter=True)
        .join(Organization, Organization.id == Sample.organization_id)
    )
    if organization_ids is not None:
        stmt = stmt.where(Sample.organization_id.in_(organization_ids))
    if domain is not None:
        stmt = stmt.where(Sample.domain == domain)
    if language is not None:
        stmt = stmt.where(Sample.language == language)
    return session.execute(stmt.order_by(Sample.created_at, Sample.id)).all()


def erasing_scopes(session: Session) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """Organizations and projects with an erasure requested and not yet done."""
    organizations: set[uuid.UUID] = set()
    projects: set[uuid.UUID] = set()
    for row in session.scalars(select(ErasureRequest).where(ErasureRequest.status != "done")):
        if row.scope == "organization":
            organizations.add(row.organization_id)
        elif row.project_id is not None:
            projects.add(row.project_id)
    return organizations, projects


def shredded_organizations(session: Session) -> set[uuid.UUID]:
    return set(
        session.scalars(
            select(DataKey.organization_id).where(DataKey.status == "destroyed").distinct()
        )
    )


def lock_training_set(session: Session, set_id: uuid.UUID) -> TrainingSet | None:
    """The row, locked until the transaction ends (PostgreSQL; SQLite has one writer anyway)."""
    return session.scalars(
        select(TrainingSet).where(TrainingSet.id == set_id).with_for_update()
    ).first()


def remove_reports(
    session: Session, set_ids: Sequence[uuid.UUID], *, reason: str
) -> list[uuid.UUID]:
    """Destroy the report keys of the sets whose reports are not removed yet; returns their ids.

    Sets built before reports were encrypted have no key: they are marked all the same, and
    their plaintext reports are deleted by the caller.
    """
    if not set_ids:
        return []
    removed: set[uuid.UUID] = set()
    for start in range(0, len(set_ids), _INSERT_BATCH):
        chunk = set_ids[start : start + _INSERT_BATCH]
        removed.update(
            session.scalars(
                select(TrainingSet.id).where(
                    TrainingSet.id.in_(chunk), TrainingSet.reports_removed_at.is_(None)
                )
            )
        )
    ordered = sorted(removed)
    for start in range(0, len(ordered), _INSERT_BATCH):
        session.execute(
            update(TrainingSet)
            .where(TrainingSet.id.in_(ordered[start : start + _INSERT_BATCH]))
            .values(
                report_key_wrapped=None,
                report_kek_version=None,
                reports_removed_at=utcnow(),
                reports_removed_reason=reason[:1000],
            )
            .execution_options(synchronize_session="fetch")
        )
    session.flush()
    return ordered


def sets_with_removed_reports(session: Session, *, reason: str | None = None) -> list[uuid.UUID]:
    stmt = select(TrainingSet.id).where(TrainingSet.reports_removed_at.is_not(None))
    if reason is not None:
        stmt = stmt.where(TrainingSet.reports_removed_reason == reason[:1000])
    return list(session.scalars(stmt.order_by(TrainingSet.id)))


def sets_with_plaintext_reports(session: Session) -> list[uuid.UUID]:
    """Sets built before reports were encrypted, whose reports were not removed since."""
    return list(
        session.scalars(
            select(TrainingSet.id)
            .where(
                TrainingSet.report_key_wrapped.is_(None),
                TrainingSet.reports_removed_at.is_(None),
            )
            .order_by(TrainingSet.created_at, TrainingSet.id)
        )
    )


def sets_with_report_keys(session: Session) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(TrainingSet.id)
            .where(TrainingSet.report_key_wrapped.is_not(None))
            .order_by(TrainingSet.id)
        )
    )
