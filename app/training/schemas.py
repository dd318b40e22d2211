"""Request and response bodies of the training-job and model-version endpoints.

params = JobParams.model_validate(job.hyperparameters)   # what the executor reads
body = TrainingJobRead.model_validate(job)
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from app.tables.training import ModelVersion

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
VersionStatus = Literal["candidate", "promoted", "demoted", "rejected"]


class JobParams(BaseModel):
    """Hyperparameters of a fine-tuning job (stored as the job's ``hyperparameters``)."""

    model_config = ConfigDict(extra="forbid")

    minutes: float = Field(default=10, gt=0, le=1440, description="training time budget")
    max_steps: int | None = Field(
        default=None, ge=1, le=10_000_000, description="stop after this many steps"
    )
    lr: float | None = Field(
        default=None, gt=0, le=1, description="peak learning rate (default: the recipe's)"
    )
    mix_fraction: float = Field(
        default=0.3,
        ge=0,
        le=0.9,
        description="share of each batch drawn from general speech, against forgetting",
    )
    mix_utterances: int = Field(
        default=1000, ge=0, le=1_000_000, description="general-speech utterances to mix in"
    )
    lm_min_count: int = Field(
        default=3,
        ge=1,
        le=1000,
        description=(
            "a word pair from the training transcripts enters the package's word LM only when "
            "at least this many samples contain it, so a rare phrase is never stored in a model"
        ),
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    auto_promote: bool = Field(
        default=False, description="promote the candidate when it passes the promotion policy"
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="the candidate model's name (default: the base model's)",
    )


class CustomJobParams(BaseModel):
    """Settings of a custom model's training job (stored as the job's ``hyperparameters``)."""

    model_config = ConfigDict(extra="forbid")

    minutes: float = Field(default=10, gt=0, le=1440, description="training time budget")
    max_steps: int | None = Field(
        default=None, ge=1, le=10_000_000, description="stop after this many steps"
    )
    lr: float | None = Field(
        default=None, gt=0, le=1, description="peak learning rate (default: the recipe's)"
    )
    mix_fraction: float = Field(
        default=0.3,
        ge=0,
        le=0.9,
        description="share of each batch drawn from general speech (never customer data), "
        "against forgetting",
    )
    mix_utterances: int = Field(
        default=1000, ge=0, le=1_000_000, description="general-speech utterances to mix in"
    )
    test_fraction: float = Field(
        default=0.1,
        ge=0.02,
        le=0.5,
        description="share of the data set held out to test the new version against the "
        "standard model (whole speakers when speakers are given)",
    )
    lm_min_count: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="a word pair of the transcripts enters the version's language model only "
        "when at least this many files contain it",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class TrainingJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(
        min_length=1,
        max_length=200,
        description="a served model's name, alias or uuid",
        examples=["ctcconformer-general"],
    )
    training_set: str = Field(
        min_length=1,
        max_length=200,
        description="training set id, NAME (latest version) or NAME:VERSION",
        examples=["medical-en:3"],
    )
    hyperparameters: JobParams = Field(default_factory=JobParams)


class TrainingJobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    status: JobStatus
    base_model: str = Field(description="uuid of the base package, resolved at submission")
    training_set_id: UUID | None = Field(description="the training set (None: a custom model's)")
    custom_model_id: UUID | None = Field(
        default=None, description="the custom model it trains (None: a training set's job)"
    )
    hyperparameters: dict[str, Any]
    progress: float = Field(description="0 to 1")
    metrics: dict[str, Any] = Field(
        description="while running: the latest training figures; when done: the evaluation"
    )
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    max_attempts: int
    cancel_requested: bool
    worker_id: str | None
    heartbeat_at: dt.datetime | None
    created_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class TrainingJobList(BaseModel):
    jobs: list[TrainingJobRead]
    total: int
    page: int
    limit: int


class TrainingJobLogRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: dt.datetime
    level: str
    message: str


class TrainingJobLogs(BaseModel):
    job_id: UUID
    lines: list[TrainingJobLogRead]


class ModelVersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    uuid: UUID = Field(description="the package manifest's uuid")
    name: str
    version: str
    status: VersionStatus
    filename: str
    blob_key: str
    job_id: UUID | None
    training_set_id: UUID | None
    base_model: str | None
    metrics: dict[str, Any]
    policy: dict[str, Any] | None = Field(
        description="the promotion policy verdict (at the last promotion, else under today's "
        "thresholds): passed, reasons, overall and per-group WER deltas"
    )
    created_at: dt.datetime
    promoted_at: dt.datetime | None
    promoted_by: str | None
    replaced_id: UUID | None = Field(
        description="the version this one replaced when promoted; demotion restores it"
    )
    tainted_at: dt.datetime | None = Field(
        default=None,
        description="when the version was flagged: its training set held erased or purged "
        "samples (it cannot be promoted)",
    )
    taint_reason: str | None = None

    @classmethod
    def of(cls, version: ModelVersion, *, policy: dict[str, Any] | None) -> ModelVersionRead:
        return cls.model_validate(version).model_copy(update={"policy": policy})


class ModelVersionList(BaseModel):
    versions: list[ModelVersionRead]
    total: int
    page: int
    limit: int


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force: bool = Field(
        default=False, description="promote even when the promotion policy fails (audited)"
    )


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=1000)
