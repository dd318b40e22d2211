"""build_report: figures per plan, organization and model, adjustments, one aggregate query."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event as sa_event

from app.billing.schemas import BillingReport, ReportFigures, ReportLine
from app.billing.service import FIGURE_FIELDS, build_report, millis_to_minutes
from app.kit.errors import BadRequest, NotFound
from app.ledger.service import close_period
from tests.billing.conftest import PERIOD, T0, Ledger, event, ingest
from tests.conftest import Database

# (org, model) -> requests, billable, min in, min out, list, discount, net, adj, adj requests
EXPECTED = {
    ("Alpha", "general"): (3, 2, "1.0000", "1.5000", 10750, 2150, 8600, 0, 0),
    ("Alpha", "nova"): (1, 1, "2.0000", "0.0000", 8600, 4300, 4300, 0, 0),
    ("Beta", "general"): (3, 2, "0.5000", "0.7500", 4500, 900, 3600, 0, 0),
    ("Gamma", "general"): (3, 3, "1.0000", "0.2500", 5000, 2000, 3000, 0, 0),
}


def figures(line: ReportFigures) -> tuple[Any, ...]:
    return (
        line.requests,
        line.billable_requests,
        str(line.minutes_opted_in),
        str(line.minutes_opted_out),
        line.list_amount_micros,
        line.discount_micros,
        line.net_amount_micros,
        line.adjustments_micros,
        line.adjustment_requests,
    )


def report(db: Database, period: str = PERIOD, org: uuid.UUID | None = None) -> BillingReport:
    with db.session() as session:
        return build_report(session, period=period, organization_id=org)


def by_key(lines: list[ReportLine]) -> dict[tuple[str, str], tuple[Any, ...]]:
    return {(line.organization_name, line.model_name): figures(line) for line in lines}


class TestReportFigures:
    def test_lines_per_organization_and_model(self, db: Database, ledger: Ledger) -> None:
        result = report(db)
        assert result.period == PERIOD
        assert result.organization_id is None
        assert by_key(result.lines) == EXPECTED
        assert [(line.organization_name, line.model_name) for line in result.lines] == list(
            EXPECTED
        )
        plans = {line.organization_name: line.plan for line in result.lines}
        assert plans == {"Alpha": "pay_as_you_go", "Beta": "growth", "Gamma": "enterprise"}
        ids = {line.organization_name: line.organization_id for line in result.lines}
        assert ids == {"Alpha": ledger.alpha, "Beta": ledger.beta, "Gamma": ledger.gamma}

    def test_totals_are_the_sum_of_lines(self, db: Database, ledger: Ledger) -> None:
        result = report(db)
        assert figures(result.totals) == (10, 8, "4.5000", "2.5000", 28850, 9350, 19500, 0, 0)
        for name in FIGURE_FIELDS:
            assert getattr(result.totals, name) == sum(getattr(line, name) for line in result.lines)

    def test_list_is_discount_plus_net_on_every_line(self, db: Database, ledger: Ledger) -> None:
        for line in report(db).lines:
            assert line.list_amount_micros == line.discount_micros + line.net_amount_micros

    def test_usd_strings_have_six_places(self, db: Database, ledger: Ledger) -> None:
        line = report(db).lines[0]
        assert (line.list_amount_usd, line.discount_usd, line.net_amount_usd) == (
            "0.010750",
            "0.002150",
            "0.008600",
        )
        assert line.adjustments_usd == "0.000000"

    def test_other_period_has_only_its_rows(self, db: Database, ledger: Ledger) -> None:
        april = report(db, "2026-04")
        assert by_key(april.lines) == {
            ("Alpha", "general"): (1, 1, "1.0000", "0.0000", 4300, 2150, 2150, 0, 0)
        }

    def test_empty_period_has_no_lines_and_zero_totals(self, db: Database, ledger: Ledger) -> None:
        empty = report(db, "2025-01")
        assert empty.lines == []
        assert figures(empty.totals) == (0, 0, "0.0000", "0.0000", 0, 0, 0, 0, 0)


class TestOrganizationFilter:
    def test_one_organization_only(self, db: Database, ledger: Ledger) -> None:
        result = report(db, org=ledger.beta)
        assert result.organization_id == ledger.beta
        assert by_key(result.lines) == {("Beta", "general"): EXPECTED[("Beta", "general")]}
        assert result.totals.net_amount_micros == 3600

    def test_unknown_organization_is_not_found(self, db: Database, ledger: Ledger) -> None:
        with pytest.raises(NotFound):
            report(db, org=uuid.uuid4())


class TestAdjustments:
    def test_late_event_after_close_is_an_adjustment_next_period(
        self, db: Database, ledger: Ledger
    ) -> None:
        before = report(db)
        with db.session() as session:
            close_period(session, period=PERIOD, actor="test")
        ingest(db, event(ledger.alpha_project, "late", duration=60, created=T0.replace(day=20)))
        after = report(db)
        assert by_key(after.lines) == by_key(before.lines)  # a closed month never changes
        april = by_key(report(db, "2026-04").lines)
        # The April row (2150 net) and the late March one (2150 net, an adjustment).
        assert april[("Alpha", "general")] == (2, 2, "2.0000", "0.0000", 8600, 4300, 4300, 2150, 1)


class TestPeriodValidation:
    @pytest.mark.parametrize("period", ["2026-3", "2026-13", "March", "", "2026-03-01"])
    def test_bad_period_is_bad_request(self, db: Database, period: str) -> None:
        with pytest.raises(BadRequest, match="YYYY-MM"):
            report(db, period)


class TestMinutes:
    @pytest.mark.parametrize(
        ("millis", "minutes"),
        [
            (10_000, "0.1667"),
            (0, "0.0000"),
            (None, "0.0000"),
            (3_600_003, "60.0001"),
            (3, "0.0001"),
            (Decimal(9), "0.0002"),  # PostgreSQL returns SUM(bigint) as numeric
        ],
    )
    def test_rounded_half_up_to_four_places(
        self, millis: int | Decimal | None, minutes: str
    ) -> None:
        assert millis_to_minutes(millis) == Decimal(minutes)
        assert str(millis_to_minutes(millis)) == minutes


@pytest.fixture
def ledger_selects(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "ledger_entries" in statement:
            statements.append(statement)

    sa_event.listen(db.engine, "before_cursor_execute", record)
    yield statements
    sa_event.remove(db.engine, "before_cursor_execute", record)


class TestOneQuery:
    def test_ledger_is_read_by_one_group_by_query(
        self, db: Database, ledger: Ledger, ledger_selects: list[str]
    ) -> None:
        report(db)
        assert len(ledger_selects) == 1
        assert "GROUP BY" in ledger_selects[0].upper()
