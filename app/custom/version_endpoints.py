"""Custom-model HTTP, after the data: confirm the set, vocabulary, versions (test report,
publish, roll back, reject), sharing with organizations, and usage."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from app.custom import dataset, sharing, usage, versions
from app.custom.endpoints import READ_ACCESS as _READ
from app.custom.endpoints import WRITE_ACCESS as _WRITE
from app.custom.endpoints import ModelAccess, ModelReader, ModelWriter
from app.custom.schemas import CustomModelRead
from app.custom.version_schemas import (
    AssignmentIn,
    AssignmentList,
    AssignmentRead,
    RevokeIn,
    UsageRead,
    UsageRow,
    VersionList,
    VersionRead,
    VocabularyIn,
    VocabularyRead,
)
from app.engine.registry import ModelRegistry
from app.kit.auth import ResellerScope
from app.kit.db import utcnow
from app.kit.deps import ResellerOrStaff, SessionDep, SettingsDep
from app.kit.errors import BadRequest
from app.kit.openapi import error_responses
from app.samples.deps import StoreDep
from app.tables.custom import CustomModel
from asr.vocabulary import Vocabulary, VocabularyError

router = APIRouter(prefix="/v1/governance/custom-models", tags=["custom models"])

ModelAssigner = Annotated[CustomModel, Depends(ModelAccess(ResellerScope.CUSTOM_MODELS_ASSIGN))]

_ASSIGN = (
    "A reseller key with the `custom_models:assign` scope (its own models, its own "
    "organizations), or a staff key with role `admin`."
)


# --- the data set ---------------------------------------------------------------------------


@router.post(
    "/{model_id}/data/confirm",
    response_model=CustomModelRead,
    summary="Confirm (freeze) the data set",
    description=(
        "Freezes the accepted files under a content hash (shown as `data_set`); the model is "
        "then `ready_to_train`. Files can no longer be added or removed until the set is "
        "reopened. 409 when there is no accepted file or the set is already confirmed. " + _WRITE
    ),
    responses=error_responses(400, 401, 403, 404, 409),
)
def confirm_data(
    model: ModelWriter, session: SessionDep, store: StoreDep, principal: ResellerOrStaff
) -> CustomModelRead:
    dataset.confirm(session, store, model, actor=principal.actor)
    return versions.read_model(session, model)


@router.post(
    "/{model_id}/data/reopen",
    response_model=CustomModelRead,
    summary="Reopen a confirmed data set",
    description="Unfreezes the set so that files can be added or removed. " + _WRITE,
    responses=error_responses(400, 401, 403, 404, 409),
)
def reopen_data(
    model: ModelWriter, session: SessionDep, principal: ResellerOrStaff
) -> CustomModelRead:
    dataset.reopen(session, model, actor=principal.actor)
    return versions.read_model(session, model)


# --- vocabulary -----------------------------------------------------------------------------


@router.get(
    "/{model_id}/vocabulary",
    response_model=VocabularyRead,
    summary="The vocabulary the next version is trained with",
    description=_READ,
    responses=error_responses(400, 401, 403, 404),
)
def get_vocabulary(model: ModelReader) -> VocabularyRead:
    return VocabularyRead(terms=list(model.vocabulary or []))


@router.put(
    "/{model_id}/vocabulary",
    response_model=VocabularyRead,
    summary="Replace the vocabulary",
    description=(
        "Terms (up to 1,000) with optional `sounds_like` spellings and a `weight`. The next "
        "training adds them to the version's language model and its decoder boosts them; "
        "a version keeps the vocabulary it was trained with. " + _WRITE
    ),
    responses=error_responses(400, 401, 403, 404, 409),
)
def put_vocabulary(
    body: VocabularyIn,
    model: ModelWriter,
    session: SessionDep,
    principal: ResellerOrStaff,
    request: Request,
) -> VocabularyRead:
    try:
        vocabulary = Vocabulary.parse(t.model_dump() for t in body.terms)
    except VocabularyError as error:
        raise BadRequest(f"Invalid vocabulary: {error}") from None
    registry: ModelRegistry = request.app.state.models
    versions.set_vocabulary(session, model, vocabulary, registry=registry, actor=principal.actor)
    return VocabularyRead(terms=list(model.vocabulary))


# --- versions -------------------------------------------------------------------------------


@router.get(
    "/{model_id}/versions",
    response_model=VersionList,
    summary="The model's versions, newest first",
    description=_READ,
    responses=error_responses(400, 401, 403, 404),
)
def list_versions(model: ModelReader, session: SessionDep) -> VersionList:
    return VersionList(versions=[VersionRead.of(v) for v in versions.list_versions(session, model)])


@router.get(
    "/{model_id}/versions/{number}",
    response_model=VersionRead,
    summary="One version: what it was built from and its test",
    description=_READ,
    responses=error_responses(400, 401, 403, 404),
)
def get_version(model: ModelReader, number: int, session: SessionDep) -> VersionRead:
    return VersionRead.of(versions.get_version(session, model, number))


@router.get(
    "/{model_id}/versions/{number}/report",
    summary="The version's test report against the standard model",
    description=(
        "`format=html` (default): a page with the WER and CER of both models with their "
        "confidence intervals, WER per speaker, the most common errors and plots; "
        "`format=json`: the same figures. " + _READ
    ),
    responses={
        200: {"content": {"text/html": {}, "application/json": {}}, "description": "The report"},
        **error_responses(400, 401, 403, 404),
    },
)
def get_report(
    model: ModelReader,
    number: int,
    session: SessionDep,
    store: StoreDep,
    format: Annotated[str, Query(pattern="^(html|json)$")] = "html",
) -> Response:
    version = versions.get_version(session, model, number)
    content = versions.read_report(store, model, version, f"test.{format}")
    media = "text/html; charset=utf-8" if format == "html" else "application/json"
    return Response(content, media_type=media)


@router.post(
    "/{model_id}/versions/{number}/publish",
    response_model=VersionRead,
    summary="Publish a version (accept its test, or roll back to it)",
    description=(
        "The version is served from now on to the organizations the model is shared with; the "
        "previously published one is retired (publish it again to roll back). " + _WRITE
    ),
    responses=error_responses(400, 401, 403, 404, 409),
)
def publish_version(
    model: ModelWriter,
    number: int,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    principal: ResellerOrStaff,
    request: Request,
) -> VersionRead:
    version = versions.get_version(session, model, number)
    versions.publish(session, store, settings, model, version, actor=principal.actor)
    # The package is in the models directory now: serve it without waiting for the poll.
    registry: ModelRegistry = request.app.state.models
    registry.scan()
    return VersionRead.of(version)


@router.post(
    "/{model_id}/versions/{number}/reject",
    response_model=VersionRead,
    summary="Reject a candidate version",
    description="Turn down a tested candidate (retrain with more data or vocabulary). " + _WRITE,
    responses=error_responses(400, 401, 403, 404, 409),
)
def reject_version(
    model: ModelWriter, number: int, session: SessionDep, principal: ResellerOrStaff
) -> VersionRead:
    version = versions.get_version(session, model, number)
    return VersionRead.of(versions.reject(session, model, version, actor=principal.actor))


# --- sharing --------------------------------------------------------------------------------


@router.post(
    "/{model_id}/assignments",
    response_model=AssignmentList,
    summary="Share the model with organizations",
    description=(
        "With one or many organizations of the model's reseller, as their `default` model "
        "(used when a request names none; one per organization) or an `optional` one (used "
        "when a request names it), with permissions `view`, `use` and `contribute`, and an "
        "optional scheduled revocation. Sharing again changes the share. " + _ASSIGN
    ),
    responses=error_responses(400, 401, 403, 404, 409),
)
def assign(
    body: AssignmentIn, model: ModelAssigner, session: SessionDep, principal: ResellerOrStaff
) -> AssignmentList:
    rows = sharing.assign(
        session,
        model,
        organization_ids=body.organization_ids,
        mode=body.mode,
        permissions=set(body.permissions),
        revoke_at=_utc(body.revoke_at),
        actor=principal.actor,
    )
    now = utcnow()
    return AssignmentList(assignments=[AssignmentRead.of(r, now=now) for r in rows])


@router.get(
    "/{model_id}/assignments",
    response_model=AssignmentList,
    summary="The organizations the model is shared with",
    description="`include_revoked=true` also lists ended shares. " + _READ,
    responses=error_responses(400, 401, 403, 404),
)
def list_assignments(
    model: ModelReader, session: SessionDep, include_revoked: bool = False
) -> AssignmentList:
    now = utcnow()
    rows = sharing.list_assignments(session, model, include_revoked=include_revoked)
    return AssignmentList(assignments=[AssignmentRead.of(r, now=now) for r in rows])


@router.post(
    "/{model_id}/assignments/revoke",
    response_model=AssignmentList,
    summary="Revoke the model from organizations, now or at a scheduled time",
    description=(
        "From that moment the organizations' requests for the model get the documented 400 "
        "for a model that is not available, without a restart. " + _ASSIGN
    ),
    responses=error_responses(400, 401, 403, 404),
)
def revoke(
    body: RevokeIn, model: ModelAssigner, session: SessionDep, principal: ResellerOrStaff
) -> AssignmentList:
    rows = sharing.revoke(
        session,
        model,
        organization_ids=body.organization_ids,
        at=_utc(body.at),
        actor=principal.actor,
    )
    now = utcnow()
    return AssignmentList(assignments=[AssignmentRead.of(r, now=now) for r in rows])


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise BadRequest("Give times with a time zone, e.g. 2026-12-31T00:00:00Z.")
    return moment.astimezone(dt.UTC)


# --- usage ----------------------------------------------------------------------------------


@router.get(
    "/{model_id}/usage",
    response_model=UsageRead,
    summary="Usage per day, organization and version",
    description=(
        "Successful requests and audio minutes served by the model's versions, with the last "
        "use, per UTC day (`start` to `end`, both included; default the last 30 days). " + _READ
    ),
    responses=error_responses(400, 401, 403, 404),
)
def get_usage(
    model: ModelReader,
    session: SessionDep,
    start: dt.date | None = None,
    end: dt.date | None = None,
    organization_id: uuid.UUID | None = None,
) -> UsageRead:
    end = end or utcnow().date()
    start = start or end - dt.timedelta(days=29)
    lines = usage.model_usage(session, model, start=start, end=end, organization_id=organization_id)
    rows = [
        UsageRow(
            day=line.day,
            organization_id=line.organization_id,
            version=line.version,
            requests=line.requests,
            audio_minutes=round(line.audio_seconds / 60, 4),
            last_used=line.last_used,
        )
        for line in lines
    ]
    return UsageRead(
        model_id=model.id,
        start=start,
        end=end,
        rows=rows,
        totals={
            "requests": sum(r.requests for r in rows),
            "audio_minutes": round(sum(line.audio_seconds for line in lines) / 60, 4),
        },
    )
