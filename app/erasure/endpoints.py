"""Erasure HTTP: erase an organization's or a project's samples; read requests and tombstones."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from app.erasure import repository, service
from app.erasure.schemas import ErasureIn, ErasureRead
from app.kit.auth import Principal, Role, Scope
from app.kit.db import session_scope
from app.kit.deps import CurrentPrincipal, SessionDep, require_roles
from app.kit.errors import BadRequest, Forbidden
from app.kit.openapi import error_responses
from app.samples.deps import StoreDep

router = APIRouter(prefix="/v1/governance", tags=["samples"])

Admin = Annotated[Principal, Depends(require_roles())]
_ERRORS = error_responses(400, 401, 403, 404)


def _erasure_scope(
    principal: Principal, body: ErasureIn
) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    if body.scope == "project" and body.project_id is None:
        raise BadRequest("scope 'project' needs project_id.")
    if principal.is_staff:
        if principal.role != Role.ADMIN:
            raise Forbidden("Only the admin role can request an erasure.")
        if body.scope == "organization":
            if body.organization_id is None:
                raise BadRequest("scope 'organization' needs organization_id.")
            return body.organization_id, None
        # A project's organization is the project's own; naming it is optional.
        return body.organization_id, body.project_id
    if Scope.SAMPLES_WRITE not in principal.scopes:
        raise Forbidden("This key lacks the 'samples:write' scope.")
    if body.scope != "project" or body.project_id != principal.project_id:
        raise Forbidden("A project key can request the erasure of its own project only.")
    assert principal.organization_id is not None
    return principal.organization_id, principal.project_id


@router.post(
    "/erasure-requests",
    status_code=201,
    response_model=ErasureRead,
    summary="Erase an organization's or a project's samples (crypto-shredding for organizations)",
    description=(
        "Runs at once and answers with the request's state: `done` only when nothing of the "
        "scope remains; `failed` with the reason otherwise (resume it). Staff admin keys: any "
        "scope; a project key with `samples:write`: its own project."
    ),
    responses={
        **_ERRORS,
        **error_responses(specific={409: "An erasure of this scope is already open"}),
    },
)
def create_erasure(
    request: Request, store: StoreDep, principal: CurrentPrincipal, body: ErasureIn
) -> ErasureRead:
    organization_id, project_id = _erasure_scope(principal, body)
    factory = request.app.state.sessionmaker
    with session_scope(factory) as session:
        row = service.request_erasure(
            session,
            organization_id=organization_id,
            project_id=project_id,
            actor=principal.actor,
            withdraw_consent=body.withdraw_consent,
            store=store,
        )
        erasure_id = row.id
    return ErasureRead.model_validate(
        service.run_erasure(factory, store, erasure_id, actor=principal.actor)
    )


def _visible_erasure(session: Session, principal: Principal, erasure_id: uuid.UUID) -> ErasureRead:
    row = service.get_erasure(session, erasure_id)
    if principal.is_staff:
        if principal.role not in {Role.ADMIN, Role.AUDITOR}:
            raise Forbidden("Only admin and auditor staff keys can read erasure requests.")
    elif row.organization_id != principal.organization_id or row.project_id != principal.project_id:
        raise service.ErasureNotFound(f"Erasure request {erasure_id} not found.")
    return ErasureRead.model_validate(row)


@router.get(
    "/erasure-requests",
    response_model=list[ErasureRead],
    summary="Erasure requests and tombstones (admin, auditor; a project key: its own)",
    responses=_ERRORS,
)
def list_erasures(
    session: SessionDep, principal: CurrentPrincipal, organization_id: uuid.UUID | None = None
) -> list[ErasureRead]:
    if principal.is_staff:
        if principal.role not in {Role.ADMIN, Role.AUDITOR}:
            raise Forbidden("Only admin and auditor staff keys can read erasure requests.")
        rows = repository.list_erasures(session, organization_id=organization_id)
    else:
        rows = [
            r
            for r in repository.list_erasures(session, organization_id=principal.organization_id)
            if r.project_id == principal.project_id
        ]
    return [ErasureRead.model_validate(r) for r in rows]


@router.get("/erasure-requests/{erasure_id}", response_model=ErasureRead, responses=_ERRORS)
def get_erasure(
    session: SessionDep, principal: CurrentPrincipal, erasure_id: uuid.UUID
) -> ErasureRead:
    return _visible_erasure(session, principal, erasure_id)


@router.post(
    "/erasure-requests/{erasure_id}/resume",
    response_model=ErasureRead,
    summary="Resume a failed or interrupted erasure from its first unfinished store",
    description=(
        "Staff admin keys: any erasure; a project key with `samples:write`: its own project's."
    ),
    responses=_ERRORS,
)
def resume_erasure(
    request: Request, store: StoreDep, principal: CurrentPrincipal, erasure_id: uuid.UUID
) -> ErasureRead:
    factory = request.app.state.sessionmaker
    with session_scope(factory) as session:
        row = service.get_erasure(session, erasure_id)
        _check_can_resume(principal, row.organization_id, row.project_id, erasure_id)
    return ErasureRead.model_validate(
        service.run_erasure(factory, store, erasure_id, actor=principal.actor)
    )


def _check_can_resume(
    principal: Principal,
    organization_id: uuid.UUID,
    project_id: uuid.UUID | None,
    erasure_id: uuid.UUID,
) -> None:
    """Who may request an erasure may resume it (another tenant's is a 404)."""
    if principal.is_staff:
        if principal.role != Role.ADMIN:
            raise Forbidden("Only the admin role can resume an erasure.")
        return
    if organization_id != principal.organization_id or project_id != principal.project_id:
        raise service.ErasureNotFound(f"Erasure request {erasure_id} not found.")
    if Scope.SAMPLES_WRITE not in principal.scopes:
        raise Forbidden("This key lacks the 'samples:write' scope.")
