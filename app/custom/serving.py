"""Which custom models an organization's requests may use and see, right now.

    grant = choose(session, organization_id, requested=params.model)   # None: a served model
    visible = visible_packages(session, organization_id)                # for /v1/models

A request that names no model gets the organization's ``default`` custom model (with the
``use`` permission); one that names a custom model (its name, its id or its package uuid)
gets it when it is shared with the organization for ``use``. Only models with a published
version count (whatever their next version is doing), archived ones never.
A custom package is never served any other way (the registry hides it), so a revoked or
never-shared model falls through to the documented 400 for a model that is not available.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.custom.sharing import active
from app.kit.auth import Principal
from app.kit.db import utcnow
from app.tables.custom import CustomModel, CustomModelAssignment, CustomModelVersion

PRICE_TIER = "custom"  # the price-book tier of a request served by a custom model


@dataclass(frozen=True, slots=True)
class Grant:
    model_id: uuid.UUID
    model_name: str
    version: int
    package_uuid: str
    package_version: str
    mode: str
    can_view: bool
    can_use: bool
    can_contribute: bool


def grants(
    session: Session, organization_id: uuid.UUID, *, now: dt.datetime | None = None
) -> list[Grant]:
    """The organization's active shares of published custom models."""
    stmt = (
        select(CustomModelAssignment, CustomModel, CustomModelVersion)
        .join(CustomModel, CustomModel.id == CustomModelAssignment.model_id)
        .join(CustomModelVersion, CustomModelVersion.id == CustomModel.published_version_id)
        .where(
            CustomModelAssignment.organization_id == organization_id,
            # A published version keeps serving while the next one is collected, trained and
            # tested; archiving ends it.
            CustomModel.status != "archived",
            active(now or utcnow()),
        )
    )
    return [
        Grant(
            model_id=model.id,
            model_name=model.name,
            version=version.number,
            package_uuid=version.package_uuid,
            package_version=version.package_version,
            mode=assignment.mode,
            can_view=assignment.can_view,
            can_use=assignment.can_use,
            can_contribute=assignment.can_contribute,
        )
        for assignment, model, version in session.execute(stmt)
    ]


def choose(
    session: Session,
    organization_id: uuid.UUID,
    *,
    requested: str | None,
    now: dt.datetime | None = None,
) -> Grant | None:
    """The custom model a request of the organization is served by, or None."""
    usable = [g for g in grants(session, organization_id, now=now) if g.can_use]
    if requested is None:
        return next((g for g in usable if g.mode == "default"), None)
    wanted = requested.strip().lower()
    return next(
        (g for g in usable if wanted in (g.model_name, str(g.model_id), g.package_uuid)), None
    )


def visible_packages(
    session: Session, organization_id: uuid.UUID, *, now: dt.datetime | None = None
) -> dict[str, Grant]:
    """Package uuid -> grant of the custom models the organization may see (``view``)."""
    return {g.package_uuid: g for g in grants(session, organization_id, now=now) if g.can_view}


def visible_to(session: Session, principal: Principal) -> frozenset[str]:
    """What ``/v1/models`` adds for the caller: its organization's viewable custom packages
    (installed on ``app.state.visible_restricted`` by the factory)."""
    if principal.organization_id is None:
        return frozenset()
    return frozenset(visible_packages(session, principal.organization_id))
