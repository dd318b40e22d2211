"""Audit-log HTTP: read entries (roles auditor, admin). Verification, signed checkpoints and
exports are app/compliance/audit_endpoints.py: they need the store and the signing key."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.audit import repository
from app.audit.schemas import AuditEntriesRead, AuditEntryRead
from app.kit.auth import Principal, Role
from app.kit.deps import SessionDep, require_roles

router = APIRouter(prefix="/v1/governance/audit", tags=["audit"])

Auditor = Annotated[Principal, Depends(require_roles(Role.AUDITOR))]


@router.get(
    "/entries",
    response_model=AuditEntriesRead,
    summary="Read the audit log",
    description=(
        "Entries in chain order (`seq`), optionally filtered by action and organization. Page "
        "with `after_seq`. Roles `auditor` or `admin`."
    ),
    responses={400: {"description": "Invalid filter or limit"}},
)
def list_entries(
    session: SessionDep,
    _principal: Auditor,
    action: Annotated[
        str | None, Query(min_length=1, max_length=64, description="e.g. 'api_key.revoked'")
    ] = None,
    organization_id: Annotated[uuid.UUID | None, Query()] = None,
    after_seq: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="Only entries after this seq")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditEntriesRead:
    rows = repository.list_entries(
        session,
        action=action,
        organization_id=organization_id,
        after_seq=after_seq,
        limit=limit,
    )
    entries = [AuditEntryRead.model_validate(r) for r in rows]
    next_after = entries[-1].seq if len(entries) == limit else None
    return AuditEntriesRead(entries=entries, next_after_seq=next_after)
