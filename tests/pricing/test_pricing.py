"""MIP pricing rules: the rounding rule, effective dates, tiers, contracts, failed requests."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from app.pricing.service import (
    CONTRACT_VERSION,
    MIP_DISCOUNT_BPS,
    ContractTerms,
    DuplicatePrice,
    Price,
    PriceBook,
    PricingError,
    compute_amounts,
    price_request,
    set_price,
)
from app.tables import AuditEntry, Organization, PriceBookEntry
from tests.conftest import Database

JAN = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
JUNE = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
MICRO = dt.timedelta(microseconds=1)


def row(plan: str, tier: str, rate: int, start: dt.datetime, version: str) -> PriceBookEntry:
    return PriceBookEntry(
        id=uuid.uuid4(),
        plan=plan,
        tier=tier,
        rate_micros_per_minute=rate,
        effective_from=start,
        version=version,
    )


def org(plan: str, contract_rates: dict[str, int] | None = None) -> Organization:
    return Organization(id=uuid.uuid4(), name="Org", plan=plan, contract_rates=contract_rates)


def priced(
    book: PriceBook,
    customer: Organization,
    *,
    tier: str = "nova",
    seconds: float = 60,
    opt_out: bool = False,
    status: int = 200,
) -> Price:
    return price_request(
        book,
        ContractTerms.of(customer),
        tier=tier,
        at=JUNE,
        duration_seconds=seconds,
        mip_opt_out=opt_out,
        http_status=status,
    )


def half_up(value: Fraction) -> int:
    return int(
        (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )
    )


class TestRoundingRule:
    @pytest.mark.parametrize(
        ("rate", "seconds", "discount_bps", "expected"),
        [
            # 3 micro-dollars/min for 30 s = 1.5 -> 2 list; net 0.75 -> 1; discount 1.
            (3, 30.0, MIP_DISCOUNT_BPS, (2, 1, 1)),
            # 6/min for 30 s = 3 list; net exactly 1.5 rounds half up to 2; discount 1.
            (6, 30.0, MIP_DISCOUNT_BPS, (3, 1, 2)),
            # 4300/min for 1 s = 71.67 -> 72; net 35.83 -> 36.
            (4300, 1.0, MIP_DISCOUNT_BPS, (72, 36, 36)),
            # opted out: no discount, list = net.
            (4300, 1.0, 0, (72, 0, 72)),
            # 3600/min for 60 s: exact, no rounding.
            (3600, 60.0, MIP_DISCOUNT_BPS, (3600, 1800, 1800)),
            # 1/min for 29.999 s = 0.49998 -> 0 (below half rounds down).
            (1, 29.999, 0, (0, 0, 0)),
            # 1/min for 30 s = 0.5 -> 1 (exactly half rounds up, not to even).
            (1, 30.0, 0, (1, 0, 1)),
            (0, 3600.0, MIP_DISCOUNT_BPS, (0, 0, 0)),
            (4300, 0.0, MIP_DISCOUNT_BPS, (0, 0, 0)),
        ],
    )
    def test_half_up_per_request(
        self, rate: int, seconds: float, discount_bps: int, expected: tuple[int, int, int]
    ) -> None:
        assert (
            compute_amounts(
                rate_micros_per_minute=rate, duration_seconds=seconds, discount_bps=discount_bps
            )
            == expected
        )

    def test_duration_taken_as_written_not_binary_float(self) -> None:
        # 0.1 s as a binary float is 0.1000000000000000055…; the rule uses the decimal 0.1.
        # 600/min * 0.1 s / 60 = exactly 1.0 micro-dollar; half of it is exactly 0.5 -> 1.
        assert compute_amounts(
            rate_micros_per_minute=600, duration_seconds=0.1, discount_bps=MIP_DISCOUNT_BPS
        ) == (1, 0, 1)


class TestRoundingProperties:
    @given(
        rate=st.integers(min_value=0, max_value=10_000_000),
        seconds=st.floats(min_value=0, max_value=86_400, allow_nan=False, allow_infinity=False),
        discount_bps=st.one_of(st.sampled_from([0, MIP_DISCOUNT_BPS]), st.integers(0, 10_000)),
    )
    def test_list_is_discount_plus_net_and_each_is_rounded_exactly(
        self, rate: int, seconds: float, discount_bps: int
    ) -> None:
        list_amount, discount, net = compute_amounts(
            rate_micros_per_minute=rate, duration_seconds=seconds, discount_bps=discount_bps
        )
        assert list_amount == discount + net
        assert 0 <= net <= list_amount
        assert discount >= 0
        exact = Fraction(rate) * Fraction(str(seconds)) / 60
        assert list_amount == half_up(exact)
        assert net == half_up(exact * (10_000 - discount_bps) / 10_000)
        # Never more than half a micro-dollar away from the exact amount.
        assert abs(list_amount - exact) <= Fraction(1, 2)

    @given(
        rate=st.integers(min_value=0, max_value=10_000_000),
        seconds=st.floats(min_value=0, max_value=86_400, allow_nan=False, allow_infinity=False),
    )
    def test_opted_in_pays_half_of_list_within_a_micro_dollar(
        self, rate: int, seconds: float
    ) -> None:
        list_amount, _, net = compute_amounts(
            rate_micros_per_minute=rate, duration_seconds=seconds, discount_bps=MIP_DISCOUNT_BPS
        )
        assert abs(2 * net - list_amount) <= 1

    @given(
        rate=st.integers(min_value=0, max_value=10_000_000),
        micros=st.one_of(
            st.integers(min_value=0, max_value=86_400_000_000),
            st.integers(min_value=0, max_value=100_000).map(lambda n: n * 1_000),
        ),
        discount_bps=st.one_of(st.sampled_from([0, MIP_DISCOUNT_BPS]), st.integers(0, 10_000)),
    )
    def test_integer_path_for_measured_durations_matches_the_decimal_rule(
        self, rate: int, micros: int, discount_bps: int
    ) -> None:
        # Gateways report durations in milli- or micro-seconds: those take the integer path,
        # which must agree exactly with the rule (the exact value of the written decimal).
        seconds = micros / 1_000_000
        exact = Fraction(rate) * Fraction(str(seconds)) / 60
        assert Fraction(str(seconds)) == Fraction(micros, 1_000_000)
        list_amount, discount, net = compute_amounts(
            rate_micros_per_minute=rate, duration_seconds=seconds, discount_bps=discount_bps
        )
        assert list_amount == half_up(exact)
        assert net == half_up(exact * (10_000 - discount_bps) / 10_000)
        assert discount == list_amount - net

    @pytest.mark.parametrize(
        ("seconds", "expected"),
        [
            (0.0000005, (0, 0, 0)),  # seven decimals: the Decimal path
            (1e-7, (0, 0, 0)),
            (123.4567891, (8848, 4424, 4424)),
            (5_000_000.5, (358_333_369, 179_166_684, 179_166_685)),  # past the integer range
            (-0.0, (0, 0, 0)),
        ],
    )
    def test_durations_outside_the_integer_path(
        self, seconds: float, expected: tuple[int, int, int]
    ) -> None:
        exact = Fraction(4300) * Fraction(str(seconds)) / 60
        assert expected[0] == half_up(exact)
        assert (
            compute_amounts(
                rate_micros_per_minute=4300, duration_seconds=seconds, discount_bps=5_000
            )
            == expected
        )


class TestEffectiveDates:
    def test_later_row_applies_only_from_its_date(self) -> None:
        book = PriceBook(
            [row("growth", "*", 3600, JAN, "2026-01"), row("growth", "*", 5000, JUNE, "2026-06")]
        )
        assert book.rate("growth", "nova", JUNE - MICRO) == ("2026-01", 3600)
        assert book.rate("growth", "nova", JUNE) == ("2026-06", 5000)
        assert book.rate("growth", "nova", JUNE + dt.timedelta(days=400)) == ("2026-06", 5000)

    def test_before_the_first_row_there_is_no_rate(self) -> None:
        book = PriceBook([row("growth", "*", 3600, JAN, "2026-01")])
        with pytest.raises(PricingError, match="growth"):
            book.rate("growth", "nova", JAN - MICRO)

    def test_unknown_plan_has_no_rate(self) -> None:
        book = PriceBook([row("growth", "*", 3600, JAN, "2026-01")])
        with pytest.raises(PricingError, match="pay_as_you_go"):
            book.rate("pay_as_you_go", "nova", JUNE)

    def test_tier_row_beats_any_tier_row(self) -> None:
        book = PriceBook(
            [
                row("growth", "*", 3600, JAN, "2026-01"),
                row("growth", "nova", 2000, JAN, "2026-01-nova"),
            ]
        )
        assert book.rate("growth", "nova", JUNE) == ("2026-01-nova", 2000)
        assert book.rate("growth", "base", JUNE) == ("2026-01", 3600)

    def test_tier_row_not_yet_in_force_falls_back_to_any_tier(self) -> None:
        book = PriceBook(
            [
                row("growth", "*", 3600, JAN, "2026-01"),
                row("growth", "nova", 2000, JUNE, "2026-06-nova"),
            ]
        )
        assert book.rate("growth", "nova", JUNE - MICRO) == ("2026-01", 3600)
        assert book.rate("growth", "nova", JUNE) == ("2026-06-nova", 2000)

    def test_rows_added_with_set_price_are_loaded(self, db: Database) -> None:
        with db.session() as session:
            set_price(
                session,
                plan="growth",
                tier="*",
                rate_micros_per_minute=5000,
                effective_from=JUNE,
                version="2026-06",
                actor="test",
            )
        with db.session() as session:
            book = PriceBook.load(session)
        assert book.rate("growth", "nova", JUNE - MICRO) == ("2026-01", 3600)
        assert book.rate("growth", "nova", JUNE) == ("2026-06", 5000)
        assert book.rate("pay_as_you_go", "nova", JUNE) == ("2026-01", 4300)


class TestPriceRequest:
    BOOK = PriceBook([row("growth", "*", 3600, JAN, "2026-01")])

    def test_opted_in_gets_the_mip_discount(self) -> None:
        price = priced(self.BOOK, org("growth"))
        assert (price.rate_micros_per_minute, price.discount_bps) == (3600, MIP_DISCOUNT_BPS)
        assert (price.list_amount_micros, price.discount_micros, price.amount_micros) == (
            3600,
            1800,
            1800,
        )

    def test_opted_out_pays_list(self) -> None:
        price = priced(self.BOOK, org("growth"), opt_out=True)
        assert (price.discount_bps, price.amount_micros, price.discount_micros) == (0, 3600, 0)

    @pytest.mark.parametrize("status", [400, 401, 499, 500, 503])
    def test_failed_request_is_priced_zero_but_keeps_its_rate(self, status: int) -> None:
        price = priced(self.BOOK, org("growth"), seconds=600, status=status)
        assert (price.list_amount_micros, price.discount_micros, price.amount_micros) == (0, 0, 0)
        assert price.rate_micros_per_minute == 3600
        assert price.price_book_version == "2026-01"

    def test_redirect_status_is_still_billed(self) -> None:
        price = priced(self.BOOK, org("growth"), opt_out=True, status=399)
        assert price.amount_micros == 3600


class TestEnterpriseContract:
    # An empty book: enterprise pricing must never read it.
    BOOK = PriceBook([])

    def test_tier_rate_then_any_tier_rate(self) -> None:
        customer = org("enterprise", {"*": 4000, "nova": 3000})
        nova = priced(self.BOOK, customer)
        base = priced(self.BOOK, customer, tier="base", opt_out=True)
        assert (nova.price_book_version, nova.rate_micros_per_minute) == (CONTRACT_VERSION, 3000)
        assert (nova.list_amount_micros, nova.amount_micros) == (3000, 1500)
        assert (base.rate_micros_per_minute, base.amount_micros, base.discount_bps) == (
            4000,
            4000,
            0,
        )
        assert nova.plan == "enterprise"

    def test_no_rate_for_the_tier_is_an_error(self) -> None:
        customer = org("enterprise", {"nova": 3000})
        with pytest.raises(PricingError, match="base"):
            priced(self.BOOK, customer, tier="base")

    def test_failed_request_is_priced_zero(self) -> None:
        price = priced(self.BOOK, org("enterprise", {"*": 4000}), status=500)
        assert (price.rate_micros_per_minute, price.amount_micros) == (4000, 0)


class TestSetPrice:
    def test_writes_row_and_audit_entry(self, db: Database) -> None:
        with db.session() as session:
            entry = set_price(
                session,
                plan="growth",
                tier="nova",
                rate_micros_per_minute=2000,
                effective_from=JUNE,
                version="2026-06",
                actor="tester",
            )
            entry_id = entry.id
        with db.session() as session:
            audit = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "price_book.changed")
            ).one()
            assert audit.target_id == str(entry_id)
            assert audit.actor == "tester"
            assert audit.details["effective_from"] == JUNE.isoformat()

    def test_duplicate_raises_conflict_before_writing(self, db: Database) -> None:
        with db.session() as session:
            set_price(
                session,
                plan="growth",
                tier="nova",
                rate_micros_per_minute=2000,
                effective_from=JUNE,
                version="a",
                actor="t",
            )
        with pytest.raises(DuplicatePrice, match="nova"), db.session() as session:
            set_price(
                session,
                plan="growth",
                tier="nova",
                rate_micros_per_minute=9,
                effective_from=JUNE.astimezone(dt.timezone(dt.timedelta(hours=2))),
                version="b",
                actor="t",
            )
        with db.session() as session:
            rows = session.scalars(select(PriceBookEntry).where(PriceBookEntry.tier == "nova"))
            assert [r.rate_micros_per_minute for r in rows] == [2000]

    @pytest.mark.parametrize(
        ("plan", "tier", "rate", "version"),
        [
            ("gold", "*", 1, "v"),
            ("growth", "*", -1, "v"),
            ("growth", "", 1, "v"),
            ("growth", "*", 1, ""),
        ],
    )
    def test_invalid_input_is_a_pricing_error(
        self, db: Database, plan: str, tier: str, rate: int, version: str
    ) -> None:
        with pytest.raises(PricingError), db.session() as session:
            set_price(
                session,
                plan=plan,
                tier=tier,
                rate_micros_per_minute=rate,
                effective_from=JUNE,
                version=version,
                actor="t",
            )
