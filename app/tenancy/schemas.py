"""Tenancy input and output shapes.

Two families: the Deepgram ``/v1/projects`` shapes (suffix ``V1``, keys exactly as the official
SDK types name them) and the governance shapes (``XCreate / XUpdate / XRead``). Money is a USD
decimal string in governance shapes; only Deepgram's balance ``amount`` is a float.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from app.kit.auth import Role
from app.kit.moments import to_utc

# A hundred years: far enough for any key, near enough that adding it to now never overflows.
MAX_TTL_SECONDS = 100 * 365 * 24 * 3600

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ScopeName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
TagName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
_USD = re.compile(r"^\d{1,12}(\.\d{1,6})?$")


def _usd(value: str) -> str:
    if not _USD.fullmatch(value):
        raise ValueError(
            "must be a non-negative USD amount as a string, with at most 12 digits before the "
            "point and 6 after it, e.g. '250.00'"
        )
    return value


UsdAmount = Annotated[
    str,
    AfterValidator(_usd),
    Field(
        description="USD as a decimal string, at most 6 decimal places",
        examples=["0.0043"],
        json_schema_extra={"pattern": _USD.pattern},
    ),
]
Tier = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Plan = Literal["pay_as_you_go", "growth", "enterprise"]


# --- Deepgram-compatible (/v1/projects) -------------------------------------------------------


class ProjectSummaryV1Read(BaseModel):
    project_id: str
    name: str


class ProjectListV1Read(BaseModel):
    projects: list[ProjectSummaryV1Read]


class ProjectV1Read(BaseModel):
    project_id: str
    name: str
    mip_opt_out: bool = Field(description="The organization's contract opts out of the MIP")


class KeyMemberV1Read(BaseModel):
    member_id: str = Field(description="Who created the key (this service has no members)")
    email: str = ""


class KeySummaryV1Read(BaseModel):
    api_key_id: str
    comment: str
    scopes: list[str]
    created: dt.datetime


class KeyListItemV1Read(BaseModel):
    member: KeyMemberV1Read
    api_key: KeySummaryV1Read


class KeyListV1Read(BaseModel):
    api_keys: list[KeyListItemV1Read]


class KeyDetailV1Read(BaseModel):
    api_key_id: str
    comment: str
    scopes: list[str]
    tags: list[str]
    expiration_date: dt.datetime | None
    created: dt.datetime


class KeyMemberDetailV1Read(KeyMemberV1Read):
    first_name: str = ""
    last_name: str = ""
    api_key: KeyDetailV1Read


class KeyItemV1Read(BaseModel):
    member: KeyMemberDetailV1Read


class KeyGetV1Read(BaseModel):
    item: KeyItemV1Read


class KeyV1Create(BaseModel):
    """Deepgram's create-key body. At most one of the two expiry fields."""

    model_config = ConfigDict(extra="forbid")

    comment: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    scopes: list[ScopeName] = Field(min_length=1, max_length=32)
    tags: list[TagName] | None = Field(default=None, max_length=64)
    expiration_date: dt.datetime | None = Field(
        default=None, description="ISO-8601; without a zone it is read as UTC"
    )
    time_to_live_in_seconds: int | None = Field(default=None, gt=0, le=MAX_TTL_SECONDS)

    @field_validator("time_to_live_in_seconds", mode="before")
    @classmethod
    def _not_a_bool(cls, value: object) -> object:
        # JSON true would otherwise pass as a one-second key.
        if isinstance(value, bool):
            raise ValueError("time_to_live_in_seconds must be a number of seconds, not a boolean")
        return value

    @field_validator("expiration_date")
    @classmethod
    def _to_utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        return None if value is None else to_utc(value)

    @model_validator(mode="after")
    def _one_expiry(self) -> KeyV1Create:
        if self.expiration_date is not None and self.time_to_live_in_seconds is not None:
            raise ValueError("give expiration_date or time_to_live_in_seconds, not both")
        return self


class KeyCreatedV1Read(BaseModel):
    api_key_id: str
    key: str = Field(description="The secret: shown once, never again")
    comment: str
    scopes: list[str]
    tags: list[str]
    expiration_date: dt.datetime | None


class MessageV1Read(BaseModel):
    message: str


class BalanceV1Read(BaseModel):
    balance_id: str = Field(description="The organization id: one balance per organization")
    amount: float = Field(description="USD: prepaid credit minus all recorded usage")
    units: str = "usd"
    purchase_order_id: str = ""


class BalanceListV1Read(BaseModel):
    balances: list[BalanceV1Read]


# --- Governance (/v1/governance) --------------------------------------------------------------


class ResellerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name


class ResellerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    created_at: dt.datetime


class ResellerListRead(BaseModel):
    resellers: list[ResellerRead]


class OrganizationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    plan: Plan
    contract_rates: dict[Tier, UsdAmount] | None = Field(
        default=None,
        description="Enterprise: USD per audio minute by model tier ('*' = any tier)",
        examples=[{"*": "0.0040", "nova": "0.0035"}],
    )
    contract_opt_out: bool = Field(default=False, description="Enterprise contract opts out")
    retention_days: int = Field(default=30, gt=0, le=36_500)
    reseller_id: uuid.UUID | None = None
    prepaid_credit: UsdAmount = "0"


class OrganizationUpdate(BaseModel):
    """Only the fields given change. Leaving enterprise clears the contract terms."""

    model_config = ConfigDict(extra="forbid")

    plan: Plan | None = None
    contract_rates: dict[Tier, UsdAmount] | None = None
    contract_opt_out: bool | None = None
    retention_days: int | None = Field(default=None, gt=0, le=36_500)
    prepaid_credit: UsdAmount | None = None

    @model_validator(mode="after")
    def _something_to_change(self) -> OrganizationUpdate:
        if not any(getattr(self, name) is not None for name in type(self).model_fields):
            raise ValueError("nothing to change: give at least one field")
        return self


class OrganizationRead(BaseModel):
    id: uuid.UUID
    name: str
    plan: str
    reseller_id: uuid.UUID | None
    contract_rates: dict[str, str] | None = Field(description="USD per audio minute by tier")
    contract_opt_out: bool
    retention_days: int
    prepaid_credit: str = Field(description="USD")
    created_at: dt.datetime


class OrganizationListRead(BaseModel):
    organizations: list[OrganizationRead]


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name


class ProjectRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    created_at: dt.datetime


class ProjectListRead(BaseModel):
    projects: list[ProjectRead]


class ProjectKeyCreate(BaseModel):
    """As ``mip keys create``: scopes default to ``member``."""

    model_config = ConfigDict(extra="forbid")

    scopes: list[ScopeName] | None = Field(default=None, min_length=1, max_length=32)
    comment: Comment = ""
    tags: list[TagName] | None = Field(default=None, max_length=64)
    expires_in_days: int | None = Field(default=None, ge=1, le=36_500)


class ProjectKeyCreatedRead(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    scopes: list[str]
    comment: str
    tags: list[str]
    expires_at: dt.datetime | None
    key: str = Field(description="The secret: shown once, never again")


class StaffKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    comment: Comment = ""


class StaffKeyCreatedRead(BaseModel):
    id: uuid.UUID
    role: str
    comment: str
    key: str = Field(description="The secret: shown once, never again")


class KeyRevokedRead(BaseModel):
    id: uuid.UUID
    revoked_at: dt.datetime
