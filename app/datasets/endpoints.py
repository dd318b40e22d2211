"""Training sets over HTTP (dataops builds; auditors read lineage)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from app.datasets import reports, repository, service
from app.datasets.catalog import CatalogFilter
from app.datasets.schemas import (
    TrainingSetCreate,
    TrainingSetList,
    TrainingSetMember,
    TrainingSetMembers,
    TrainingSetRead,
    TrainingSetSummary,
)
from app.kit.auth import Principal, Role
from app.kit.deps import SessionDep, require_roles
from app.kit.openapi import error_responses
from app.samples.deps import StoreDep

router = APIRouter(prefix="/v1/governance/datasets", tags=["datasets"])

Builder = Annotated[Principal, Depends(require_roles(Role.DATAOPS))]
Reader = Annotated[Principal, Depends(require_roles(Role.DATAOPS, Role.AUDITOR))]

_ERRORS = error_responses(
    400, 401, 404, specific={403: "Needs a staff key with role dataops (or auditor to read)"}
)


@router.post(
    "",
    status_code=201,
    response_model=TrainingSetRead,
    summary="Build a new version of a training set: catalog → validate → balance",
    description=(
        "Loads the sample catalog (opted-in samples only pass), validates it with "
        "great-expectations (consent, duration, transcript characters, vocabularies, "
        "duplicates, SNR), balances the rest over the given dimensions within the hours "
        "budget, and records the exact sample ids. Reports: `/reports/{name}`."
    ),
    responses={
        **_ERRORS,
        **error_responses(specific={409: "Nothing passed validation and balancing"}),
    },
)
def build_training_set(
    session: SessionDep, store: StoreDep, principal: Builder, body: TrainingSetCreate
) -> TrainingSetRead:
    request = service.BuildRequest(
        name=body.name,
        dimensions=tuple(body.balance),
        hours=body.hours,
        target=body.target,
        where=CatalogFilter(
            organization_ids=body.organization_ids,
            domain=body.domain,
            language=body.language,
            reference_only=body.reference_only,
        ),
        min_duration=body.min_duration,
        max_duration=body.max_duration,
        eval_fraction=body.eval_fraction,
        seed=body.seed,
    )
    row = service.build_training_set(session, store, request, actor=principal.actor)
    return TrainingSetRead.of(row)


@router.get("", response_model=TrainingSetList, responses=_ERRORS)
def list_training_sets(
    session: SessionDep,
    _principal: Reader,
    name: str | None = None,
    page: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TrainingSetList:
    rows, total = repository.list_training_sets(
        session, name=name, limit=limit, offset=page * limit
    )
    return TrainingSetList(
        training_sets=[TrainingSetSummary.of(r) for r in rows], total=total, page=page, limit=limit
    )


@router.get(
    "/{ref}",
    response_model=TrainingSetRead,
    summary="One training set by id, NAME (latest version) or NAME:VERSION",
    responses=_ERRORS,
)
def get_training_set(session: SessionDep, _principal: Reader, ref: str) -> TrainingSetRead:
    return TrainingSetRead.of(service.get_training_set_or_raise(session, ref))


@router.get(
    "/{ref}/samples",
    response_model=TrainingSetMembers,
    summary="The exact sample ids a training set holds (lineage), with their split",
    responses=_ERRORS,
)
def list_members(session: SessionDep, _principal: Reader, ref: str) -> TrainingSetMembers:
    row = service.get_training_set_or_raise(session, ref)
    members = repository.members(session, row.id)
    return TrainingSetMembers(
        training_set_id=row.id,
        samples=[
            TrainingSetMember(
                sample_id=s, organization_id=o, split="eval" if p == "eval" else "train"
            )
            for s, o, p in members
        ],
    )


@router.get(
    "/{ref}/reports/{name}",
    summary="A build report: validation.json, validation.html, quarantine.csv, balance.json, "
    "distributions.png, deficit.png",
    description=(
        "Reports are stored encrypted under the set's own key and decrypted here. An erasure "
        "or a retention purge that taints the set removes them (the key is destroyed): 410."
    ),
    response_class=Response,
    responses={
        **_ERRORS,
        **error_responses(
            specific={410: "The reports were removed by the erasure or purge that tainted the set"}
        ),
        200: {"description": "The report file"},
    },
)
def read_report(
    session: SessionDep, store: StoreDep, _principal: Reader, ref: str, name: str
) -> Response:
    row = service.get_training_set_or_raise(session, ref)
    content = reports.read_report(store, row, name)
    return Response(content, media_type=reports.REPORT_FILES[name])
