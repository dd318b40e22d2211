"""Request and response bodies of the training-set (curation) endpoints."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.tables.datasets import TrainingSet


class TrainingSetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["medical-en"])
    balance: list[str] = Field(
        default_factory=list,
        description="dimensions to balance at once, e.g. accent, age_group, sex, noise_type",
        examples=[["accent", "age_group", "sex", "noise_type"]],
    )
    hours: float = Field(gt=0, le=100_000, description="hours budget of the set")
    target: dict[str, Any] | None = Field(
        default=None,
        description=(
            "targets per dimension (uniform, proportional or value shares), max_share caps and "
            "min_share floors, as in `mip curate build --target FILE`"
        ),
    )
    domain: str | None = Field(default=None, description="only samples of this domain")
    language: str | None = None
    organization_ids: list[uuid.UUID] | None = Field(
        default=None, description="only these organizations' samples (default: all)"
    )
    reference_only: bool = Field(
        default=False, description="only samples with a labeler's reference transcript"
    )
    min_duration: float = Field(default=0.5, gt=0)
    max_duration: float = Field(default=30.0, gt=0)
    eval_fraction: float = Field(default=0.1, ge=0, lt=0.5)
    seed: int = 0


def report_state(row: TrainingSet) -> Literal["encrypted", "plaintext", "removed"]:
    if row.reports_removed_at is not None:
        return "removed"
    return "plaintext" if row.report_key_wrapped is None else "encrypted"


class TrainingSetRead(BaseModel):
    id: uuid.UUID
    name: str
    version: int
    status: Literal["ready", "tainted"]
    manifest_hash: str
    sample_count: int = Field(description="samples in the train split")
    eval_count: int = Field(description="samples held out for evaluation")
    hours: float
    params: dict[str, Any]
    validation: dict[str, Any] = Field(description="statistics and every expectation's outcome")
    balance: dict[str, Any] = Field(description="summary, distributions before/after, deficit")
    created_by: str
    created_at: dt.datetime
    tainted_at: dt.datetime | None
    taint_reason: str | None
    reports: Literal["encrypted", "plaintext", "removed"] = Field(
        description="encrypted under the set's key; plaintext (built before reports were "
        "encrypted: `mip curate encrypt-reports`); removed with the erasure or purge that "
        "tainted the set"
    )
    reports_removed_at: dt.datetime | None
    reports_removed_reason: str | None

    @classmethod
    def of(cls, row: TrainingSet) -> TrainingSetRead:
        return cls(
            id=row.id,
            name=row.name,
            version=row.version,
            status="tainted" if row.status == "tainted" else "ready",
            manifest_hash=row.manifest_hash,
            sample_count=row.sample_count,
            eval_count=row.eval_count,
            hours=round(row.duration_seconds / 3600, 4),
            params=row.params,
            validation=row.validation,
            balance=row.balance,
            created_by=row.created_by,
            created_at=row.created_at,
            tainted_at=row.tainted_at,
            taint_reason=row.taint_reason,
            reports=report_state(row),
            reports_removed_at=row.reports_removed_at,
            reports_removed_reason=row.reports_removed_reason,
        )


class TrainingSetSummary(BaseModel):
    id: uuid.UUID
    name: str
    version: int
    status: str
    sample_count: int
    eval_count: int
    hours: float
    manifest_hash: str
    created_at: dt.datetime

    @classmethod
    def of(cls, row: TrainingSet) -> TrainingSetSummary:
        return cls(
            id=row.id,
            name=row.name,
            version=row.version,
            status=row.status,
            sample_count=row.sample_count,
            eval_count=row.eval_count,
            hours=round(row.duration_seconds / 3600, 4),
            manifest_hash=row.manifest_hash,
            created_at=row.created_at,
        )


class TrainingSetList(BaseModel):
    training_sets: list[TrainingSetSummary]
    total: int
    page: int
    limit: int


class TrainingSetMember(BaseModel):
    sample_id: uuid.UUID
    organization_id: uuid.UUID
    split: Literal["train", "eval"]


class TrainingSetMembers(BaseModel):
    training_set_id: uuid.UUID
    samples: list[TrainingSetMember]
