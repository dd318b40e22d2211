"""Training a custom model over HTTP: queue it, follow its jobs, cancel one.

Under the custom model's own path, with the custom-model permissions (a reseller key on its
own models, staff admins on all): a reseller follows its training without a staff key.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.custom.endpoints import READ_ACCESS as _READ
from app.custom.endpoints import WRITE_ACCESS as _WRITE
from app.custom.endpoints import ModelReader, ModelWriter
from app.kit.deps import ResellerOrStaff, SessionDep, SettingsDep
from app.kit.openapi import error_responses
from app.training import custom_jobs, service
from app.training.schemas import (
    CustomJobParams,
    TrainingJobList,
    TrainingJobLogRead,
    TrainingJobLogs,
    TrainingJobRead,
)

router = APIRouter(prefix="/v1/governance/custom-models", tags=["custom models"])


@router.post(
    "/{model_id}/train",
    status_code=201,
    response_model=TrainingJobRead,
    summary="Train a new version from the confirmed data set",
    description=(
        "Queues a job for `mip worker`: fine-tune the base model on the confirmed data set "
        "(with general speech mixed in against forgetting), build the version's language "
        "model from the transcripts and the vocabulary, and test it against the standard "
        "model on held-out files. The model is `training`, then `testing` with a candidate "
        "version. 409 when the set is not confirmed or holds fewer hours than "
        "`MIP_CUSTOM_MIN_HOURS` (the message says how many are missing). " + _WRITE
    ),
    responses=error_responses(400, 401, 403, 404, 409),
)
def train(
    model: ModelWriter,
    session: SessionDep,
    settings: SettingsDep,
    principal: ResellerOrStaff,
    body: CustomJobParams | None = None,
) -> TrainingJobRead:
    job = custom_jobs.submit_custom_job(
        session, settings, model, params=body or CustomJobParams(), actor=principal.actor
    )
    return TrainingJobRead.model_validate(job)


@router.get(
    "/{model_id}/jobs",
    response_model=TrainingJobList,
    summary="The model's training jobs, newest first",
    description=_READ,
    responses=error_responses(400, 401, 403, 404),
)
def list_jobs(
    model: ModelReader,
    session: SessionDep,
    page: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TrainingJobList:
    rows, total = custom_jobs.list_custom_jobs(session, model, limit=limit, offset=page * limit)
    return TrainingJobList(
        jobs=[TrainingJobRead.model_validate(r) for r in rows], total=total, page=page, limit=limit
    )


@router.get(
    "/{model_id}/jobs/{job_id}",
    response_model=TrainingJobRead,
    summary="One training job: status, progress, figures",
    description=_READ,
    responses=error_responses(400, 401, 403, 404),
)
def get_job(model: ModelReader, job_id: uuid.UUID, session: SessionDep) -> TrainingJobRead:
    return TrainingJobRead.model_validate(custom_jobs.get_custom_job(session, model, job_id))


@router.get(
    "/{model_id}/jobs/{job_id}/logs",
    response_model=TrainingJobLogs,
    summary="A training job's log lines",
    description=_READ,
    responses=error_responses(400, 401, 403, 404),
)
def job_logs(
    model: ModelReader,
    job_id: uuid.UUID,
    session: SessionDep,
    after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> TrainingJobLogs:
    custom_jobs.get_custom_job(session, model, job_id)
    lines = service.job_logs(session, job_id, after_id=after_id)
    return TrainingJobLogs(
        job_id=job_id, lines=[TrainingJobLogRead.model_validate(line) for line in lines]
    )


@router.post(
    "/{model_id}/jobs/{job_id}/cancel",
    response_model=TrainingJobRead,
    summary="Cancel a training job",
    description="Queued: cancelled now; running: its worker stops at the next check. " + _WRITE,
    responses=error_responses(400, 401, 403, 404, 409),
)
def cancel_job(
    model: ModelWriter, job_id: uuid.UUID, session: SessionDep, principal: ResellerOrStaff
) -> TrainingJobRead:
    custom_jobs.get_custom_job(session, model, job_id)
    return TrainingJobRead.model_validate(
        service.cancel_job(session, job_id, actor=principal.actor)
    )
