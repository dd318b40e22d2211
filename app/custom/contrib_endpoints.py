"""An organization's side of custom models shared with it: list them, and contribute
training data to one shared with the ``contribute`` permission.

A contributed pair is checked like the reseller's own uploads and sealed under the
organization's data key (under its blob prefix), so an erasure of the organization removes it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app.custom import sharing, versions
from app.custom.endpoints import store_pair
from app.custom.schemas import DataFileRead
from app.custom.service import CustomModelNotFound
from app.engine.endpoints import RegistryDep
from app.kit.auth import Scope
from app.kit.deps import CurrentPrincipal, SessionDep
from app.kit.openapi import error_responses
from app.samples.deps import StoreDep
from app.tables.custom import CustomModel
from app.tables.tenancy import Project
from app.tenancy.auth import ProjectAccess

router = APIRouter(prefix="/v1/projects/{project_id}/custom-models", tags=["custom models"])

SharedReader = Annotated[Project, Depends(ProjectAccess(Scope.PROJECT_READ))]
Contributor = Annotated[Project, Depends(ProjectAccess(Scope.SAMPLES_WRITE))]


class SharedModelRead(BaseModel):
    id: uuid.UUID = Field(description="The custom model's id (a request may name it)")
    name: str = Field(description="The name a request uses: model=<name>")
    status: str
    version: int | None = Field(description="The published version serving requests, if any")
    package_uuid: str | None = Field(description="metadata.models of the responses it serves")
    mode: str = Field(description="default (used when a request names no model) or optional")
    permissions: list[str] = Field(description="view, use, contribute")
    revoke_at: dt.datetime | None


class SharedModelList(BaseModel):
    models: list[SharedModelRead]


@router.get(
    "",
    response_model=SharedModelList,
    summary="Custom models shared with the project's organization",
    description="A project key with the `project:read` scope (in `member`).",
    responses=error_responses(400, 401, 403, 404),
)
def list_shared(project: SharedReader, session: SessionDep) -> SharedModelList:
    rows = []
    for assignment, model in sharing.shared_with(session, project.organization_id):
        published = versions.published_version(session, model)
        rows.append(
            SharedModelRead(
                id=model.id,
                name=model.name,
                status=model.status,
                version=published.number if published else None,
                package_uuid=published.package_uuid if published else None,
                mode=assignment.mode,
                permissions=sharing.permissions_of(assignment),
                revoke_at=assignment.revoke_at,
            )
        )
    return SharedModelList(models=rows)


@router.post(
    "/{model_id}/data",
    status_code=201,
    response_model=DataFileRead,
    summary="Contribute one training pair to a custom model shared with the organization",
    description=(
        "The same multipart body and checks as the reseller's own pair upload; the model must "
        "be shared with the organization with the `contribute` permission (404 otherwise). "
        "The pair is sealed under the organization's data key and removed by its erasure. "
        "A project key with the `samples:write` scope (in `admin`)."
    ),
    responses=error_responses(
        400, 401, 403, 404, 409, 413, 415, 429, specific={408: "The body arrived too slowly"}
    ),
    openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {}}}},
)
async def contribute_pair(
    project: Contributor,
    model_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    store: StoreDep,
    registry: RegistryDep,
) -> DataFileRead:
    model = await run_in_threadpool(_contributable, session, project, model_id)
    return await store_pair(
        request,
        session,
        store,
        registry,
        model,
        actor=principal.actor,
        tenant=project.organization_id,
        organization_id=project.organization_id,
    )


def _contributable(session: Session, project: Project, model_id: uuid.UUID) -> CustomModel:
    """The model, if shared with the project's organization for ``contribute`` (else 404)."""
    for assignment, model in sharing.shared_with(session, project.organization_id):
        if model.id == model_id and assignment.can_contribute:
            return model
    raise CustomModelNotFound(model_id)
