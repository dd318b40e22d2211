"""Audit-log HTTP: read entries and verify the hash chain (roles auditor, admin)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.audit import repository
from app.audit.schemas import AuditEntriesRead, AuditEntryRead, ChainVerificationRead
from app.audit.service import verify_chain
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


@router.get(
    "/verify",
    response_model=ChainVerificationRead,
    summary="Verify the audit log's hash chain",
    description=(
        "Recomputes every entry's hash in order and names the first entry that was changed, "
        "removed or reordered. Roles `auditor` or `admin`."
    ),
)
def verify(session: SessionDep, _principal: Auditor) -> ChainVerificationRead:
    report = verify_chain(session)
    return ChainVerificationRead(
        ok=report.ok,
        entries=report.entries,
        first_bad_seq=report.first_bad_seq,
        reason=report.reason,
        head_hash=report.head_hash,
    )
