"""Sampling-rate HTTP: which fraction of opted-in requests is kept (admin keys)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from app.kit.auth import Principal
from app.kit.deps import SessionDep, require_roles
from app.kit.openapi import error_responses
from app.sampling import repository, service
from app.sampling.policy import SamplingConfig
from app.sampling.schemas import SamplingRateIn, SamplingRateRead, SamplingRates

router = APIRouter(prefix="/v1/governance", tags=["samples"])

Admin = Annotated[Principal, Depends(require_roles())]
_ERRORS = error_responses(400, 401, 403, 404)


@router.get("/sampling-rates", response_model=SamplingRates, responses=_ERRORS)
def list_sampling_rates(request: Request, session: SessionDep, _principal: Admin) -> SamplingRates:
    sampling: SamplingConfig = request.app.state.sampling
    return SamplingRates(
        default_rate=sampling.default_rate,
        rates=[SamplingRateRead.model_validate(r) for r in repository.list_sampling_rates(session)],
    )


@router.put(
    "/sampling-rates",
    response_model=SamplingRateRead,
    summary="Set the sampling rate of an organization, a model, or a model in an organization",
    responses=_ERRORS,
)
def set_sampling_rate(
    session: SessionDep, principal: Admin, body: SamplingRateIn
) -> SamplingRateRead:
    row = service.set_rate(
        session,
        organization_id=body.organization_id,
        model_name=body.model,
        rate=body.rate,
        actor=principal.actor,
    )
    return SamplingRateRead.model_validate(row)


@router.delete("/sampling-rates/{rate_id}", status_code=204, responses=_ERRORS)
def delete_sampling_rate(session: SessionDep, principal: Admin, rate_id: uuid.UUID) -> Response:
    service.delete_rate(session, rate_id, actor=principal.actor)
    return Response(status_code=204)
