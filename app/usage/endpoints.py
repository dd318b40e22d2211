"""Deepgram-compatible HTTP: request logs, usage, usage breakdown and fields, billing breakdown.

Each needs the ``usage:read`` scope on the project (project keys: their own project only), or
a staff key with role ``admin``, ``billing`` or ``auditor``: the ``UsageReader`` dependency
checks it before anything else, so another tenant's project is a 404 whatever the query.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.kit.deps import SessionDep
from app.kit.openapi import error_responses
from app.tenancy.auth import UsageReader
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

_ERRORS = error_responses(
    401,
    404,
    specific={
        400: "Invalid parameter (bad date, start after end, limit, uuid, grouping)",
        403: "Key lacks usage:read, or staff role not allowed",
    },
)

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
    project: UsageReader,
) -> RequestListOut:
    return service.list_requests(session, project, params)


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
    project: UsageReader,
) -> RequestOut:
    return service.get_request(session, project, request_id)


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
    project: UsageReader,
) -> UsageOut:
    return service.get_usage(session, project, params)


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
    project: UsageReader,
) -> UsageBreakdownOut:
    return service.get_usage_breakdown(session, project, params)


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
    project: UsageReader,
) -> UsageFieldsOut:
    return service.get_usage_fields(session, project, params)


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
    project: UsageReader,
) -> BillingBreakdownOut:
    return service.get_billing_breakdown(session, project, params)


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
    project: UsageReader,
) -> BillingFieldsOut:
    return service.get_billing_fields(session, project, params)
