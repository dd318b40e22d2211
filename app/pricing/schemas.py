"""Price-book input and output shapes. Rates travel as decimal strings, never floats."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from app.kit.errors import BadRequest
from app.kit.moments import to_utc
from app.kit.money import MICROS_PER_USD, usd_to_micros

Plan = Literal["pay_as_you_go", "growth", "enterprise"]
# Far above any real rate, far below what would overflow a ledger amount (BIGINT micro-dollars
# for a day of audio): refuses a typo such as "43000000" before it reaches the database.
MAX_RATE_USD_PER_MINUTE = Decimal(1_000)


class PriceCreate(BaseModel):
    """A new price-book row: a rate per audio minute for a plan and tier from a date on."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    plan: Plan
    tier: str = Field(
        default="*",
        min_length=1,
        max_length=64,
        description="Model tier; '*' is the plan's rate for any tier without a row of its own",
    )
    rate_usd_per_minute: str = Field(
        min_length=1,
        max_length=32,
        description="USD per audio minute as a decimal string, at most 6 decimals, e.g. '0.0043'",
        examples=["0.0043"],
    )
    effective_from: AwareDatetime = Field(
        description="When the rate starts to apply (timezone-aware ISO 8601)"
    )
    version: str = Field(
        min_length=1, max_length=64, description="Price-book version label, e.g. '2027-01'"
    )

    @field_validator("rate_usd_per_minute")
    @classmethod
    def _exact_dollars(cls, value: str) -> str:
        try:
            micros = usd_to_micros(value)
        except BadRequest as exc:
            raise ValueError(exc.message) from exc
        if micros > MAX_RATE_USD_PER_MINUTE * MICROS_PER_USD:
            raise ValueError(f"must be at most {MAX_RATE_USD_PER_MINUTE} USD per minute")
        return value

    @field_validator("effective_from")
    @classmethod
    def _to_utc(cls, value: dt.datetime) -> dt.datetime:
        return to_utc(value)

    @property
    def rate_micros_per_minute(self) -> int:
        return usd_to_micros(self.rate_usd_per_minute)


class PriceRead(BaseModel):
    id: uuid.UUID
    plan: str
    tier: str
    rate_micros_per_minute: int = Field(description="Micro-dollars per audio minute")
    rate_usd_per_minute: str = Field(description="The same rate as an exact decimal string")
    effective_from: dt.datetime
    version: str
    created_at: dt.datetime


class PriceBookRead(BaseModel):
    prices: list[PriceRead] = Field(description="Ordered by plan, tier, effective_from")
