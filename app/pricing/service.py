"""MIP pricing: effective-dated price book, contract rates, the 50% discount, the rounding rule.

Rounding (per request, to the micro-dollar, half up)::

    list   = round_half_up(rate_per_minute * duration_seconds / 60)
    net    = round_half_up(rate_per_minute * duration_seconds / 60 * (1 - discount))
    discount_amount = list - net          # so list = discount + net, exactly

Opted-in usage gets ``discount = 50%``; opted-out usage (by request or contract) pays list.
A failed request (HTTP status ≥ 400) is recorded with its rate but amounts of zero.
"""

from __future__ import annotations

import datetime as dt
import uuid
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.kit.errors import BadRequest, Conflict
from app.tables.pricing import PriceBookEntry
from app.tables.tenancy import Organization

MIP_DISCOUNT_BPS = 5_000  # 50.00 %
CONTRACT_VERSION = "contract"
ANY_TIER = "*"
_BPS = Decimal(10_000)
_SIXTY = Decimal(60)


class PricingError(BadRequest):
    """No rate applies (no price-book row, or an enterprise contract without a rate)."""


class DuplicatePrice(Conflict):
    """A price-book row already exists for this plan, tier and start date."""


class Price(NamedTuple):
    plan: str
    price_book_version: str
    rate_micros_per_minute: int
    discount_bps: int
    list_amount_micros: int
    discount_micros: int
    amount_micros: int


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# Durations written with at most six decimals (every duration a gateway measures in
# microseconds or coarser) are priced in integer arithmetic: the duration is exactly
# n / 10**6, so ``exact = rate * n / (60 * 10**6)``. Anything else takes the Decimal path.
_MICRO = 1_000_000
_PER_MINUTE_MICRO = 60 * _MICRO
_FAST_LIMIT = 2**42  # micro-seconds: 50 days, where a float's spacing is still under 10**-9 s


def compute_amounts(
    *, rate_micros_per_minute: int, duration_seconds: float, discount_bps: int
) -> tuple[int, int, int]:
    """(list, discount, net) micro-dollars for one request, by the rule in the module doc.

    The duration's value is its shortest decimal form (``str(duration_seconds)``), the way
    it was written in the event, not the binary fraction that approximates it.
    """
    micros = round(duration_seconds * _MICRO)
    if 0 <= micros < _FAST_LIMIT and micros / _MICRO == duration_seconds:
        # duration_seconds is the float nearest to micros / 10**6, and floats this small are
        # closer together than 10**-6, so no other six-decimal number rounds to it: its
        # shortest decimal form, str(duration_seconds), is micros / 10**6.
        # Half up on non-negative a / b is floor((2a + b) / 2b).
        scaled = rate_micros_per_minute * micros
        list_amount = (2 * scaled + _PER_MINUTE_MICRO) // (2 * _PER_MINUTE_MICRO)
        divisor = _PER_MINUTE_MICRO * 10_000
        net = (2 * scaled * (10_000 - discount_bps) + divisor) // (2 * divisor)
        return list_amount, list_amount - net, net
    exact = Decimal(rate_micros_per_minute) * Decimal(str(duration_seconds)) / _SIXTY
    list_amount = _round(exact)
    net = _round(exact * (_BPS - discount_bps) / _BPS)
    return list_amount, list_amount - net, net


class PriceBook:
    """An in-memory snapshot of the price book, loaded once per batch."""

    def __init__(self, entries: Sequence[PriceBookEntry]) -> None:
        by_key: dict[tuple[str, str], list[PriceBookEntry]] = {}
        for entry in entries:
            by_key.setdefault((entry.plan, entry.tier), []).append(entry)
        self._rows = {k: sorted(v, key=lambda e: e.effective_from) for k, v in by_key.items()}
        self._starts = {k: [e.effective_from for e in v] for k, v in self._rows.items()}

    @classmethod
    def load(cls, session: Session) -> PriceBook:
        return cls(session.scalars(select(PriceBookEntry)).all())

    def _lookup(self, plan: str, tier: str, at: dt.datetime) -> PriceBookEntry | None:
        key = (plan, tier)
        if key not in self._rows:
            return None
        index = bisect_right(self._starts[key], at) - 1
        return self._rows[key][index] if index >= 0 else None

    def rate(self, plan: str, tier: str, at: dt.datetime) -> tuple[str, int]:
        entry = self._lookup(plan, tier, at) or self._lookup(plan, ANY_TIER, at)
        if entry is None:
            raise PricingError(
                f"No price-book rate for plan '{plan}', tier '{tier}' at {at.isoformat()}."
            )
        return entry.version, entry.rate_micros_per_minute


@dataclass(frozen=True, slots=True)
class ContractTerms:
    """The pricing-relevant terms of an organization, read once per batch (not per row)."""

    id: uuid.UUID
    plan: str
    contract_rates: dict[str, int] | None
    contract_opt_out: bool

    @classmethod
    def of(cls, org: Organization) -> ContractTerms:
        return cls(org.id, org.plan, org.contract_rates, org.contract_opt_out)


def rate_for(book: PriceBook, org: ContractTerms, *, tier: str, at: dt.datetime) -> tuple[str, int]:
    """(price-book version, micro-dollars per minute) for a request of this tier at ``at``."""
    if org.plan == "enterprise":
        rates = org.contract_rates or {}
        rate = rates.get(tier, rates.get(ANY_TIER))
        if rate is None:
            raise PricingError(f"Organization {org.id} has no contract rate for tier '{tier}'.")
        return CONTRACT_VERSION, rate
    return book.rate(org.plan, tier, at)


def price_request(
    book: PriceBook,
    org: ContractTerms,
    *,
    tier: str,
    at: dt.datetime,
    duration_seconds: float,
    mip_opt_out: bool,
    http_status: int,
) -> Price:
    version, rate = rate_for(book, org, tier=tier, at=at)
    discount_bps = 0 if mip_opt_out else MIP_DISCOUNT_BPS
    if http_status >= 400:
        amounts = (0, 0, 0)
    else:
        amounts = compute_amounts(
            rate_micros_per_minute=rate,
            duration_seconds=duration_seconds,
            discount_bps=discount_bps,
        )
    return Price(org.plan, version, rate, discount_bps, *amounts)


def _duplicate_message(plan: str, tier: str, effective_from: dt.datetime) -> str:
    return (
        f"The price book already has a rate for plan '{plan}', tier '{tier}' effective from "
        f"{effective_from.astimezone(dt.UTC).isoformat()}; choose another effective_from."
    )


def set_price(
    session: Session,
    *,
    plan: str,
    tier: str,
    rate_micros_per_minute: int,
    effective_from: dt.datetime,
    version: str,
    actor: str,
) -> PriceBookEntry:
    """Add a price-book row. Rows already priced keep their rate: the ledger stores it."""
    if plan not in ("pay_as_you_go", "growth", "enterprise"):
        raise PricingError(f"Unknown plan '{plan}'.")
    if rate_micros_per_minute < 0:
        raise PricingError("The rate must be non-negative.")
    if not tier or not version:
        raise PricingError("Tier and version must not be empty.")
    duplicate = _duplicate_message(plan, tier, effective_from)
    existing = session.scalars(
        select(PriceBookEntry.id).where(
            PriceBookEntry.plan == plan,
            PriceBookEntry.tier == tier,
            PriceBookEntry.effective_from == effective_from,
        )
    ).first()
    if existing is not None:
        raise DuplicatePrice(duplicate)
    entry = PriceBookEntry(
        plan=plan,
        tier=tier,
        rate_micros_per_minute=rate_micros_per_minute,
        effective_from=effective_from,
        version=version,
    )
    session.add(entry)
    try:
        session.flush()
    except IntegrityError as exc:
        # Another writer added the same row between our check and our write.
        raise DuplicatePrice(duplicate) from exc
    record_event(
        session,
        actor=actor,
        action="price_book.changed",
        target_type="price_book",
        target_id=str(entry.id),
        details={
            "plan": plan,
            "tier": tier,
            "rate_micros_per_minute": rate_micros_per_minute,
            "effective_from": effective_from.isoformat(),
            "version": version,
        },
    )
    return entry


def list_prices(session: Session) -> Sequence[PriceBookEntry]:
    stmt = select(PriceBookEntry).order_by(
        PriceBookEntry.plan, PriceBookEntry.tier, PriceBookEntry.effective_from
    )
    return session.scalars(stmt).all()
