"""Request and response bodies of the sampling-rate endpoints."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field


class SamplingRateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organization_id: uuid.UUID | None = None
    model: str | None = Field(default=None, min_length=1, max_length=128)
    rate: float = Field(ge=0, le=1)


class SamplingRateRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    organization_id: uuid.UUID | None
    model_name: str | None
    rate: float
    updated_at: dt.datetime
    updated_by: str


class SamplingRates(BaseModel):
    default_rate: float
    rates: list[SamplingRateRead]
