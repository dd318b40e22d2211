"""``mip billing reconcile``: each discrepancy kind, clean runs, malformed files, audit."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from app.billing.exports import DISCREPANCY_COLUMNS
from app.billing.reconciliation import MalformedInvoiceFile, parse_invoice_csv
from app.billing.schemas import DiscrepancyKind
from app.billing.service import reconcile
from tests.billing.conftest import PERIOD, Cli, Ledger, audit_entries
from tests.billing.invoices import HEADER, clean_invoice, invoice_with_one_of_each, line
from tests.conftest import Database


def run(cli: Cli, tmp_path: Path, text: str | bytes, *extra: object) -> tuple[int, str, str]:
    invoice = tmp_path / "invoices.csv"
    invoice.write_bytes(text.encode() if isinstance(text, str) else text)
    result = cli("reconcile", "--period", PERIOD, "--invoices", invoice, *extra)
    return result.exit_code, result.stdout, result.stderr


def read_rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


class TestDiscrepancyKinds:
    def test_one_of_each_kind(self, cli: Cli, ledger: Ledger, tmp_path: Path) -> None:
        out = tmp_path / "found.csv"
        code, stdout, _ = run(cli, tmp_path, invoice_with_one_of_each(ledger), "--output", out)
        assert code == 1
        rows = read_rows(out)
        assert tuple(rows[0]) == DISCREPANCY_COLUMNS
        by_kind = {r["kind"]: r for r in rows}
        assert sorted(by_kind) == sorted(k.value for k in DiscrepancyKind)
        assert len(rows) == len(DiscrepancyKind)

        mismatch = by_kind["amount_mismatch"]
        assert (mismatch["organization_id"], mismatch["model"]) == (str(ledger.alpha), "general")
        assert mismatch["mip_participation"] == "opted_out"
        assert (mismatch["invoiced_net_micros"], mismatch["ledger_net_micros"]) == ("6500", "6450")
        assert (mismatch["difference_micros"], mismatch["difference_usd"]) == ("50", "0.000050")
        assert mismatch["lines"] == "3"

        assert by_kind["discount_missing_on_opted_in"]["lines"] == "4"
        assert by_kind["discount_missing_on_opted_in"]["ledger_discount_micros"] == "4300"
        assert by_kind["period_mismatch"]["invoice_ids"] == "INV-OLD"
        assert by_kind["period_mismatch"]["invoice_period"] == "2026-02"
        assert by_kind["discount_on_opted_out"]["invoiced_discount_micros"] == "500"
        assert by_kind["invoice_without_usage"]["model"] == "nova"
        assert by_kind["invoice_without_usage"]["ledger_net_micros"] == ""
        usage = by_kind["usage_without_invoice"]
        assert (usage["organization_id"], usage["mip_participation"]) == (
            str(ledger.beta),
            "opted_out",
        )
        assert (usage["ledger_net_micros"], usage["difference_micros"]) == ("2700", "-2700")
        assert usage["invoice_ids"] == ""
        for kind in DiscrepancyKind:
            assert kind.value in stdout

    def test_tolerance_absorbs_small_differences(
        self, cli: Cli, ledger: Ledger, tmp_path: Path
    ) -> None:
        out = tmp_path / "found.csv"
        text = invoice_with_one_of_each(ledger)
        run(cli, tmp_path, text, "--output", out, "--tolerance-micros", "50")
        assert "amount_mismatch" not in {r["kind"] for r in read_rows(out)}
        run(cli, tmp_path, text, "--output", out, "--tolerance-micros", "49")
        assert "amount_mismatch" in {r["kind"] for r in read_rows(out)}

    def test_split_invoice_lines_are_summed(self, db: Database, ledger: Ledger) -> None:
        # Alpha general opted_out (6450 net) billed on two invoices: 6000 + 450.
        text = clean_invoice(ledger).replace(
            line("INV-A", ledger.alpha, "general", "opted_out", "0.00645", "0", "0.00645"),
            line("INV-A", ledger.alpha, "general", "opted_out", "0.006", "0", "0.006")
            + "\n"
            + line("INV-A2", ledger.alpha, "general", "opted_out", "0.00045", "0", "0.00045"),
        )
        with db.session() as session:
            result = reconcile(session, period=PERIOD, invoice_csv=text.encode(), actor="test")
        assert result.ok, result.discrepancies
        assert result.invoice_lines == 8


class TestCleanInvoice:
    def test_exit_0_and_empty_report_in_current_directory(
        self, cli: Cli, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        code, stdout, _ = run(cli, tmp_path, clean_invoice(ledger))
        assert code == 0, stdout
        written = tmp_path / f"reconciliation-{PERIOD}.csv"
        assert written.read_text().strip() == ",".join(DISCREPANCY_COLUMNS)
        assert "No discrepancy" in stdout

    def test_failed_requests_need_no_invoice_line(self, db: Database, ledger: Ledger) -> None:
        # The fixture has failed Alpha and Beta requests; the clean invoice ignores them.
        with db.session() as session:
            result = reconcile(
                session, period=PERIOD, invoice_csv=clean_invoice(ledger).encode(), actor="t"
            )
        assert result.ok
        assert set(result.counts_by_kind.values()) == {0}


GOOD = "INV-1,{org},2026-03,general,opted_in,0.0043,0.00215,0.00215"
MALFORMED = [
    (HEADER.replace(",net_amount_usd", "") + "\nINV-1", "line 1", "net_amount_usd"),
    (HEADER + "\n" + GOOD + "\n" + GOOD.replace("0.00215", "1,5", 1), "line 3", "fields"),
    (HEADER + "\n" + GOOD.replace("0.0043", "abc"), "line 2", "list_amount_usd"),
    (HEADER + "\n" + GOOD.replace("0.0043", "0.0000001"), "line 2", "6 decimals"),
    (HEADER + "\n" + GOOD.replace("0.0043", "-1.00"), "line 2", "list_amount_usd"),
    (HEADER + "\n" + GOOD.replace("0.0043", "NaN"), "line 2", "list_amount_usd"),
    (HEADER + "\n" + GOOD.replace("{org}", "not-a-uuid"), "line 2", "organization_id"),
    (HEADER + "\n" + GOOD.replace("opted_in", "maybe"), "line 2", "mip_participation"),
    (HEADER + "\n\n" + GOOD.replace("INV-1", ""), "line 3", "invoice_id"),
    ("", "line 1", "missing column"),
]


class TestMalformed:
    @pytest.mark.parametrize(("text", "where", "what"), MALFORMED)
    def test_exit_2_names_the_line_and_writes_nothing(
        self,
        cli: Cli,
        db: Database,
        ledger: Ledger,
        tmp_path: Path,
        text: str,
        where: str,
        what: str,
    ) -> None:
        out = tmp_path / "found.csv"
        code, _, stderr = run(cli, tmp_path, text.format(org=ledger.alpha), "--output", out)
        assert code == 2
        assert where in stderr
        assert what in stderr
        assert not out.exists()
        assert audit_entries(db, "billing.reconciled") == []

    def test_not_utf8(self, cli: Cli, ledger: Ledger, tmp_path: Path) -> None:
        code, _, stderr = run(cli, tmp_path, b"\xff\xfe\x00bad")
        assert code == 2
        assert "UTF-8" in stderr

    def test_missing_file_is_exit_2(self, cli: Cli, tmp_path: Path) -> None:
        result = cli("reconcile", "--period", PERIOD, "--invoices", tmp_path / "nope.csv")
        assert result.exit_code == 2

    @pytest.mark.parametrize("period", ["2026-3", "03-2026"])
    def test_bad_period_is_exit_2(
        self, cli: Cli, ledger: Ledger, tmp_path: Path, period: str
    ) -> None:
        invoice = tmp_path / "i.csv"
        invoice.write_text(clean_invoice(ledger))
        result = cli("reconcile", "--period", period, "--invoices", invoice)
        assert result.exit_code == 2
        assert "YYYY-MM" in result.stderr

    def test_byte_order_mark_and_extra_columns_are_accepted(self) -> None:
        org = "00000000-0000-0000-0000-000000000001"
        text = "\ufeffnote," + HEADER + "\nhello," + GOOD.format(org=org) + "\n"
        [parsed] = parse_invoice_csv(text.encode())
        assert (parsed.line, parsed.list_micros, parsed.net_micros) == (2, 4300, 2150)

    def test_service_raises_bad_request(self) -> None:
        with pytest.raises(MalformedInvoiceFile, match="line 2"):
            parse_invoice_csv((HEADER + "\nx,y,z,a,b,c,d,e").encode())


class TestAudit:
    def test_each_run_is_audited_with_counts(
        self, cli: Cli, db: Database, ledger: Ledger, tmp_path: Path
    ) -> None:
        run(cli, tmp_path, invoice_with_one_of_each(ledger), "--output", tmp_path / "a.csv")
        run(cli, tmp_path, clean_invoice(ledger), "--output", tmp_path / "b.csv")
        first, second = audit_entries(db, "billing.reconciled")
        assert first.target_id == PERIOD
        assert first.details["ok"] is False
        assert first.details["counts_by_kind"] == {k.value: 1 for k in DiscrepancyKind}
        assert first.details["invoice_lines"] == 8
        assert len(str(first.details["invoice_sha256"])) == 64
        assert second.details["ok"] is True
        assert second.details["discrepancies"] == 0
