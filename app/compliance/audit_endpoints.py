"""Audit HTTP that needs the store and the signing key: full verification, signed checkpoints,
the public key and exports (roles auditor, admin). Entries are read in app/audit/endpoints.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from app.audit import repository
from app.audit.service import verify_chain
from app.compliance.audit_schemas import (
    AuditVerificationRead,
    CheckpointRead,
    CheckpointsRead,
    CheckpointStatusRead,
)
from app.compliance.checkpoints import (
    create_checkpoint,
    export_audit_log,
    verify_checkpoints,
)
from app.compliance.signed import CHECKPOINT_ACTION
from app.kit.auth import Principal, Role
from app.kit.crypto.signing import SigningKey
from app.kit.deps import SessionDep, require_roles
from app.kit.openapi import error_responses
from app.samples.deps import StoreDep
from app.tables.audit import AuditEntry

router = APIRouter(prefix="/v1/governance/audit", tags=["audit"])

Auditor = Annotated[Principal, Depends(require_roles(Role.AUDITOR))]
PEM_MEDIA_TYPE = "application/x-pem-file"
BUNDLE_MEDIA_TYPE = "application/gzip"


def get_signer(request: Request) -> SigningKey:
    signer: SigningKey = request.app.state.signer
    return signer


SignerDep = Annotated[SigningKey, Depends(get_signer)]


@router.get(
    "/verify",
    response_model=AuditVerificationRead,
    summary="Verify the audit log: its hash chain and every signed checkpoint",
    description=(
        "Recomputes every entry's hash in order and names the first entry that was changed, "
        "removed or reordered; then checks every signed checkpoint in the log and every copy "
        "anchored in the blob store against the entries as they are: a signed head that is "
        "gone means entries were deleted, one with another hash that the chain was rewritten. "
        "Roles `auditor` or `admin`."
    ),
    responses=error_responses(401, 403),
)
def verify(
    session: SessionDep, store: StoreDep, signer: SignerDep, _principal: Auditor
) -> AuditVerificationRead:
    report = verify_chain(session)
    keys = [signer.public_key] if signer.path.exists() else []
    status = verify_checkpoints(session, store, keys)
    return AuditVerificationRead(
        ok=report.ok and status.ok,
        entries=report.entries,
        first_bad_seq=report.first_bad_seq,
        reason=report.reason,
        head_hash=report.head_hash,
        checkpoints=CheckpointStatusRead(**status.as_dict()),
    )


@router.get(
    "/checkpoints",
    response_model=CheckpointsRead,
    summary="List the signed checkpoints",
    description=(
        "Checkpoints in the log, oldest first: the head each signs, the sealed months' "
        "digests, the store inventory and the Ed25519 signature. Page with `after_seq`. Roles "
        "`auditor` or `admin`."
    ),
    responses=error_responses(400, 401, 403),
)
def list_checkpoints(
    session: SessionDep,
    _principal: Auditor,
    after_seq: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CheckpointsRead:
    rows = repository.list_entries(
        session, action=CHECKPOINT_ACTION, after_seq=after_seq, limit=limit
    )
    checkpoints = [_checkpoint_read(row) for row in rows]
    return CheckpointsRead(
        checkpoints=checkpoints, next_after_seq=rows[-1].seq if len(rows) == limit else None
    )


@router.post(
    "/checkpoints",
    response_model=CheckpointRead,
    status_code=201,
    summary="Sign a checkpoint now",
    description=(
        "Signs the chain's head, the sealed months' digests and the store inventory with the "
        "service's Ed25519 key (`mip worker` does it hourly). A chain that does not verify is "
        "not signed (409). Roles `auditor` or `admin`."
    ),
    responses=error_responses(401, 403, 409),
)
def sign_checkpoint(
    session: SessionDep, store: StoreDep, signer: SignerDep, principal: Auditor
) -> CheckpointRead:
    entry = create_checkpoint(session, store, signer, actor=principal.actor)
    return _checkpoint_read(entry)


@router.get(
    "/public-key",
    summary="The public key that checks checkpoints, exports and signed reports",
    description=(
        "The service's Ed25519 public key (PEM). Keep a copy from a trusted channel: "
        "`mip audit verify-export BUNDLE --public-key KEY.pem` checks an export with it, "
        "offline. Roles `auditor` or `admin`."
    ),
    response_class=Response,
    responses={
        200: {"content": {PEM_MEDIA_TYPE: {}}, "description": "The PEM public key"},
        **error_responses(401, 403),
    },
)
def public_key(signer: SignerDep, _principal: Auditor) -> Response:
    return Response(
        content=signer.public_key_pem(),
        media_type=PEM_MEDIA_TYPE,
        headers={"x-mip-key-id": signer.key_id},
    )


@router.post(
    "/exports",
    summary="Export the audit log for offline verification",
    description=(
        "Signs a checkpoint, then answers a gzipped tar of every entry up to it with a signed "
        "manifest (`entries.jsonl`, `manifest.json`, `public-key.pem`, `VERIFY.txt`). Check it "
        "anywhere with `mip audit verify-export BUNDLE --public-key KEY.pem`; no database is "
        "needed. The export is audited. Roles `auditor` or `admin`."
    ),
    response_class=FileResponse,
    responses={
        200: {"content": {BUNDLE_MEDIA_TYPE: {}}, "description": "The bundle"},
        **error_responses(401, 403, 409),
    },
)
def export(
    request: Request, store: StoreDep, signer: SignerDep, principal: Auditor
) -> FileResponse:
    folder = Path(tempfile.mkdtemp(prefix="mip-audit-export-"))
    path = folder / "audit-export.tar.gz"
    try:
        manifest = export_audit_log(
            request.app.state.sessionmaker, store, signer, path, actor=principal.actor
        )
    except BaseException:
        _remove(folder)
        raise
    return FileResponse(
        path,
        media_type=BUNDLE_MEDIA_TYPE,
        filename=f"audit-export-{manifest['head_seq']}.tar.gz",
        background=BackgroundTask(_remove, folder),
    )


def _remove(folder: Path) -> None:
    for child in folder.iterdir():
        child.unlink(missing_ok=True)
    folder.rmdir()


def _checkpoint_read(entry: AuditEntry) -> CheckpointRead:
    details: dict[str, Any] = entry.details
    payload = details.get("payload")
    signed: dict[str, Any] = payload if isinstance(payload, dict) else {}
    found = signed.get("audit")
    audit: dict[str, Any] = found if isinstance(found, dict) else {}
    return CheckpointRead(
        seq=entry.seq,
        created_at=entry.created_at,
        actor=entry.actor,
        head_seq=int(audit.get("head_seq", 0)),
        head_hash=str(audit.get("head_hash", "")),
        key_id=str(signed.get("key_id", "")),
        payload=signed,
        signature=str(details.get("signature", "")),
    )
