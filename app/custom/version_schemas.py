"""Shapes of a custom model's vocabulary, versions, sharing and usage."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.custom.sharing import permissions_of
from app.tables.custom import CustomModelAssignment, CustomModelVersion

Permission = Literal["view", "use", "contribute"]
DEFAULT_PERMISSIONS: tuple[Permission, ...] = ("view", "use")


class TermIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    term: str = Field(min_length=1, max_length=100, examples=["metformin"])
    sounds_like: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="How the term is said, spelled as words the model knows",
        examples=[["met formin"]],
    )
    weight: float = Field(default=1.0, description="How strongly decoding favours the term")


class VocabularyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    terms: list[TermIn] = Field(max_length=1000)


class VocabularyRead(BaseModel):
    terms: list[dict[str, Any]] = Field(description="term, sounds_like, weight")


class VersionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    status: str = Field(description="candidate, published, retired or rejected")
    package_uuid: str = Field(description="The served package's uuid (metadata.models)")
    package_name: str
    package_version: str
    filename: str = Field(description="The .dg file name in the models directory")
    package_sha256: str
    data_hash: str
    data_files: int
    data_seconds: float
    vocabulary: list[dict[str, Any]]
    base_model: dict[str, Any]
    settings: dict[str, Any]
    test: dict[str, Any] = Field(
        description="Held-out test against the standard model: wer/cer of both with 95% "
        "bootstrap intervals, relative WER reduction; per speaker and the common errors are "
        "in the report"
    )
    job_id: uuid.UUID | None
    created_at: dt.datetime
    created_by: str
    published_at: dt.datetime | None
    published_by: str | None

    @classmethod
    def of(cls, version: CustomModelVersion) -> VersionRead:
        return cls.model_validate(version)


class VersionList(BaseModel):
    versions: list[VersionRead]


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organization_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)
    mode: Literal["default", "optional"] = Field(
        default="optional",
        description="default: used when a request names no model; optional: when it names it",
    )
    permissions: list[Permission] = Field(
        default_factory=lambda: list(DEFAULT_PERMISSIONS), min_length=1, max_length=3
    )
    revoke_at: dt.datetime | None = Field(
        default=None, description="End the share at this time (UTC, in the future)"
    )


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organization_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)
    at: dt.datetime | None = Field(default=None, description="A future time (UTC); omitted: now")


class AssignmentRead(BaseModel):
    organization_id: uuid.UUID
    mode: str
    permissions: list[str]
    revoke_at: dt.datetime | None
    active: bool
    created_at: dt.datetime
    created_by: str
    updated_at: dt.datetime

    @classmethod
    def of(cls, row: CustomModelAssignment, *, now: dt.datetime) -> AssignmentRead:
        return cls(
            organization_id=row.organization_id,
            mode=row.mode,
            permissions=permissions_of(row),
            revoke_at=row.revoke_at,
            active=row.revoke_at is None or row.revoke_at > now,
            created_at=row.created_at,
            created_by=row.created_by,
            updated_at=row.updated_at,
        )


class AssignmentList(BaseModel):
    assignments: list[AssignmentRead]


class UsageRow(BaseModel):
    day: dt.date
    organization_id: uuid.UUID
    version: int | None
    requests: int
    audio_minutes: float
    last_used: dt.datetime


class UsageRead(BaseModel):
    model_id: uuid.UUID
    start: dt.date
    end: dt.date
    rows: list[UsageRow]
    totals: dict[str, Any] = Field(description="requests and audio_minutes over the period")
