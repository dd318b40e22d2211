"""Billing HTTP: period reports, invoice reconciliation, period close (staff: billing, admin)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from app.billing import exports, service
from app.billing.schemas import (
    BillingPeriodList,
    BillingPeriodRead,
    BillingReport,
    ExportFormat,
    ReconciliationResult,
    SealCheckRead,
    SealVerificationRead,
)
from app.kit.auth import Principal, Role
from app.kit.deps import SessionDep, require_roles
from app.kit.errors import BadRequest, UnsupportedMediaType
from app.kit.openapi import error_responses

router = APIRouter(prefix="/v1/governance/billing", tags=["billing"])

BillingStaff = Annotated[Principal, Depends(require_roles(Role.BILLING))]
SealReader = Annotated[Principal, Depends(require_roles(Role.BILLING, Role.AUDITOR))]

# An invoice line is ~150 bytes: 16 MiB is ~100,000 lines, far beyond a month's invoices.
MAX_INVOICE_BYTES = 16 * 1024 * 1024
CSV_MEDIA_TYPES = frozenset({"text/csv", "application/csv"})

_ERRORS = error_responses(
    401,
    specific={
        400: "Bad period, format, organization id or CSV (the message says which)",
        403: "Not a staff key with role billing or admin",
    },
)


async def invoice_csv_body(request: Request) -> bytes:
    """The request body when it is a CSV of acceptable size (read before the sync endpoint)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in CSV_MEDIA_TYPES:
        raise UnsupportedMediaType("Send the invoice CSV with 'Content-Type: text/csv'.")
    body = await request.body()  # within MAX_INVOICE_BYTES: the request guard counts it
    if not body.strip():
        raise BadRequest("Empty request body: send the invoice CSV, header on line 1.")
    return body


@router.get(
    "/reports/{period}",
    response_model=BillingReport,
    summary="Billing report of a period, per organization and model",
    description=(
        "Aggregates the ledger rows billed in `period` (YYYY-MM), late events from closed "
        "months included as adjustments. `format=json` (default) returns the report with "
        "totals; `csv` and `parquet` return one row per organization and model. Money is "
        "given as integer micro-dollars and as USD strings with 6 decimals. Every export is "
        "audit-logged. Needs a staff key with role `billing` or `admin`."
    ),
    responses={
        **_ERRORS,
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            }
        },
        404: {"description": "Unknown organization"},
    },
)
def get_report(
    principal: BillingStaff,
    session: SessionDep,
    period: str,
    organization_id: Annotated[
        uuid.UUID | None, Query(description="Only this organization")
    ] = None,
    fmt: Annotated[ExportFormat, Query(alias="format", description="json | csv | parquet")] = (
        ExportFormat.JSON
    ),
) -> BillingReport | Response:
    report = service.export_report(
        session,
        period=period,
        organization_id=organization_id,
        fmt=fmt.value,
        actor=principal.actor,
    )
    if fmt is ExportFormat.JSON:
        return report
    return Response(
        exports.render_report(report, fmt),
        media_type=exports.MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="billing-report-{period}.{fmt.value}"'
        },
    )


@router.post(
    "/reconciliations",
    response_model=ReconciliationResult,
    summary="Reconcile an invoice CSV against the ledger of a period",
    description=(
        "The body is the invoice CSV (`Content-Type: text/csv`) with columns invoice_id, "
        "organization_id, period, model, mip_participation (opted_in|opted_out), "
        "list_amount_usd, discount_usd, net_amount_usd (USD, at most 6 decimals). Lines are "
        "compared with the ledger's billable usage of `period` by organization, model and "
        "participation. `ok` is false when any discrepancy is found. A malformed CSV is a 400 "
        "naming the line. The run is audit-logged. Needs role `billing` or `admin`."
    ),
    responses={
        **_ERRORS,
        413: {"description": "Body too large"},
        415: {"description": "Body is not text/csv"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
def reconcile(
    principal: BillingStaff,
    session: SessionDep,
    period: Annotated[str, Query(description="Billing period YYYY-MM")],
    body: Annotated[bytes, Depends(invoice_csv_body)],
    tolerance_micros: Annotated[
        int, Query(ge=0, description="Net difference tolerated, in micro-dollars")
    ] = 0,
) -> ReconciliationResult:
    return service.reconcile(
        session,
        period=period,
        invoice_csv=body,
        actor=principal.actor,
        tolerance_micros=tolerance_micros,
    )


@router.post(
    "/periods/{period}/close",
    response_model=BillingPeriodRead,
    summary="Close a billing period",
    description=(
        "Closes `period` (YYYY-MM): events for it that arrive later are billed as adjustments "
        "in the next open period. Audit-logged. 409 when already closed. Needs role `billing` "
        "or `admin`."
    ),
    responses={**_ERRORS, **error_responses(specific={409: "The period is already closed"})},
)
def close_period(principal: BillingStaff, session: SessionDep, period: str) -> BillingPeriodRead:
    closed = service.close(session, period=period, actor=principal.actor)
    return BillingPeriodRead.model_validate(closed)


@router.get(
    "/periods",
    response_model=BillingPeriodList,
    summary="List closed billing periods",
    description="Every closed period, oldest first. Needs role `billing` or `admin`.",
    responses={401: _ERRORS[401], 403: _ERRORS[403]},
)
def list_periods(_principal: BillingStaff, session: SessionDep) -> BillingPeriodList:
    periods = service.list_closed_periods(session)
    return BillingPeriodList(periods=[BillingPeriodRead.model_validate(p) for p in periods])


@router.get(
    "/seals",
    response_model=SealVerificationRead,
    summary="Verify the sealed digests of closed billing periods",
    description=(
        "Every closed period's digest, as its close's audit entry recorded it, recomputed over "
        "its ledger rows as they are now: `ok` is false when any row was changed, removed or "
        "added around the database's append-only rule. Roles `billing`, `auditor`, `admin`."
    ),
    responses={401: _ERRORS[401], 403: _ERRORS[403]},
)
def verify_seals(_principal: SealReader, session: SessionDep) -> SealVerificationRead:
    checks = [SealCheckRead.model_validate(c.as_dict()) for c in service.verify_seals(session)]
    return SealVerificationRead(ok=all(c.ok for c in checks), periods=checks)
