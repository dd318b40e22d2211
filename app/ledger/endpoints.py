"""Ledger HTTP: batch ingest for an upstream gateway."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from app.kit.auth import Principal, Role
from app.kit.deps import SessionDep, SettingsDep
from app.kit.errors import PayloadTooLarge
from app.ledger import service
from app.ledger.schemas import LedgerBatchIn, LedgerBatchOut
from app.tenancy.auth import require_roles

router = APIRouter(prefix="/v1/governance/ledger", tags=["ledger"])

# Generous for 10,000 events of a few hundred bytes each; refuses absurd bodies before parsing.
MAX_BODY_BYTES = 32 * 1024 * 1024

Ingestor = Annotated[Principal, Depends(require_roles(Role.ADMIN))]


@router.post(
    "/events",
    response_model=LedgerBatchOut,
    summary="Record a batch of request events (atomic, idempotent)",
    description=(
        "Up to `MIP_MAX_BATCH_EVENTS` (10,000) events. The whole batch is validated before "
        "anything is written, then written in one transaction. An identical re-send of a "
        "recorded `(project_id, request_id)` counts as a duplicate and changes nothing; a "
        "different event under the same ids is a 409 that names them. Needs a staff key "
        "with role `admin`."
    ),
    responses={
        400: {"description": "Invalid event (the message names the field)"},
        409: {"description": "Conflicting duplicate request id(s)"},
        413: {"description": "Too many events or too large a body"},
    },
)
def ingest_events(
    request: Request,
    batch: LedgerBatchIn,
    session: SessionDep,
    settings: SettingsDep,
    _principal: Ingestor,
) -> LedgerBatchOut:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"Request body over {MAX_BODY_BYTES} bytes.")
    if len(batch.events) > settings.max_batch_events:
        raise PayloadTooLarge(
            f"{len(batch.events)} events in one batch; the limit is {settings.max_batch_events}."
        )
    result = service.ingest_batch(session, batch.events)
    return LedgerBatchOut(
        received=result.received,
        recorded=result.recorded,
        duplicates=result.duplicates,
        adjustments=result.adjustments,
    )
