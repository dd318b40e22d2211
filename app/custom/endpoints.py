"""Custom-model HTTP: a reseller key manages its own reseller's models; staff admins all of
them; auditors read. Another reseller's model is a 404."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.custom import repository, service
from app.custom.schemas import CustomModelCreate, CustomModelList, CustomModelRead
from app.engine.endpoints import RegistryDep
from app.kit.auth import ResellerScope
from app.kit.deps import ResellerOrStaff, SessionDep
from app.kit.errors import BadRequest
from app.kit.openapi import error_responses

router = APIRouter(prefix="/v1/governance/custom-models", tags=["custom models"])

_ACCESS = (
    "A reseller key with the `{scope}` scope (its own reseller's models), or a staff key "
    "with role {roles}."
)


@router.post(
    "",
    status_code=201,
    response_model=CustomModelRead,
    summary="Create a custom model",
    description=(
        "A new model in status `collecting`, built later from the reseller's training data on "
        "top of a served base model (the default model unless `base_model` names one; its "
        "name, version and uuid are recorded). Names are unique per reseller (409). "
        + _ACCESS.format(scope="custom_models:write", roles="`admin` (who names `reseller_id`)")
    ),
    responses=error_responses(400, 401, 403, 404, 409),
)
def create_model(
    body: CustomModelCreate,
    session: SessionDep,
    principal: ResellerOrStaff,
    registry: RegistryDep,
) -> CustomModelRead:
    acting_for = service.check_access(principal, ResellerScope.CUSTOM_MODELS_WRITE)
    if acting_for is None and body.reseller_id is None:
        raise BadRequest("A staff key names the owning reseller: reseller_id.")
    if acting_for is not None and body.reseller_id not in (None, acting_for):
        raise BadRequest("A reseller key creates models for its own reseller only.")
    reseller_id = acting_for or body.reseller_id
    assert reseller_id is not None
    service.check_fields(name=body.name, language=body.language, domain=body.domain)
    base = service.resolve_base(registry, body.base_model, body.language)
    model = service.create_model(
        session,
        reseller_id=reseller_id,
        name=body.name,
        description=body.description,
        language=body.language,
        domain=body.domain,
        base=base,
        actor=principal.actor,
    )
    return CustomModelRead.of(model)


@router.get(
    "",
    response_model=CustomModelList,
    summary="List custom models",
    description=(
        "Newest first; a reseller key sees its own reseller's models only. Filter by "
        "`status`. "
        + _ACCESS.format(scope="custom_models:read", roles="`admin` or `auditor` (every model)")
    ),
    responses=error_responses(400, 401, 403),
)
def list_models(
    session: SessionDep,
    principal: ResellerOrStaff,
    status: Annotated[str | None, Query(max_length=16)] = None,
    page: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CustomModelList:
    reseller_id = service.check_access(principal, ResellerScope.CUSTOM_MODELS_READ)
    rows, total = repository.list_models(
        session,
        reseller_id=reseller_id,
        status=service.check_status(status),
        limit=limit,
        offset=page * limit,
    )
    return CustomModelList(
        models=[CustomModelRead.of(row) for row in rows], total=total, page=page, limit=limit
    )


@router.get(
    "/{model_id}",
    response_model=CustomModelRead,
    summary="Show a custom model",
    description=_ACCESS.format(
        scope="custom_models:read", roles="`admin` or `auditor` (every model)"
    ),
    responses=error_responses(400, 401, 403, 404),
)
def get_model(
    model_id: uuid.UUID, session: SessionDep, principal: ResellerOrStaff
) -> CustomModelRead:
    reseller_id = service.check_access(principal, ResellerScope.CUSTOM_MODELS_READ)
    return CustomModelRead.of(service.get_visible_model(session, reseller_id, model_id))


@router.post(
    "/{model_id}/archive",
    response_model=CustomModelRead,
    summary="Archive a custom model",
    description=(
        "No more uploads, training or serving; the record, its versions and its history stay. "
        "Refused (409) while it trains or when already archived. "
        + _ACCESS.format(scope="custom_models:write", roles="`admin`")
    ),
    responses=error_responses(400, 401, 403, 404, 409),
)
def archive_model(
    model_id: uuid.UUID, session: SessionDep, principal: ResellerOrStaff
) -> CustomModelRead:
    reseller_id = service.check_access(principal, ResellerScope.CUSTOM_MODELS_WRITE)
    model = service.get_visible_model(session, reseller_id, model_id)
    return CustomModelRead.of(service.archive_model(session, model, actor=principal.actor))
