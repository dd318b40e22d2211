"""Samples HTTP: intake from a gateway, catalog, labels, content reads."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import FormData

from app.kit.auth import Principal, Role, Scope
from app.kit.deps import CurrentPrincipal, SessionDep, require_roles
from app.kit.errors import BadRequest, Forbidden
from app.kit.multipart import form_field, read_multipart
from app.kit.openapi import error_responses
from app.kit.text import check_storable
from app.samples import repository, service
from app.samples.deps import StoreDep
from app.samples.schemas import ReferenceIn, SampleList, SampleRead, SampleUpdate

router = APIRouter(prefix="/v1/governance", tags=["samples"])

Admin = Annotated[Principal, Depends(require_roles())]
Labeler = Annotated[Principal, Depends(require_roles(Role.DATAOPS))]

_ERRORS = error_responses(400, 401, 403, 404)


async def _read_multipart(request: Request, limit: int) -> FormData:
    # The body's size is the request guard's to limit (app.main gives this route ``limit``).
    return await read_multipart(request, limit, max_files=2, max_fields=8, what="the sample")


# The route parses its multipart body itself (in memory, within the guard's limit): the form
# is documented here so that clients and schemathesis know its fields.
_SAMPLE_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["project_id", "request_id", "audio", "transcript"],
                    "properties": {
                        "project_id": {"type": "string", "format": "uuid"},
                        "request_id": {"type": "string"},
                        "audio": {"type": "string", "format": "binary"},
                        "transcript": {"type": "string", "format": "binary"},
                        "attributes": {"type": "string"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/samples",
    status_code=201,
    response_model=SampleRead,
    summary="Keep a selected request's audio and transcript (encrypted)",
    description=(
        "multipart/form-data with fields `project_id`, `request_id`, `audio` (WAV, FLAC, OGG "
        "or MP3), `transcript` (the JSON transcription response) and optional `attributes` "
        "(JSON object: accent, age_group, sex, noise_type, environment, domain). Only a ledger "
        "row that is opted in, successful and selected by the sampler accepts a sample; "
        "anything else is refused (409) before the audio is read, and nothing is written. "
        "Needs a staff key with role `admin` (an upstream gateway)."
    ),
    responses={
        **_ERRORS,
        **error_responses(
            413,
            415,
            specific={
                408: "The body arrived too slowly",
                409: "Opted out, failed, not selected, already stored, or under erasure",
            },
        ),
    },
    openapi_extra=_SAMPLE_FORM,
)
async def create_sample(
    request: Request, session: SessionDep, store: StoreDep, _principal: Admin
) -> SampleRead:
    form = await _read_multipart(request, store.max_bytes + service.MAX_TRANSCRIPT_BYTES + 65536)
    try:
        project_raw = await form_field(form, "project_id")
        request_id = (await form_field(form, "request_id") or b"").decode(errors="replace").strip()
        assert project_raw is not None
        try:
            project_id = uuid.UUID(project_raw.decode(errors="replace").strip())
        except ValueError:
            raise BadRequest("project_id is not a UUID.") from None
        if not request_id:
            raise BadRequest("request_id is empty.")
        check_storable("request_id", request_id)
        # The guards first: an opted-out request is refused before its audio is touched.
        entry = await run_in_threadpool(
            service.candidate_for, session, project_id=project_id, request_id=request_id
        )
        audio = await form_field(form, "audio")
        transcript = await form_field(form, "transcript")
        raw_attributes = await form_field(form, "attributes", required=False)
    finally:
        await form.close()
    attributes: dict[str, Any] = {}
    if raw_attributes:
        try:
            parsed = orjson.loads(raw_attributes)
        except orjson.JSONDecodeError:
            raise BadRequest("attributes is not valid JSON.") from None
        if not isinstance(parsed, dict):
            raise BadRequest("attributes must be a JSON object.")
        attributes = parsed
    assert audio is not None
    assert transcript is not None
    sample = await run_in_threadpool(
        service.keep_for,
        session,
        store,
        entry,
        audio=audio,
        response=transcript,
        attributes=attributes,
    )
    return SampleRead.of(sample)


_SAMPLE_STAFF = frozenset({Role.ADMIN, Role.DATAOPS, Role.AUDITOR})


def _check_can_read(principal: Principal) -> None:
    if principal.is_staff and principal.role not in _SAMPLE_STAFF:
        raise Forbidden("Samples are visible to admin, dataops and auditor staff keys.")
    if not principal.is_staff and Scope.SAMPLES_READ not in principal.scopes:
        raise Forbidden("This key lacks the 'samples:read' scope.")


def _list_scope(principal: Principal, organization_id: uuid.UUID | None) -> uuid.UUID | None:
    _check_can_read(principal)
    if principal.is_staff:
        return organization_id
    # A customer key sees its own organization's samples, whatever it asked for.
    if organization_id is not None and organization_id != principal.organization_id:
        return uuid.UUID(int=0)
    return principal.organization_id


@router.get(
    "/samples",
    response_model=SampleList,
    summary="List samples (staff: any organization; a project key: its own organization)",
    responses=_ERRORS,
)
def list_samples(
    session: SessionDep,
    principal: CurrentPrincipal,
    organization_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
    page: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SampleList:
    scope = _list_scope(principal, organization_id)
    rows, total = repository.list_samples(
        session, organization_id=scope, project_id=project_id, limit=limit, offset=page * limit
    )
    return SampleList(samples=[SampleRead.of(r) for r in rows], total=total, page=page, limit=limit)


@router.get("/samples/{sample_id}", response_model=SampleRead, responses=_ERRORS)
def get_sample(
    session: SessionDep, principal: CurrentPrincipal, sample_id: uuid.UUID
) -> SampleRead:
    sample = service.get_visible_sample(session, principal, sample_id)
    _check_can_read(principal)
    return SampleRead.of(sample)


@router.patch(
    "/samples/{sample_id}",
    response_model=SampleRead,
    summary="Label attributes (dataops, admin); set or release a legal hold (admin)",
    responses=_ERRORS,
)
def update_sample(
    session: SessionDep, principal: Labeler, sample_id: uuid.UUID, body: SampleUpdate
) -> SampleRead:
    if body.legal_hold is not None and principal.role != Role.ADMIN:
        raise Forbidden("Only the admin role can set or release a legal hold.")
    sample = service.get_visible_sample(session, principal, sample_id)
    service.label_sample(
        session,
        sample,
        attributes=body.attributes,
        actor=principal.actor,
        legal_hold=body.legal_hold,
    )
    return SampleRead.of(sample)


@router.delete(
    "/samples/{sample_id}",
    status_code=204,
    summary="Delete a sample (its owner's key with samples:write, or dataops/admin)",
    responses=_ERRORS,
)
def delete_sample(
    session: SessionDep, store: StoreDep, principal: CurrentPrincipal, sample_id: uuid.UUID
) -> Response:
    # Someone else's id is a 404 before any permission question.
    sample = service.get_visible_sample(session, principal, sample_id)
    if principal.is_staff and principal.role not in service.CONTENT_READERS:
        raise Forbidden("Only dataops or admin staff keys can delete samples.")
    if not principal.is_staff and Scope.SAMPLES_WRITE not in principal.scopes:
        raise Forbidden("This key lacks the 'samples:write' scope.")
    service.delete_sample(
        session, store, sample, actor=principal.actor, reason="deleted by request"
    )
    return Response(status_code=204)


@router.put(
    "/samples/{sample_id}/reference",
    response_model=SampleRead,
    summary="Store a corrected (reference) transcript, encrypted (dataops, admin)",
    responses=_ERRORS,
)
def set_reference(
    session: SessionDep,
    store: StoreDep,
    principal: Labeler,
    sample_id: uuid.UUID,
    body: ReferenceIn,
) -> SampleRead:
    sample = service.get_visible_sample(session, principal, sample_id)
    service.set_reference(session, store, sample, text=body.transcript, actor=principal.actor)
    return SampleRead.of(sample)


def _content(kind: str) -> Any:
    def read(
        session: SessionDep, store: StoreDep, principal: CurrentPrincipal, sample_id: uuid.UUID
    ) -> Response:
        content = service.read_content(session, store, principal, sample_id, kind)
        media = {"transcript": "application/json", "reference": "text/plain; charset=utf-8"}.get(
            kind, "application/octet-stream"
        )
        return Response(content, media_type=media, headers={"Cache-Control": "no-store"})

    return read


for _kind in ("audio", "transcript", "reference"):
    router.add_api_route(
        f"/samples/{{sample_id}}/{_kind}",
        _content(_kind),
        methods=["GET"],
        summary=f"Decrypted {_kind} (dataops, admin); every read is audit-logged",
        responses={**_ERRORS, 200: {"description": f"The {_kind} as it was received"}},
        response_class=Response,
        name=f"read_sample_{_kind}",
    )
