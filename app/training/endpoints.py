"""Training jobs and model versions over HTTP (dataops writes; dataops and auditors read)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from app.engine.registry import ModelRegistry
from app.kit.auth import Principal, Role
from app.kit.deps import SessionDep, SettingsDep, require_roles
from app.kit.openapi import error_responses
from app.kit.settings import Settings
from app.samples.deps import StoreDep
from app.tables.training import ModelVersion
from app.training import promotion, service
from app.training.schemas import (
    JobStatus,
    ModelVersionList,
    ModelVersionRead,
    PromoteIn,
    RejectIn,
    TrainingJobCreate,
    TrainingJobList,
    TrainingJobLogRead,
    TrainingJobLogs,
    TrainingJobRead,
    VersionStatus,
)

jobs_router = APIRouter(prefix="/v1/governance/training-jobs", tags=["training"])
versions_router = APIRouter(prefix="/v1/governance/model-versions", tags=["training"])

Operator = Annotated[Principal, Depends(require_roles(Role.DATAOPS))]
Reader = Annotated[Principal, Depends(require_roles(Role.DATAOPS, Role.AUDITOR))]

_ERRORS = error_responses(
    400, 401, 404, specific={403: "Needs a staff key with role dataops (or auditor to read)"}
)


@jobs_router.post(
    "",
    status_code=201,
    response_model=TrainingJobRead,
    summary="Queue a fine-tuning job: a served base model on a training set",
    description=(
        "The base model must be a served ASR model (name, alias or uuid; it is recorded by "
        "uuid); the training set an id, NAME or NAME:VERSION that is not tainted. A worker "
        "(`mip worker`) claims it; follow it with `GET /{id}` and `GET /{id}/logs`."
    ),
    responses={**_ERRORS, **error_responses(specific={409: "The training set is tainted"})},
)
def submit_job(
    session: SessionDep, settings: SettingsDep, principal: Operator, body: TrainingJobCreate
) -> TrainingJobRead:
    job = service.submit_job(
        session,
        settings,
        base_model=body.base_model,
        training_set=body.training_set,
        hyperparameters=body.hyperparameters,
        actor=principal.actor,
    )
    return TrainingJobRead.model_validate(job)


@jobs_router.get(
    "", response_model=TrainingJobList, summary="Training jobs, newest first", responses=_ERRORS
)
def list_jobs(
    session: SessionDep,
    _principal: Reader,
    status: JobStatus | None = None,
    page: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TrainingJobList:
    rows, total = service.list_jobs(session, status=status, limit=limit, offset=page * limit)
    return TrainingJobList(
        jobs=[TrainingJobRead.model_validate(r) for r in rows], total=total, page=page, limit=limit
    )


@jobs_router.get("/{job_id}", response_model=TrainingJobRead, responses=_ERRORS)
def get_job(session: SessionDep, _principal: Reader, job_id: uuid.UUID) -> TrainingJobRead:
    return TrainingJobRead.model_validate(service.get_job_or_raise(session, job_id))


@jobs_router.get(
    "/{job_id}/logs",
    response_model=TrainingJobLogs,
    summary="The job's log lines in order (page with after_id: the last id you have)",
    responses=_ERRORS,
)
def get_job_logs(
    session: SessionDep,
    _principal: Reader,
    job_id: uuid.UUID,
    after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> TrainingJobLogs:
    lines = service.job_logs(session, job_id, after_id=after_id, limit=limit)
    return TrainingJobLogs(
        job_id=job_id, lines=[TrainingJobLogRead.model_validate(line) for line in lines]
    )


@jobs_router.post(
    "/{job_id}/cancel",
    response_model=TrainingJobRead,
    summary="Cancel a job: queued ones at once, running ones at the executor's next check",
    responses={**_ERRORS, **error_responses(specific={409: "The job already finished"})},
)
def cancel_job(session: SessionDep, principal: Operator, job_id: uuid.UUID) -> TrainingJobRead:
    job = service.cancel_job(session, job_id, actor=principal.actor)
    return TrainingJobRead.model_validate(job)


# --- model versions ---


def version_read(version: ModelVersion, settings: Settings) -> ModelVersionRead:
    return ModelVersionRead.of(version, policy=promotion.policy_of(version, settings))


def _rescan(request: Request) -> None:
    # This replica serves the change at once; the others within one poll interval.
    registry: ModelRegistry | None = getattr(request.app.state, "models", None)
    if registry is not None:
        registry.scan()


@versions_router.get(
    "", response_model=ModelVersionList, summary="Model versions, newest first", responses=_ERRORS
)
def list_versions(
    session: SessionDep,
    settings: SettingsDep,
    _principal: Reader,
    name: str | None = None,
    status: VersionStatus | None = None,
    page: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ModelVersionList:
    rows, total = promotion.list_versions(
        session, name=name, status=status, limit=limit, offset=page * limit
    )
    return ModelVersionList(
        versions=[version_read(r, settings) for r in rows], total=total, page=page, limit=limit
    )


@versions_router.get(
    "/{ref}",
    response_model=ModelVersionRead,
    summary="One model version by id, package uuid or NAME:VERSION",
    responses=_ERRORS,
)
def get_version(
    session: SessionDep, settings: SettingsDep, _principal: Reader, ref: str
) -> ModelVersionRead:
    return version_read(promotion.get_version_or_raise(session, ref), settings)


@versions_router.post(
    "/{ref}/promote",
    response_model=ModelVersionRead,
    summary="Serve this version; the promoted version of the same name steps down",
    description=(
        "Refused (409, with the policy verdict in `details`) when the candidate is not "
        "better overall or a group with enough test utterances got worse beyond the "
        "threshold, unless `force` is true (the override is audited)."
    ),
    responses={
        **_ERRORS,
        **error_responses(specific={409: "Fails the promotion policy, or wrong status"}),
    },
)
def promote_version(
    request: Request,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    principal: Operator,
    ref: str,
    body: PromoteIn | None = None,
) -> ModelVersionRead:
    force = body.force if body is not None else False
    version = promotion.promote(session, store, settings, ref, actor=principal.actor, force=force)
    _rescan(request)
    return version_read(version, settings)


@versions_router.post(
    "/{ref}/demote",
    response_model=ModelVersionRead,
    summary="Stop serving this version; the version it replaced (or the base) serves again",
    responses={**_ERRORS, **error_responses(specific={409: "The version is not promoted"})},
)
def demote_version(
    request: Request,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    principal: Operator,
    ref: str,
) -> ModelVersionRead:
    version = promotion.demote(session, store, settings, ref, actor=principal.actor)
    _rescan(request)
    return version_read(version, settings)


@versions_router.post(
    "/{ref}/reject",
    response_model=ModelVersionRead,
    summary="Mark a candidate as never to be served (its package is kept for the record)",
    responses={
        **_ERRORS,
        **error_responses(specific={409: "The version is promoted or already rejected"}),
    },
)
def reject_version(
    session: SessionDep,
    settings: SettingsDep,
    principal: Operator,
    ref: str,
    body: RejectIn | None = None,
) -> ModelVersionRead:
    reason = body.reason if body is not None else None
    version = promotion.reject(session, ref, actor=principal.actor, reason=reason)
    return version_read(version, settings)
