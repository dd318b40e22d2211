"""``mip billing report``: every format parses back to the same figures; exports are audited."""

from __future__ import annotations

import csv
import getpass
import io
import json
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from app.billing.exports import REPORT_COLUMNS
from tests.billing.conftest import PERIOD, Cli, Ledger, audit_entries
from tests.conftest import Database

# One line checked in every format: Alpha, general.
ALPHA_GENERAL = {
    "organization_name": "Alpha",
    "plan": "pay_as_you_go",
    "model_name": "general",
    "requests": 3,
    "billable_requests": 2,
    "list_amount_micros": 10750,
    "list_amount_usd": "0.010750",
    "discount_micros": 2150,
    "discount_usd": "0.002150",
    "net_amount_micros": 8600,
    "net_amount_usd": "0.008600",
    "adjustments_micros": 0,
    "adjustments_usd": "0.000000",
    "adjustment_requests": 0,
}
NET_BY_LINE = [8600, 4300, 3600, 3000]


def check_alpha_general(record: dict[str, Any], ledger: Ledger) -> None:
    assert str(record["organization_id"]) == str(ledger.alpha)
    assert {k: record[k] for k in ALPHA_GENERAL} == ALPHA_GENERAL
    assert Decimal(str(record["minutes_opted_in"])) == Decimal("1.0000")
    assert Decimal(str(record["minutes_opted_out"])) == Decimal("1.5000")


class TestFormats:
    def test_csv_to_stdout(self, cli: Cli, ledger: Ledger) -> None:
        result = cli("report", "--period", PERIOD, "--format", "csv")
        assert result.exit_code == 0, result.output
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert tuple(rows[0]) == REPORT_COLUMNS
        assert [int(r["net_amount_micros"]) for r in rows] == NET_BY_LINE
        assert {r["period"] for r in rows} == {PERIOD}
        typed = {k: int(v) if k.endswith(("micros", "requests")) else v for k, v in rows[0].items()}
        check_alpha_general(typed, ledger)
        assert rows[0]["minutes_opted_in"] == "1.0000"

    def test_json_to_stdout(self, cli: Cli, ledger: Ledger) -> None:
        result = cli("report", "--period", PERIOD, "--format", "json")
        assert result.exit_code == 0, result.output
        body = json.loads(result.stdout)
        assert body["period"] == PERIOD
        assert [line["net_amount_micros"] for line in body["lines"]] == NET_BY_LINE
        check_alpha_general(body["lines"][0], ledger)
        assert body["lines"][0]["minutes_opted_in"] == 1.0
        assert body["totals"]["net_amount_micros"] == sum(NET_BY_LINE)
        assert body["totals"]["net_amount_usd"] == "0.019500"

    def test_parquet_to_file(self, cli: Cli, ledger: Ledger, tmp_path: Path) -> None:
        target = tmp_path / "report.parquet"
        result = cli("report", "--period", PERIOD, "--format", "parquet", "--output", target)
        assert result.exit_code == 0, result.output
        table = pq.read_table(target)
        assert tuple(table.column_names) == REPORT_COLUMNS
        assert table.schema.metadata[b"period"] == PERIOD.encode()
        records = table.to_pylist()
        assert [r["net_amount_micros"] for r in records] == NET_BY_LINE
        check_alpha_general(records[0], ledger)
        assert records[0]["minutes_opted_out"] == Decimal("1.5000")

    @pytest.mark.parametrize("fmt", ["csv", "json"])
    def test_csv_and_json_to_file(self, cli: Cli, ledger: Ledger, tmp_path: Path, fmt: str) -> None:
        target = tmp_path / f"report.{fmt}"
        result = cli("report", "--period", PERIOD, "--format", fmt, "--output", target)
        assert result.exit_code == 0, result.output
        assert result.stdout == ""
        text = target.read_text()
        if fmt == "csv":
            assert len(list(csv.DictReader(io.StringIO(text)))) == 4
        else:
            assert len(json.loads(text)["lines"]) == 4

    def test_table_is_the_default(self, cli: Cli, ledger: Ledger) -> None:
        result = cli("report", "--period", PERIOD)
        assert result.exit_code == 0, result.output
        for text in ("Alpha", "Beta", "Gamma", "nova", "TOTAL", "0.019500", "0.008600"):
            assert text in result.stdout

    def test_org_filter(self, cli: Cli, ledger: Ledger) -> None:
        result = cli("report", "--period", PERIOD, "--org", ledger.gamma, "--format", "json")
        assert result.exit_code == 0, result.output
        body = json.loads(result.stdout)
        assert body["organization_id"] == str(ledger.gamma)
        assert [line["organization_name"] for line in body["lines"]] == ["Gamma"]


class TestBadInput:
    def test_parquet_needs_output(self, cli: Cli, db: Database, ledger: Ledger) -> None:
        result = cli("report", "--period", PERIOD, "--format", "parquet")
        assert result.exit_code == 2
        assert "--output" in result.stderr
        assert audit_entries(db, "billing_report.exported") == []

    @pytest.mark.parametrize(
        "args",
        [
            ["--period", "2026-3"],
            ["--period", PERIOD, "--format", "xml"],
            ["--period", PERIOD, "--org", "x"],
            ["--period", PERIOD, "--output", "report.txt"],
        ],
    )
    def test_bad_option_is_exit_2(self, cli: Cli, ledger: Ledger, args: list[str]) -> None:
        result = cli("report", *args)
        assert result.exit_code == 2, result.output

    def test_bad_period_names_the_format(self, cli: Cli, ledger: Ledger) -> None:
        result = cli("report", "--period", "2026-3")
        assert "YYYY-MM" in result.stderr

    def test_unknown_org_is_exit_1(self, cli: Cli, ledger: Ledger) -> None:
        result = cli("report", "--period", PERIOD, "--org", "00000000-0000-0000-0000-000000000001")
        assert result.exit_code == 1
        assert "not found" in result.stderr


class TestAudit:
    def test_each_export_is_audited(self, cli: Cli, db: Database, ledger: Ledger) -> None:
        assert cli("report", "--period", PERIOD, "--format", "csv").exit_code == 0
        assert cli("report", "--period", PERIOD, "--org", ledger.beta).exit_code == 0
        entries = audit_entries(db, "billing_report.exported")
        assert [e.details for e in entries] == [
            {"period": PERIOD, "organization_id": None, "format": "csv", "lines": 4},
            {"period": PERIOD, "organization_id": str(ledger.beta), "format": "table", "lines": 1},
        ]
        # The person at the keyboard, not just "cli": the OS user and the host.
        assert entries[0].actor == f"cli:{getpass.getuser()}@{socket.gethostname()}"
        assert entries[1].organization_id == ledger.beta
