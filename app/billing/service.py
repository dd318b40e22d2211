"""Billing rules: the period report, invoice reconciliation, and closing billing periods.

A report covers the ledger rows whose ``billing_period`` is the period, so a late event for a
closed month shows up, as an adjustment, in the report of the month that bills it::

    report = build_report(session, period="2026-03")
    report.totals.net_amount_micros  # what March bills, adjustments included

Exports and reconciliation runs are audit-logged; closing uses the ledger's (audited) close.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.billing import repository
from app.billing.reconciliation import Usage, UsageKey, find_discrepancies, parse_invoice_csv
from app.billing.schemas import (
    MINUTES_QUANTUM,
    BillingReport,
    DiscrepancyKind,
    ReconciliationResult,
    ReportFigures,
    ReportLine,
    ReportTotals,
)
from app.kit.db import utcnow
from app.kit.errors import BadRequest
from app.ledger import seals
from app.ledger.seals import SealCheck
from app.ledger.service import close_period, validate_period
from app.tables.ledger import BillingPeriod
from app.tenancy import repository as tenancy_repository

FIGURE_FIELDS: tuple[str, ...] = tuple(ReportFigures.model_fields)
_MILLIS_PER_MINUTE = Decimal(60_000)
_ZERO_MINUTES = Decimal("0.0000")


class InvalidBillingInput(BadRequest):
    """A billing request that cannot be served as asked (e.g. a negative tolerance)."""


def millis_to_minutes(millis: int | Decimal | None) -> Decimal:
    """Audio minutes rounded to 4 places (half up); ``None`` (no rows) is zero."""
    exact = Decimal(int(millis or 0)) / _MILLIS_PER_MINUTE
    return exact.quantize(MINUTES_QUANTUM, rounding=ROUND_HALF_UP)


def _line(row: Any) -> ReportLine:
    return ReportLine(
        organization_id=row.organization_id,
        organization_name=row.organization_name,
        plan=row.plan,
        model_name=row.model_name,
        # PostgreSQL returns SUM(bigint) as numeric; every figure is an integer.
        requests=int(row.requests),
        billable_requests=int(row.billable_requests),
        minutes_opted_in=millis_to_minutes(row.millis_opted_in),
        minutes_opted_out=millis_to_minutes(row.millis_opted_out),
        list_amount_micros=int(row.list_amount_micros),
        discount_micros=int(row.discount_micros),
        net_amount_micros=int(row.net_amount_micros),
        adjustments_micros=int(row.adjustments_micros),
        adjustment_requests=int(row.adjustment_requests),
    )


def _totals(lines: Sequence[ReportLine]) -> ReportTotals:
    """Sum of the lines (minutes are summed as rounded, so totals equal the sum of lines)."""
    sums: dict[str, Any] = {}
    for name in FIGURE_FIELDS:
        start: Decimal | int = _ZERO_MINUTES if name.startswith("minutes_") else 0
        sums[name] = sum((getattr(line, name) for line in lines), start)
    return ReportTotals(**sums)


def build_report(
    session: Session, *, period: str, organization_id: uuid.UUID | None = None
) -> BillingReport:
    """The report of ``period`` (YYYY-MM): one line per organization and model, and totals.

    Aggregated in one GROUP BY query; an unknown ``organization_id`` is a 404.
    """
    validate_period(period)
    if organization_id is not None:
        tenancy_repository.get_organization_or_raise(session, organization_id)
    rows = repository.report_rows(session, period=period, organization_id=organization_id)
    lines = [_line(row) for row in rows]
    return BillingReport(
        period=period,
        generated_at=utcnow(),
        organization_id=organization_id,
        lines=lines,
        totals=_totals(lines),
    )


def export_report(
    session: Session,
    *,
    period: str,
    organization_id: uuid.UUID | None,
    fmt: str,
    actor: str,
) -> BillingReport:
    """Build the report and audit-log its export (``billing_report.exported``)."""
    report = build_report(session, period=period, organization_id=organization_id)
    record_event(
        session,
        actor=actor,
        action="billing_report.exported",
        target_type="billing_report",
        target_id=period,
        organization_id=organization_id,
        details={
            "period": period,
            "organization_id": str(organization_id) if organization_id else None,
            "format": fmt,
            "lines": len(report.lines),
        },
    )
    return report


def _usage(session: Session, *, period: str) -> dict[UsageKey, Usage]:
    usage: dict[UsageKey, Usage] = {}
    for row in repository.usage_by_participation(session, period=period):
        key: UsageKey = (
            row.organization_id,
            row.model_name,
            "opted_out" if row.mip_opt_out else "opted_in",
        )
        usage[key] = Usage(
            requests=int(row.requests),
            list_micros=int(row.list_amount_micros),
            discount_micros=int(row.discount_micros),
            net_micros=int(row.net_amount_micros),
        )
    return usage


def reconcile(
    session: Session,
    *,
    period: str,
    invoice_csv: bytes,
    actor: str,
    tolerance_micros: int = 0,
) -> ReconciliationResult:
    """Compare an invoice CSV (see :mod:`app.billing.reconciliation`) with the ledger.

    A malformed file raises :class:`~app.billing.reconciliation.MalformedInvoiceFile` before
    anything is written; a completed run is audit-logged (``billing.reconciled``).
    """
    validate_period(period)
    if tolerance_micros < 0:
        raise InvalidBillingInput("The tolerance must be a non-negative number of micro-dollars.")
    lines = parse_invoice_csv(invoice_csv)
    found = find_discrepancies(
        lines, _usage(session, period=period), period=period, tolerance_micros=tolerance_micros
    )
    counts = dict.fromkeys(DiscrepancyKind, 0)
    for discrepancy in found:
        counts[discrepancy.kind] += 1
    result = ReconciliationResult(
        period=period,
        ok=not found,
        tolerance_micros=tolerance_micros,
        invoice_lines=len(lines),
        discrepancies=found,
        counts_by_kind=counts,
    )
    record_event(
        session,
        actor=actor,
        action="billing.reconciled",
        target_type="billing_period",
        target_id=period,
        details={
            "period": period,
            "ok": result.ok,
            "tolerance_micros": tolerance_micros,
            "invoice_lines": len(lines),
            "invoice_sha256": hashlib.sha256(invoice_csv).hexdigest(),
            "discrepancies": len(found),
            "counts_by_kind": {kind.value: n for kind, n in counts.items()},
        },
    )
    return result


def close(session: Session, *, period: str, actor: str) -> BillingPeriod:
    """Close ``period``; 409 when already closed. Later events for it become adjustments."""
    return close_period(session, period=period, actor=actor)


def list_closed_periods(session: Session) -> Sequence[BillingPeriod]:
    return repository.closed_periods(session)


def verify_seals(session: Session) -> list[SealCheck]:
    """Every closed month's recorded seal against its rows as they are now."""
    return seals.verify_seals(session)
