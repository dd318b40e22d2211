"""Price-book HTTP: billing reads it, admins add effective-dated rows (audit-logged)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from app.kit.auth import Principal, Role
from app.kit.deps import SessionDep, require_roles
from app.kit.money import micros_to_usd
from app.pricing import service
from app.pricing.schemas import PriceBookRead, PriceCreate, PriceRead
from app.tables.pricing import PriceBookEntry

router = APIRouter(prefix="/v1/governance/prices", tags=["pricing"])

Reader = Annotated[Principal, Depends(require_roles(Role.BILLING))]
Admin = Annotated[Principal, Depends(require_roles())]


def _read(entry: PriceBookEntry) -> PriceRead:
    return PriceRead(
        id=entry.id,
        plan=entry.plan,
        tier=entry.tier,
        rate_micros_per_minute=entry.rate_micros_per_minute,
        rate_usd_per_minute=micros_to_usd(entry.rate_micros_per_minute),
        effective_from=entry.effective_from,
        version=entry.version,
        created_at=entry.created_at,
    )


@router.get(
    "",
    response_model=PriceBookRead,
    summary="List the price book",
    description="Every row, ordered by plan, tier and start date. Roles `billing` or `admin`.",
)
def list_prices(session: SessionDep, _principal: Reader) -> PriceBookRead:
    return PriceBookRead(prices=[_read(e) for e in service.list_prices(session)])


@router.post(
    "",
    response_model=PriceRead,
    status_code=status.HTTP_201_CREATED,
    summary="Add a price-book rate from a date on",
    description=(
        "Adds a row; requests already recorded keep the rate they were billed with. The change "
        "is written to the audit log. Role `admin`."
    ),
    responses={
        400: {"description": "Invalid plan, rate, date or version"},
        409: {"description": "A row for this plan, tier and effective_from already exists"},
    },
)
def add_price(body: PriceCreate, session: SessionDep, principal: Admin) -> PriceRead:
    entry = service.set_price(
        session,
        plan=body.plan,
        tier=body.tier,
        rate_micros_per_minute=body.rate_micros_per_minute,
        effective_from=body.effective_from,
        version=body.version,
        actor=principal.actor,
    )
    return _read(entry)
