"""Sharing a custom model with the organizations of its reseller, and revoking it.

An assignment gives one organization the model as its ``default`` (used when a request names
no model) or as an ``optional`` model (used when a request names it), with permissions
``view`` (listed in ``/v1/models``), ``use`` (transcribe) and ``contribute`` (upload training
data). A revocation is immediate or scheduled (``revoke_at``): an assignment is active while
``revoke_at`` is unset or still ahead, so it ends on time without a job or a restart.

    assign(session, model, organization_ids=[org], mode="default",
           permissions={"view", "use"}, revoke_at=None, actor=principal.actor)
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.audit.service import record_event
from app.kit.db import utcnow
from app.kit.errors import BadRequest, Conflict, NotFound
from app.tables.custom import PERMISSIONS, CustomModel, CustomModelAssignment
from app.tables.tenancy import Organization


class InvalidAssignment(BadRequest):
    pass


class AssignmentConflict(Conflict):
    pass


class AssignmentNotFound(NotFound):
    pass


def active(now: dt.datetime) -> ColumnElement[bool]:
    """The SQL condition of an assignment in force at ``now``."""
    return or_(CustomModelAssignment.revoke_at.is_(None), CustomModelAssignment.revoke_at > now)


def is_active(assignment: CustomModelAssignment, now: dt.datetime) -> bool:
    return assignment.revoke_at is None or assignment.revoke_at > now


def permissions_of(assignment: CustomModelAssignment) -> list[str]:
    flags = (assignment.can_view, assignment.can_use, assignment.can_contribute)
    return [name for name, flag in zip(PERMISSIONS, flags, strict=True) if flag]


def _check_organizations(
    session: Session, model: CustomModel, organization_ids: Collection[uuid.UUID]
) -> None:
    """Every organization exists and belongs to the model's reseller (400 naming the others)."""
    wanted = set(organization_ids)
    owned = set(
        session.scalars(
            select(Organization.id).where(
                Organization.id.in_(wanted), Organization.reseller_id == model.reseller_id
            )
        )
    )
    foreign = sorted(str(o) for o in wanted - owned)
    if foreign:
        raise InvalidAssignment(
            "These organizations are not managed by the model's reseller: " + ", ".join(foreign)
        )


def _check_default_free(
    session: Session, model: CustomModel, organization_ids: Collection[uuid.UUID], now: dt.datetime
) -> None:
    """One active default model per organization: naming another one is a 409."""
    stmt = select(CustomModelAssignment).where(
        CustomModelAssignment.organization_id.in_(set(organization_ids)),
        CustomModelAssignment.mode == "default",
        CustomModelAssignment.model_id != model.id,
        active(now),
    )
    taken = session.scalars(stmt).all()
    if taken:
        names = ", ".join(sorted(str(a.organization_id) for a in taken))
        raise AssignmentConflict(
            f"These organizations already have another default custom model: {names}. Make "
            "that one optional or revoke it first."
        )


def assign(
    session: Session,
    model: CustomModel,
    *,
    organization_ids: Sequence[uuid.UUID],
    mode: str,
    permissions: Collection[str],
    revoke_at: dt.datetime | None,
    actor: str,
) -> list[CustomModelAssignment]:
    """Share with each organization (or change an existing share); all or none."""
    if model.status == "archived":
        raise AssignmentConflict(f"Custom model {model.name} is archived.")
    if not organization_ids or len(organization_ids) > 1000:
        raise InvalidAssignment("Name 1 to 1000 organizations.")
    if mode not in ("default", "optional"):
        raise InvalidAssignment("mode is 'default' or 'optional'.")
    unknown = set(permissions) - set(PERMISSIONS)
    if unknown or not permissions:
        raise InvalidAssignment(
            f"permissions are one or more of {', '.join(PERMISSIONS)}"
            + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else "")
            + "."
        )
    now = utcnow()
    if revoke_at is not None and revoke_at <= now:
        raise InvalidAssignment("revoke_at must be in the future (revoke now with DELETE).")
    ids = list(dict.fromkeys(organization_ids))
    _check_organizations(session, model, ids)
    if mode == "default":
        _check_default_free(session, model, ids, now)
    existing = {
        a.organization_id: a
        for a in session.scalars(
            select(CustomModelAssignment).where(
                CustomModelAssignment.model_id == model.id,
                CustomModelAssignment.organization_id.in_(ids),
            )
        )
    }
    rows = []
    for organization_id in ids:
        row = existing.get(organization_id)
        if row is None:
            row = CustomModelAssignment(
                model_id=model.id, organization_id=organization_id, created_at=now, created_by=actor
            )
            session.add(row)
        row.mode = mode
        row.can_view = "view" in permissions
        row.can_use = "use" in permissions
        row.can_contribute = "contribute" in permissions
        row.revoke_at = revoke_at
        row.updated_at = now
        rows.append(row)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="custom_model.assigned",
        target_type="custom_model",
        target_id=str(model.id),
        details={
            "organizations": [str(o) for o in ids],
            "mode": mode,
            "permissions": sorted(permissions),
            "revoke_at": revoke_at.isoformat() if revoke_at else None,
        },
    )
    return rows


def revoke(
    session: Session,
    model: CustomModel,
    *,
    organization_ids: Sequence[uuid.UUID],
    at: dt.datetime | None,
    actor: str,
) -> list[CustomModelAssignment]:
    """End the shares now (``at`` None) or at a future time; 404 for one that is not active."""
    now = utcnow()
    if at is not None and at <= now:
        raise InvalidAssignment("A scheduled revocation's time must be in the future.")
    if not organization_ids or len(organization_ids) > 1000:
        raise InvalidAssignment("Name 1 to 1000 organizations.")
    ids = list(dict.fromkeys(organization_ids))
    rows = session.scalars(
        select(CustomModelAssignment).where(
            CustomModelAssignment.model_id == model.id,
            CustomModelAssignment.organization_id.in_(ids),
            active(now),
        )
    ).all()
    missing = set(ids) - {r.organization_id for r in rows}
    if missing:
        raise AssignmentNotFound(
            f"Custom model {model.name} is not shared with: "
            + ", ".join(sorted(str(o) for o in missing))
        )
    for row in rows:
        row.revoke_at = at or now
        row.updated_at = now
    session.flush()
    record_event(
        session,
        actor=actor,
        action="custom_model.revoked" if at is None else "custom_model.revocation_scheduled",
        target_type="custom_model",
        target_id=str(model.id),
        details={"organizations": [str(o) for o in ids], "at": (at or now).isoformat()},
    )
    return list(rows)


def list_assignments(
    session: Session, model: CustomModel, *, include_revoked: bool = False
) -> Sequence[CustomModelAssignment]:
    stmt = select(CustomModelAssignment).where(CustomModelAssignment.model_id == model.id)
    if not include_revoked:
        stmt = stmt.where(active(utcnow()))
    return session.scalars(stmt.order_by(CustomModelAssignment.created_at)).all()


def shared_with(
    session: Session, organization_id: uuid.UUID, *, now: dt.datetime | None = None
) -> list[tuple[CustomModelAssignment, CustomModel]]:
    """The organization's active shares (published or not), with their models."""
    stmt = (
        select(CustomModelAssignment, CustomModel)
        .join(CustomModel, CustomModel.id == CustomModelAssignment.model_id)
        .where(
            CustomModelAssignment.organization_id == organization_id,
            CustomModel.status != "archived",
            active(now or utcnow()),
        )
        .order_by(CustomModel.name)
    )
    return [(assignment, model) for assignment, model in session.execute(stmt)]
