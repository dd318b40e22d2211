"""Ledger input and output shapes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    FailFast,
    Field,
    field_validator,
)

from app.kit.moments import to_utc

# How far ahead of the service's clock an event may be dated (a gateway's clock runs a little
# ahead; an event dated years ahead would be billed in that month, never reconciled).
MAX_CLOCK_AHEAD = dt.timedelta(days=1)
BATCH_EVENTS_CAP = 100_000

_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


def parse_opt_out(value: object) -> bool | None:
    """``mip_opt_out``: true/false/1/0 in any case, or absent. Anything else is an error.

    Never guesses: an unrecognised value must not silently count as opted in.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    raise ValueError(f"mip_opt_out must be true, false, 1 or 0 (any case), not {value!r}")


OptOut = Annotated[bool | None, BeforeValidator(parse_opt_out)]
Label = Annotated[str, Field(min_length=1, max_length=128)]


class LedgerEventIn(BaseModel):
    """One transcription request as an upstream gateway (or ``/v1/listen``) reports it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    request_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")
    project_id: uuid.UUID
    api_key_id: uuid.UUID | None = None
    created: AwareDatetime = Field(description="When the request was received (timezone-aware)")
    endpoint: str = Field(default="/v1/listen", min_length=1, max_length=128)
    method: Literal["sync", "async", "streaming"] = "sync"
    model: Label = Field(description="Model name, e.g. 'general'")
    model_uuid: str | None = Field(default=None, max_length=64)
    model_version: str | None = Field(default=None, max_length=64)
    model_tier: Label = Field(default="standard", description="Price-book tier of the model")
    language: str | None = Field(default=None, max_length=32)
    features: list[Label] = Field(default_factory=list, max_length=64)
    tags: list[Label] = Field(default_factory=list, max_length=64)
    duration: float = Field(
        ge=0, le=86_400, allow_inf_nan=False, description="Audio duration in seconds"
    )
    channels: int = Field(default=1, ge=1, le=64)
    status: int = Field(default=200, ge=100, le=599, description="HTTP status returned")
    mip_opt_out: OptOut = Field(default=None, description="true/false/1/0; absent = opted in")

    @field_validator("created")
    @classmethod
    def _to_utc(cls, value: dt.datetime) -> dt.datetime:
        moment = to_utc(value)
        if moment > dt.datetime.now(dt.UTC) + MAX_CLOCK_AHEAD:
            raise ValueError(
                f"{moment.isoformat()} is more than {MAX_CLOCK_AHEAD.days} day ahead of now"
            )
        return moment

    @field_validator("features", "tags")
    @classmethod
    def _sorted_unique(cls, value: list[str]) -> list[str]:
        # Order carries no meaning; normalising it makes an identical re-send hash the same.
        return sorted(set(value))


class LedgerBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # FailFast: the first bad event ends validation (a body of four million integers took 63 s
    # to refuse when every one was reported); max_length is the hardest limit a deployment may
    # set (MIP_MAX_BATCH_EVENTS, at most 100,000): past it nothing more is validated.
    events: Annotated[
        list[LedgerEventIn], Field(min_length=1, max_length=BATCH_EVENTS_CAP), FailFast()
    ]


class LedgerBatchOut(BaseModel):
    received: int = Field(description="Events in the batch")
    recorded: int = Field(description="New rows written")
    duplicates: int = Field(description="Identical re-sends, already recorded; nothing changed")
    adjustments: int = Field(description="New rows billed in a later period (theirs was closed)")


class LedgerEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    request_id: str
    organization_id: uuid.UUID
    project_id: uuid.UUID
    api_key_id: uuid.UUID | None
    created_at: dt.datetime
    endpoint: str
    method: str
    model_name: str
    model_uuid: str | None
    model_version: str | None
    model_tier: str
    language: str | None
    features: list[str]
    tags: list[str]
    duration_seconds: float
    channels: int
    http_status: int
    mip_opt_out: bool
    opt_out_source: str
    sample_kept: bool
    plan: str
    price_book_version: str
    rate_micros_per_minute: int
    discount_bps: int
    list_amount_micros: int
    discount_micros: int
    amount_micros: int
    usage_period: str
    billing_period: str
    is_adjustment: bool


def error_details(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors[:20]]
