"""Every query of the billing domain. Aggregates are computed by the database, never in Python.

Billing reads across tenants (staff roles only); the optional organization filter limits a
report to one tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Row,
    case,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.orm import QueryableAttribute, Session

from app.tables.ledger import BillingPeriod, LedgerEntry
from app.tables.tenancy import Organization

# Literal SQL, not bind parameters: PostgreSQL must not have to infer a parameter's type.
_ZERO: ColumnElement[int] = literal_column("0", Integer)
_ONE: ColumnElement[int] = literal_column("1", Integer)


def _sum_where(
    condition: ColumnElement[bool] | QueryableAttribute[bool], value: Any = _ONE
) -> ColumnElement[Any]:
    """``SUM(CASE WHEN condition THEN value ELSE 0 END)``: a conditional sum on every backend."""
    return func.sum(case((condition, value), else_=_ZERO))


def report_rows(
    session: Session, *, period: str, organization_id: uuid.UUID | None
) -> Sequence[Row[Any]]:
    """One row per organization and model for rows billed in ``period``, in ONE query.

    The ledger is grouped first and the few resulting rows joined to their organization, so
    the join never touches ledger rows. Columns: organization_id, organization_name, plan,
    model_name, requests, billable_requests, millis_opted_in, millis_opted_out,
    list_amount_micros, discount_micros, net_amount_micros, adjustments_micros,
    adjustment_requests.
    """
    entry = LedgerEntry
    billable = entry.http_status < 400
    # Whole milliseconds summed as integers: a float SUM depends on the order PostgreSQL's
    # parallel workers add partial sums, which flipped 4-place minute roundings between runs.
    millis = cast(func.round(entry.duration_seconds * 1000), BigInteger)
    grouped = (
        select(
            entry.organization_id,
            entry.model_name,
            func.count().label("requests"),
            _sum_where(billable).label("billable_requests"),
            _sum_where(billable & ~entry.mip_opt_out, millis).label("millis_opted_in"),
            _sum_where(billable & entry.mip_opt_out, millis).label("millis_opted_out"),
            func.sum(entry.list_amount_micros).label("list_amount_micros"),
            func.sum(entry.discount_micros).label("discount_micros"),
            func.sum(entry.amount_micros).label("net_amount_micros"),
            _sum_where(entry.is_adjustment, entry.amount_micros).label("adjustments_micros"),
            _sum_where(entry.is_adjustment).label("adjustment_requests"),
        )
        .where(entry.billing_period == period)
        .group_by(entry.organization_id, entry.model_name)
    )
    if organization_id is not None:
        grouped = grouped.where(entry.organization_id == organization_id)
    lines = grouped.subquery("lines")
    stmt = (
        select(
            lines.c.organization_id,
            Organization.name.label("organization_name"),
            Organization.plan,
            *(column for name, column in lines.c.items() if name != "organization_id"),
        )
        .join(Organization, Organization.id == lines.c.organization_id)
        .order_by(Organization.name, lines.c.organization_id, lines.c.model_name)
    )
    return session.execute(stmt).all()


def usage_by_participation(
    session: Session, *, period: str
) -> Sequence[Row[uuid.UUID, str, bool, int, int, int, int]]:
    """Billable usage billed in ``period`` by (organization, model, opted out), one query.

    Columns: organization_id, model_name, mip_opt_out, requests, list_amount_micros,
    discount_micros, net_amount_micros.
    """
    entry = LedgerEntry
    stmt = (
        select(
            entry.organization_id,
            entry.model_name,
            entry.mip_opt_out,
            func.count().label("requests"),
            func.sum(entry.list_amount_micros).label("list_amount_micros"),
            func.sum(entry.discount_micros).label("discount_micros"),
            func.sum(entry.amount_micros).label("net_amount_micros"),
        )
        .where(entry.billing_period == period, entry.http_status < 400)
        .group_by(entry.organization_id, entry.model_name, entry.mip_opt_out)
    )
    return session.execute(stmt).all()


def closed_periods(session: Session) -> Sequence[BillingPeriod]:
    stmt = (
        select(BillingPeriod).where(BillingPeriod.status == "closed").order_by(BillingPeriod.period)
    )
    return session.scalars(stmt).all()
