"""Compliance HTTP: the signed period report (roles auditor, admin)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from app.compliance.render import MEDIA_TYPES, render
from app.compliance.report import MAX_DAYS, ReportPeriod, generate_report
from app.kit.auth import Principal, Role
from app.kit.crypto.signing import SigningKey
from app.kit.deps import SessionDep, require_roles
from app.kit.openapi import error_responses
from app.samples.deps import StoreDep
from app.sampling.policy import SamplingConfig

router = APIRouter(prefix="/v1/governance/compliance", tags=["compliance"])

Auditor = Annotated[Principal, Depends(require_roles(Role.AUDITOR))]


class ReportFormat(StrEnum):
    JSON = "json"
    HTML = "html"
    PDF = "pdf"


@router.get(
    "/report",
    response_class=Response,
    summary="The compliance report of a period, signed",
    description=(
        "Opt-out and sampling, consent, retention, erasures, access to sample content, key "
        "management, model lineage and the audit log for the UTC days `[from, to)`, each "
        "computed from the database and the sample store, with a pass/fail check per rule. "
        "`format=json` (default) is the evidence bundle `{report, signature}`: an Ed25519 "
        "signature over the report's sorted, compact JSON, verifiable with the service's "
        "public key alone. `html` is a self-contained page; `pdf` a paginated document with "
        f"charts. At most {MAX_DAYS} days. Every report generated is audit-logged "
        "(`compliance.report_generated`). Roles `auditor` or `admin`."
    ),
    responses={
        **error_responses(
            401,
            specific={
                400: "Bad date, `to` not after `from`, a period over a year, or bad format",
                403: "Not a staff key with role auditor or admin",
            },
        ),
        200: {
            "description": "The report in the format asked for",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/html": {"schema": {"type": "string"}},
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
            },
        },
    },
)
def get_report(
    request: Request,
    principal: Auditor,
    session: SessionDep,
    store: StoreDep,
    first: Annotated[
        str, Query(alias="from", max_length=10, description="First day, YYYY-MM-DD (UTC)")
    ],
    end: Annotated[
        str,
        Query(alias="to", max_length=10, description="The day after the last, YYYY-MM-DD"),
    ],
    fmt: Annotated[ReportFormat, Query(alias="format", description="json | html | pdf")] = (
        ReportFormat.JSON
    ),
) -> Response:
    period = ReportPeriod.parse(first, end)
    sampling: SamplingConfig = request.app.state.sampling
    signer: SigningKey = request.app.state.signer
    bundle = generate_report(
        session,
        store,
        sampling,
        signer,
        period=period,
        actor=principal.actor,
        fmt=fmt.value,
    )
    # Rendered before the session commits: a report that fails to render is not audited
    # as generated.
    content = render(bundle, fmt.value)
    name = f"compliance-report-{period.first.isoformat()}-{period.end.isoformat()}.{fmt.value}"
    disposition = "inline" if fmt is ReportFormat.HTML else "attachment"
    return Response(
        content,
        media_type=MEDIA_TYPES[fmt.value],
        headers={"Content-Disposition": f'{disposition}; filename="{name}"'},
    )
