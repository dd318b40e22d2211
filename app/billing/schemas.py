"""Billing output shapes: the period report, reconciliation results and billing periods.

Money is integer micro-dollars; each ``*_micros`` figure also appears as ``*_usd``, a decimal
string with 6 places (``2150`` → ``"0.002150"``), computed here at the edge. Minutes are not
money: a ``Decimal`` rounded to 4 places, serialised as a JSON number.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, computed_field

from app.kit.money import micros_to_usd

MINUTES_QUANTUM = Decimal("0.0001")

Minutes = Annotated[
    Decimal, PlainSerializer(lambda value: float(value), return_type=float, when_used="json")
]
Participation = Literal["opted_in", "opted_out"]


class ExportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    PARQUET = "parquet"


class ReportFigures(BaseModel):
    """The figures of one report line, or of the totals."""

    requests: int = Field(description="Every request, failed ones included")
    billable_requests: int = Field(description="Requests with HTTP status < 400")
    minutes_opted_in: Minutes = Field(description="Audio minutes of billable opted-in requests")
    minutes_opted_out: Minutes = Field(description="Audio minutes of billable opted-out requests")
    list_amount_micros: int = Field(description="Price before the MIP discount")
    discount_micros: int = Field(description="MIP discount (opted-in usage)")
    net_amount_micros: int = Field(description="Billed amount: list - discount")
    adjustments_micros: int = Field(
        description="Net amount of late events from an earlier, closed usage period"
    )
    adjustment_requests: int = Field(description="Requests billed here as adjustments")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def list_amount_usd(self) -> str:
        return micros_to_usd(self.list_amount_micros)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def discount_usd(self) -> str:
        return micros_to_usd(self.discount_micros)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def net_amount_usd(self) -> str:
        return micros_to_usd(self.net_amount_micros)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def adjustments_usd(self) -> str:
        return micros_to_usd(self.adjustments_micros)


class ReportLine(ReportFigures):
    """One organization and model in the billing period."""

    organization_id: uuid.UUID
    organization_name: str
    plan: str = Field(description="The organization's plan when the report was generated")
    model_name: str


class ReportTotals(ReportFigures):
    """The sum of every line."""


class BillingReport(BaseModel):
    period: str = Field(description="Billing period YYYY-MM (rows whose billing_period it is)")
    generated_at: dt.datetime
    organization_id: uuid.UUID | None = Field(
        default=None, description="The organization the report is limited to, if any"
    )
    lines: list[ReportLine]
    totals: ReportTotals


class DiscrepancyKind(StrEnum):
    INVOICE_WITHOUT_USAGE = "invoice_without_usage"
    USAGE_WITHOUT_INVOICE = "usage_without_invoice"
    AMOUNT_MISMATCH = "amount_mismatch"
    DISCOUNT_ON_OPTED_OUT = "discount_on_opted_out"
    DISCOUNT_MISSING_ON_OPTED_IN = "discount_missing_on_opted_in"
    PERIOD_MISMATCH = "period_mismatch"


class Discrepancy(BaseModel):
    """One finding; invoice figures are summed over the invoice lines of the same key."""

    kind: DiscrepancyKind
    organization_id: uuid.UUID
    model: str
    mip_participation: Participation
    invoice_ids: list[str] = Field(description="Invoice ids of the lines involved (none: usage)")
    lines: list[int] = Field(description="Line numbers in the invoice CSV (header = line 1)")
    invoice_period: str | None = Field(description="The period column of those lines")
    invoiced_list_micros: int | None
    invoiced_discount_micros: int | None
    invoiced_net_micros: int | None
    ledger_list_micros: int | None
    ledger_discount_micros: int | None
    ledger_net_micros: int | None
    difference_micros: int | None = Field(description="Invoiced net - ledger net")
    detail: str


class ReconciliationResult(BaseModel):
    period: str
    ok: bool = Field(description="True when no discrepancy was found")
    tolerance_micros: int
    invoice_lines: int
    discrepancies: list[Discrepancy]
    counts_by_kind: dict[DiscrepancyKind, int] = Field(description="Every kind, 0 when absent")


class BillingPeriodRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    period: str
    status: str
    closed_at: dt.datetime | None
    closed_by: str | None


class BillingPeriodList(BaseModel):
    periods: list[BillingPeriodRead] = Field(description="Closed periods, oldest first")


class PeriodSealRead(BaseModel):
    rows: int = Field(description="Ledger rows billed in the period")
    amount_micros: int = Field(description="Their net amount, integer micro-dollars")
    digest: str = Field(description="sha256 of the rows (see digest_of)")
    digest_of: str


class SealCheckRead(BaseModel):
    period: str
    ok: bool = Field(description="The rows still hash to the digest recorded at the close")
    recorded: PeriodSealRead = Field(description="As the close's audit entry records it")
    actual: PeriodSealRead = Field(description="As the rows are now")


class SealVerificationRead(BaseModel):
    ok: bool
    periods: list[SealCheckRead]
