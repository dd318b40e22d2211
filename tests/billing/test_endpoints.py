"""Billing HTTP: reports in every format, reconciliation, period close; access and bad input."""

from __future__ import annotations

import csv
import io
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from app.billing.exports import REPORT_COLUMNS
from tests.billing.conftest import PERIOD, Cli, Ledger, audit_entries
from tests.billing.invoices import HEADER, clean_invoice, invoice_with_one_of_each
from tests.conftest import Database, Tenant, make_staff_key
from tests.kit.test_http import assert_error

BASE = "/v1/governance/billing"
REPORT = f"{BASE}/reports/{PERIOD}"
RECONCILE = f"{BASE}/reconciliations"
CSV_TYPE = {"Content-Type": "text/csv"}
NET_BY_LINE = [8600, 4300, 3600, 3000]


@pytest.fixture
def billing(db: Database) -> dict[str, str]:
    return make_staff_key(db, "billing")


class TestReport:
    def test_json_is_the_default(
        self, client: TestClient, ledger: Ledger, billing: dict[str, str]
    ) -> None:
        response = client.get(REPORT, headers=billing)
        assert response.status_code == 200, response.text
        body = response.json()
        assert [line["net_amount_micros"] for line in body["lines"]] == NET_BY_LINE
        assert body["lines"][0]["net_amount_usd"] == "0.008600"
        assert body["lines"][0]["minutes_opted_out"] == 1.5
        assert body["totals"]["net_amount_micros"] == 19500

    def test_csv(self, client: TestClient, ledger: Ledger, billing: dict[str, str]) -> None:
        response = client.get(REPORT, params={"format": "csv"}, headers=billing)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert f"billing-report-{PERIOD}.csv" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert tuple(rows[0]) == REPORT_COLUMNS
        assert [int(r["net_amount_micros"]) for r in rows] == NET_BY_LINE
        assert rows[2]["organization_name"] == "Beta"
        assert rows[2]["minutes_opted_out"] == "0.7500"

    def test_parquet(self, client: TestClient, ledger: Ledger, billing: dict[str, str]) -> None:
        response = client.get(REPORT, params={"format": "parquet"}, headers=billing)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/vnd.apache.parquet"
        table = pq.read_table(pa.BufferReader(response.content))
        records = table.to_pylist()
        assert [r["net_amount_micros"] for r in records] == NET_BY_LINE
        assert records[3]["plan"] == "enterprise"
        assert records[3]["list_amount_usd"] == "0.005000"

    def test_one_organization(
        self, client: TestClient, ledger: Ledger, billing: dict[str, str]
    ) -> None:
        response = client.get(
            REPORT, params={"organization_id": str(ledger.alpha)}, headers=billing
        )
        lines = response.json()["lines"]
        assert [(line["organization_name"], line["model_name"]) for line in lines] == [
            ("Alpha", "general"),
            ("Alpha", "nova"),
        ]

    def test_exports_are_audited(
        self, client: TestClient, db: Database, ledger: Ledger, billing: dict[str, str]
    ) -> None:
        client.get(REPORT, headers=billing)
        client.get(
            REPORT,
            params={"format": "parquet", "organization_id": str(ledger.beta)},
            headers=billing,
        )
        entries = audit_entries(db, "billing_report.exported")
        assert [(e.details["format"], e.details["lines"]) for e in entries] == [
            ("json", 4),
            ("parquet", 1),
        ]
        assert entries[1].details["organization_id"] == str(ledger.beta)
        assert entries[0].actor.startswith("staff:billing:")

    @pytest.mark.parametrize(
        ("url", "params", "what"),
        [
            (f"{BASE}/reports/2026-3", {}, "YYYY-MM"),
            (f"{BASE}/reports/March", {}, "YYYY-MM"),
            (REPORT, {"format": "xml"}, "format"),
            (REPORT, {"organization_id": "nope"}, "organization_id"),
        ],
    )
    def test_bad_input_is_400(
        self,
        client: TestClient,
        db: Database,
        billing: dict[str, str],
        url: str,
        params: dict[str, str],
        what: str,
    ) -> None:
        body = assert_error(client.get(url, params=params, headers=billing), 400, "Bad Request")
        assert what in str(body["err_msg"])
        assert audit_entries(db, "billing_report.exported") == []

    def test_unknown_organization_is_404(
        self, client: TestClient, ledger: Ledger, billing: dict[str, str]
    ) -> None:
        response = client.get(
            REPORT, params={"organization_id": str(uuid.uuid4())}, headers=billing
        )
        assert_error(response, 404, "NOT_FOUND")


class TestReconcile:
    def test_discrepancies(
        self, client: TestClient, db: Database, ledger: Ledger, billing: dict[str, str]
    ) -> None:
        response = client.post(
            RECONCILE,
            params={"period": PERIOD},
            content=invoice_with_one_of_each(ledger),
            headers={**billing, **CSV_TYPE},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["period"] == PERIOD
        assert body["ok"] is False
        assert set(body["counts_by_kind"].values()) == {1}
        mismatch = next(d for d in body["discrepancies"] if d["kind"] == "amount_mismatch")
        assert (mismatch["invoiced_net_micros"], mismatch["ledger_net_micros"]) == (6500, 6450)
        assert mismatch["difference_micros"] == 50
        assert audit_entries(db, "billing.reconciled")[0].details["discrepancies"] == 6

    def test_clean_invoice_is_ok(
        self, client: TestClient, ledger: Ledger, billing: dict[str, str]
    ) -> None:
        response = client.post(
            RECONCILE,
            params={"period": PERIOD},
            content=clean_invoice(ledger),
            headers={**billing, "Content-Type": "text/csv; charset=utf-8"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["ok"] is True
        assert response.json()["discrepancies"] == []

    @pytest.mark.parametrize(
        ("body", "what"),
        [
            (HEADER + "\nINV-1,not-a-uuid,2026-03,general,opted_in,1,0.5,0.5\n", "line 2"),
            ("invoice_id,period\nINV-1,2026-03\n", "missing column"),
            ("   \n", "Empty"),
        ],
    )
    def test_malformed_csv_is_400(
        self, client: TestClient, db: Database, billing: dict[str, str], body: str, what: str
    ) -> None:
        response = client.post(
            RECONCILE, params={"period": PERIOD}, content=body, headers={**billing, **CSV_TYPE}
        )
        assert what in str(assert_error(response, 400, "Bad Request")["err_msg"])
        assert audit_entries(db, "billing.reconciled") == []

    @pytest.mark.parametrize(
        "params", [{}, {"period": "2026-3"}, {"period": PERIOD, "tolerance_micros": "-1"}]
    )
    def test_bad_query_is_400(
        self, client: TestClient, ledger: Ledger, billing: dict[str, str], params: dict[str, str]
    ) -> None:
        response = client.post(
            RECONCILE, params=params, content=clean_invoice(ledger), headers={**billing, **CSV_TYPE}
        )
        assert_error(response, 400, "Bad Request")

    def test_json_body_is_415(self, client: TestClient, billing: dict[str, str]) -> None:
        response = client.post(RECONCILE, params={"period": PERIOD}, json={}, headers=billing)
        assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


class TestPeriods:
    def test_close_list_and_close_again(
        self, client: TestClient, db: Database, billing: dict[str, str]
    ) -> None:
        response = client.post(f"{BASE}/periods/{PERIOD}/close", headers=billing)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "closed"
        assert response.json()["closed_by"].startswith("staff:billing:")
        client.post(f"{BASE}/periods/2026-01/close", headers=billing)
        listed = client.get(f"{BASE}/periods", headers=billing).json()["periods"]
        assert [p["period"] for p in listed] == ["2026-01", PERIOD]
        again = client.post(f"{BASE}/periods/{PERIOD}/close", headers=billing)
        assert PERIOD in str(assert_error(again, 409, "CONFLICT")["err_msg"])
        assert [e.target_id for e in audit_entries(db, "billing_period.closed")] == [
            PERIOD,
            "2026-01",
        ]

    def test_bad_period_is_400(self, client: TestClient, billing: dict[str, str]) -> None:
        response = client.post(f"{BASE}/periods/2026-00/close", headers=billing)
        assert_error(response, 400, "Bad Request")

    def test_late_event_after_close_via_http(
        self,
        client: TestClient,
        ledger: Ledger,
        billing: dict[str, str],
        admin_headers: dict[str, str],
    ) -> None:
        assert client.post(f"{BASE}/periods/{PERIOD}/close", headers=billing).status_code == 200
        event = {
            "request_id": "late",
            "project_id": str(ledger.alpha_project),
            "created": "2026-03-31T23:00:00Z",
            "model": "general",
            "duration": 60.0,
        }
        ingested = client.post(
            "/v1/governance/ledger/events", json={"events": [event]}, headers=admin_headers
        )
        assert ingested.json()["adjustments"] == 1
        april = client.get(f"{BASE}/reports/2026-04", headers=billing).json()
        assert april["totals"]["adjustments_micros"] == 2150
        assert april["totals"]["adjustment_requests"] == 1


class TestCliClose:
    def test_close_twice_is_exit_1(self, cli: Cli, db: Database) -> None:
        first = cli("close", "--period", PERIOD, "--json")
        assert first.exit_code == 0, first.output
        assert '"closed"' in first.stdout
        second = cli("close", "--period", PERIOD)
        assert second.exit_code == 1
        assert "already closed" in second.stderr
        listed = cli("periods", "--json")
        assert PERIOD in listed.stdout


ENDPOINTS = [
    ("get", REPORT),
    ("post", f"{RECONCILE}?period={PERIOD}"),
    ("post", f"{BASE}/periods/{PERIOD}/close"),
    ("get", f"{BASE}/periods"),
]


class TestAccess:
    @pytest.mark.parametrize(("method", "url"), ENDPOINTS)
    def test_project_key_is_403(
        self, client: TestClient, tenant: Tenant, method: str, url: str
    ) -> None:
        response = client.request(method, url, headers={**tenant.headers, **CSV_TYPE}, content="")
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")

    @pytest.mark.parametrize("role", ["dataops", "auditor"])
    @pytest.mark.parametrize(("method", "url"), ENDPOINTS)
    def test_other_staff_roles_are_403(
        self, client: TestClient, db: Database, role: str, method: str, url: str
    ) -> None:
        headers = {**make_staff_key(db, role), **CSV_TYPE}
        response = client.request(method, url, headers=headers, content=HEADER)
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")

    @pytest.mark.parametrize(("method", "url"), ENDPOINTS)
    def test_no_key_is_401(self, client: TestClient, db: Database, method: str, url: str) -> None:
        assert_error(client.request(method, url), 401, "INVALID_AUTH")

    def test_admin_may_use_billing(self, client: TestClient, admin_headers: dict[str, str]) -> None:
        assert client.get(f"{BASE}/periods", headers=admin_headers).status_code == 200

    def test_endpoints_in_openapi(self, client: TestClient, db: Database) -> None:
        paths = client.get("/openapi.json").json()["paths"]
        assert "text/csv" in paths[RECONCILE]["post"]["requestBody"]["content"]
        for path in (f"{BASE}/reports/{{period}}", f"{BASE}/periods/{{period}}/close"):
            assert path in paths
