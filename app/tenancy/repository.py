"""Every query of the tenancy domain."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence
from typing import Literal

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.kit.db import utcnow
from app.kit.errors import NotFound
from app.tables.ledger import LedgerEntry
from app.tables.tenancy import ApiKey, Organization, Project, Reseller


def get_reseller(session: Session, reseller_id: uuid.UUID) -> Reseller | None:
    return session.get(Reseller, reseller_id)


def get_organization(session: Session, organization_id: uuid.UUID) -> Organization | None:
    return session.get(Organization, organization_id)


def get_organization_or_raise(session: Session, organization_id: uuid.UUID) -> Organization:
    org = get_organization(session, organization_id)
    if org is None:
        raise NotFound(f"Organization {organization_id} not found.")
    return org


def list_organizations(session: Session) -> Sequence[Organization]:
    return session.scalars(select(Organization).order_by(Organization.created_at)).all()


def get_project(session: Session, project_id: uuid.UUID) -> Project | None:
    return session.get(Project, project_id)


def get_project_or_raise(session: Session, project_id: uuid.UUID) -> Project:
    project = get_project(session, project_id)
    if project is None:
        raise NotFound(f"Project {project_id} not found.")
    return project


def get_projects(session: Session, project_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Project]:
    if not project_ids:
        return {}
    rows = session.scalars(select(Project).where(Project.id.in_(set(project_ids)))).all()
    return {p.id: p for p in rows}


def get_organizations(
    session: Session, organization_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Organization]:
    if not organization_ids:
        return {}
    stmt = select(Organization).where(Organization.id.in_(set(organization_ids)))
    return {o.id: o for o in session.scalars(stmt)}


def get_keys(session: Session, key_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, ApiKey]:
    if not key_ids:
        return {}
    return {k.id: k for k in session.scalars(select(ApiKey).where(ApiKey.id.in_(set(key_ids))))}


def list_projects(
    session: Session, *, organization_id: uuid.UUID | None = None
) -> Sequence[Project]:
    stmt = select(Project).order_by(Project.created_at)
    if organization_id is not None:
        stmt = stmt.where(Project.organization_id == organization_id)
    return session.scalars(stmt).all()


def get_key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()


def get_project_key(session: Session, *, project_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
    return session.scalars(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.project_id == project_id)
    ).first()


def list_project_keys(
    session: Session,
    *,
    project_id: uuid.UUID,
    include_revoked: bool = False,
    status: Literal["active", "expired"] | None = None,
    now: dt.datetime | None = None,
) -> Sequence[ApiKey]:
    """A project's keys; ``status`` keeps the unexpired or the expired ones as of ``now``."""
    stmt = select(ApiKey).where(ApiKey.project_id == project_id).order_by(ApiKey.created_at)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    if status is not None:
        now = now or utcnow()
        if status == "active":
            stmt = stmt.where(or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now))
        else:
            stmt = stmt.where(ApiKey.expires_at <= now)
    return session.scalars(stmt).all()


def get_key(session: Session, key_id: uuid.UUID) -> ApiKey | None:
    return session.get(ApiKey, key_id)


def list_resellers(session: Session) -> Sequence[Reseller]:
    return session.scalars(select(Reseller).order_by(Reseller.created_at)).all()


def get_balance_micros(session: Session, *, organization_id: uuid.UUID) -> int | None:
    """Prepaid credit minus every ledger amount of the organization, summed in the database."""
    spent = (
        select(func.coalesce(func.sum(LedgerEntry.amount_micros), 0))
        .where(LedgerEntry.organization_id == organization_id)
        .scalar_subquery()
    )
    balance = session.scalar(
        select(Organization.prepaid_credit_micros - spent).where(Organization.id == organization_id)
    )
    # PostgreSQL sums BIGINT as NUMERIC: back to an exact int.
    return None if balance is None else int(balance)


def count_live_admin_keys(session: Session, *, now: dt.datetime) -> int:
    """Admin staff keys that still authenticate (not revoked, not expired)."""
    stmt = (
        select(func.count())
        .select_from(ApiKey)
        .where(
            ApiKey.role == "admin",
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        )
    )
    return int(session.scalar(stmt) or 0)
