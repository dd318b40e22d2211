"""Request and response bodies of the erasure endpoints."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["organization", "project"]
    organization_id: uuid.UUID | None = Field(
        default=None,
        description="scope organization: required (staff keys); scope project: optional",
    )
    project_id: uuid.UUID | None = Field(default=None, description="required for scope project")
    withdraw_consent: bool = Field(
        default=False,
        description="also withdraw the scope's consent: every later request of the "
        "organization (or project) is opted out (ledger source consent_withdrawn)",
    )


class ErasureRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    scope: str
    organization_id: uuid.UUID
    project_id: uuid.UUID | None
    status: Literal["pending", "in_progress", "done", "failed"]
    stores: dict[str, str]
    counts: dict[str, int]
    reason: str | None
    requested_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None
