"""Deepgram-compatible HTTP: request logs, usage, usage breakdown and fields, billing breakdown.

Each needs the ``usage:read`` scope on the project (project keys: their own project only), or
a staff key with role ``admin``, ``billing`` or ``auditor``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from app.kit.deps import SessionDep
from app.tenancy.auth import CurrentPrincipal
from app.usage import service
from app.usage.schemas import (
    BillingBreakdownOut,
    BillingBreakdownParams,
    BillingFieldsOut,
    RangeParams,
    RequestListOut,
    RequestListParams,
    RequestOut,
    UsageBreakdownOut,
    UsageBreakdownParams,
    UsageFieldsOut,
    UsageOut,
    UsageParams,
)

router = APIRouter(prefix="/v1/projects", tags=["usage"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid parameter (bad date, start after end, limit, uuid, grouping)"},
    401: {"description": "Missing or invalid API key"},
    403: {"description": "Key lacks usage:read, or staff role not allowed"},
    404: {"description": "No such project (or another tenant's)"},
}

ProjectId = Annotated[uuid.UUID, Path(description="Project id")]


@router.get(
    "/{project_id}/requests",
    response_model=RequestListOut,
    summary="List the project's requests, newest first",
    responses=_ERRORS,
)
def list_requests(
    project_id: ProjectId,
    params: Annotated[RequestListParams, Query()],
    session: SessionDep,
    principal: CurrentPrincipal,
) -> RequestListOut:
    return service.list_requests(session, principal, project_id, params)


@router.get(
    "/{project_id}/requests/{request_id}",
    response_model=RequestOut,
    summary="Get one request of the project",
    responses=_ERRORS,
)
def get_request(
    project_id: ProjectId,
    request_id: Annotated[str, Path(max_length=128)],
    session: SessionDep,
    principal: CurrentPrincipal,
) -> RequestOut:
    return service.get_request(session, principal, project_id, request_id)


@router.get(
    "/{project_id}/usage",
    response_model=UsageOut,
    summary="Usage per day over a date range, with MIP totals",
    responses=_ERRORS,
)
def get_usage(
    project_id: ProjectId,
    params: Annotated[UsageParams, Query()],
    session: SessionDep,
    principal: CurrentPrincipal,
) -> UsageOut:
    return service.get_usage(session, principal, project_id, params)


@router.get(
    "/{project_id}/usage/breakdown",
    response_model=UsageBreakdownOut,
    summary="Usage over a date range, grouped",
    responses=_ERRORS,
)
def get_usage_breakdown(
    project_id: ProjectId,
    params: Annotated[UsageBreakdownParams, Query()],
    session: SessionDep,
    principal: CurrentPrincipal,
) -> UsageBreakdownOut:
    return service.get_usage_breakdown(session, principal, project_id, params)


@router.get(
    "/{project_id}/usage/fields",
    response_model=UsageFieldsOut,
    summary="Tags, models, methods and features seen over a date range",
    responses=_ERRORS,
)
def list_usage_fields(
    project_id: ProjectId,
    params: Annotated[RangeParams, Query()],
    session: SessionDep,
    principal: CurrentPrincipal,
) -> UsageFieldsOut:
    return service.get_usage_fields(session, principal, project_id, params)


@router.get(
    "/{project_id}/billing/breakdown",
    response_model=BillingBreakdownOut,
    summary="Net amount billed (USD) over a date range, grouped",
    responses=_ERRORS,
)
def get_billing_breakdown(
    project_id: ProjectId,
    params: Annotated[BillingBreakdownParams, Query()],
    session: SessionDep,
    principal: CurrentPrincipal,
) -> BillingBreakdownOut:
    return service.get_billing_breakdown(session, principal, project_id, params)


@router.get(
    "/{project_id}/billing/fields",
    response_model=BillingFieldsOut,
    summary="Accessors, deployments, tags and line items billed over a date range",
    responses=_ERRORS,
)
def list_billing_fields(
    project_id: ProjectId,
    params: Annotated[RangeParams, Query()],
    session: SessionDep,
    principal: CurrentPrincipal,
) -> BillingFieldsOut:
    return service.get_billing_fields(session, principal, project_id, params)
