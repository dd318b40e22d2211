"""Price-book HTTP: billing reads, admins add rows (audited), bad input is a 400, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.tables import AuditEntry, PriceBookEntry
from tests.conftest import Database, Tenant, make_staff_key
from tests.kit.test_http import assert_error

URL = "/v1/governance/prices"


def price(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "plan": "growth",
        "tier": "nova",
        "rate_usd_per_minute": "0.0043",
        "effective_from": "2027-01-01T00:00:00+00:00",
        "version": "2027-01",
    }
    body.update(overrides)
    return body


SEEDED = 4  # the migrations' price book: each plan's "*" and "custom" rates


def price_rows(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(PriceBookEntry)) or 0)


def audit_actions(db: Database) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


class TestListPrices:
    @pytest.mark.parametrize("role", ["billing", "admin"])
    def test_lists_seeded_book(self, client: TestClient, db: Database, role: str) -> None:
        response = client.get(URL, headers=make_staff_key(db, role))
        assert response.status_code == 200, response.text
        rows = response.json()["prices"]
        assert sorted((r["plan"], r["tier"], r["rate_micros_per_minute"]) for r in rows) == [
            ("growth", "*", 3600),
            ("growth", "custom", 5400),
            ("pay_as_you_go", "*", 4300),
            ("pay_as_you_go", "custom", 6500),
        ]
        assert rows[0]["rate_usd_per_minute"] == "0.003600"
        assert rows[0]["version"] == "2026-01"
        assert rows[0]["effective_from"].startswith("2020-01-01T00:00:00")

    @pytest.mark.parametrize("role", ["dataops", "auditor"])
    def test_other_roles_are_403(self, client: TestClient, db: Database, role: str) -> None:
        assert_error(
            client.get(URL, headers=make_staff_key(db, role)), 403, "INSUFFICIENT_PERMISSIONS"
        )

    def test_project_key_is_403(self, client: TestClient, tenant: Tenant) -> None:
        assert_error(client.get(URL, headers=tenant.headers), 403, "INSUFFICIENT_PERMISSIONS")

    def test_no_key_is_401(self, client: TestClient) -> None:
        assert_error(client.get(URL), 401, "INVALID_AUTH")


class TestAddPrice:
    def test_admin_adds_row_and_audits_it(
        self, client: TestClient, db: Database, admin_headers: dict[str, str]
    ) -> None:
        body = price(effective_from="2027-01-01T01:00:00+01:00")
        response = client.post(URL, json=body, headers=admin_headers)
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["rate_micros_per_minute"] == 4300
        assert created["rate_usd_per_minute"] == "0.004300"
        assert (created["plan"], created["tier"], created["version"]) == (
            "growth",
            "nova",
            "2027-01",
        )
        # Stored and returned in UTC.
        assert created["effective_from"].startswith("2027-01-01T00:00:00")
        listed = client.get(URL, headers=admin_headers).json()["prices"]
        assert created["id"] in {r["id"] for r in listed}
        with db.session() as session:
            entry = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "price_book.changed")
            ).one()
            assert entry.target_id == created["id"]
            assert entry.details["rate_micros_per_minute"] == 4300
            assert entry.actor.startswith("staff:admin:")

    def test_tier_defaults_to_any(self, client: TestClient, admin_headers: dict[str, str]) -> None:
        body = price()
        del body["tier"]
        response = client.post(URL, json=body, headers=admin_headers)
        assert response.status_code == 201, response.text
        assert response.json()["tier"] == "*"

    @pytest.mark.parametrize("role", ["billing", "dataops", "auditor"])
    def test_non_admin_roles_are_403(self, client: TestClient, db: Database, role: str) -> None:
        response = client.post(URL, json=price(), headers=make_staff_key(db, role))
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")
        assert price_rows(db) == SEEDED

    def test_project_key_is_403(self, client: TestClient, db: Database, tenant: Tenant) -> None:
        response = client.post(URL, json=price(), headers=tenant.headers)
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")
        assert price_rows(db) == SEEDED


class TestAddPriceDuplicate:
    def test_same_plan_tier_and_start_is_409(
        self, client: TestClient, db: Database, admin_headers: dict[str, str]
    ) -> None:
        assert client.post(URL, json=price(), headers=admin_headers).status_code == 201
        actions_before = audit_actions(db)
        # Same instant spelled in another timezone, other rate and version: still the same row.
        again = price(
            effective_from="2026-12-31T19:00:00-05:00", rate_usd_per_minute="0.005", version="x"
        )
        body = assert_error(client.post(URL, json=again, headers=admin_headers), 409, "CONFLICT")
        assert "growth" in str(body["err_msg"])
        assert "nova" in str(body["err_msg"])
        assert price_rows(db) == SEEDED + 1
        assert audit_actions(db) == actions_before

    def test_seeded_row_is_a_duplicate_too(
        self, client: TestClient, admin_headers: dict[str, str]
    ) -> None:
        seeded = price(tier="*", effective_from="2020-01-01T00:00:00Z")
        assert_error(client.post(URL, json=seeded, headers=admin_headers), 409, "CONFLICT")

    def test_other_tier_or_date_is_not_a_duplicate(
        self, client: TestClient, admin_headers: dict[str, str]
    ) -> None:
        assert client.post(URL, json=price(), headers=admin_headers).status_code == 201
        other_tier = price(tier="base")
        other_date = price(effective_from="2027-01-01T00:00:01Z")
        assert client.post(URL, json=other_tier, headers=admin_headers).status_code == 201
        assert client.post(URL, json=other_date, headers=admin_headers).status_code == 201


class TestAddPriceBadInput:
    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"rate_usd_per_minute": "abc"}, "rate_usd_per_minute"),
            ({"rate_usd_per_minute": "0.0000001"}, "rate_usd_per_minute"),
            ({"rate_usd_per_minute": "0.1234567"}, "rate_usd_per_minute"),
            ({"rate_usd_per_minute": "-0.01"}, "rate_usd_per_minute"),
            ({"rate_usd_per_minute": "1e-3"}, "rate_usd_per_minute"),
            ({"rate_usd_per_minute": "NaN"}, "rate_usd_per_minute"),
            ({"rate_usd_per_minute": "sNaN"}, "rate_usd_per_minute"),
            ({"rate_usd_per_minute": "Infinity"}, "rate_usd_per_minute"),
            ({"rate_usd_per_minute": "1" * 30}, "rate_usd_per_minute"),
            ({"rate_usd_per_minute": 0.0043}, "rate_usd_per_minute"),
            ({"rate_usd_per_minute": ""}, "rate_usd_per_minute"),
            ({"effective_from": "2027-01-01T00:00:00"}, "effective_from"),
            ({"effective_from": "2027-02-30T00:00:00Z"}, "effective_from"),
            ({"effective_from": "soon"}, "effective_from"),
            # Valid ISO 8601 whose UTC form has no Python date: was an OverflowError, a 500.
            ({"effective_from": "0001-01-01T00:00:00+14:00"}, "effective_from"),
            ({"effective_from": "9999-12-31T23:59:59-14:00"}, "effective_from"),
            ({"plan": "platinum"}, "plan"),
            ({"plan": None}, "plan"),
            ({"version": ""}, "version"),
            ({"version": "   "}, "version"),
            ({"version": "v" * 65}, "version"),
            ({"tier": ""}, "tier"),
            ({"tier": "t" * 65}, "tier"),
            ({"unexpected": 1}, "unexpected"),
        ],
    )
    def test_is_400_naming_the_field(
        self,
        client: TestClient,
        db: Database,
        admin_headers: dict[str, str],
        overrides: dict[str, Any],
        field: str,
    ) -> None:
        response = client.post(URL, json=price(**overrides), headers=admin_headers)
        body = assert_error(response, 400, "Bad Request")
        assert field in str(body["err_msg"])
        assert price_rows(db) == SEEDED
        assert "price_book.changed" not in audit_actions(db)

    def test_more_than_six_decimals_says_so(
        self, client: TestClient, admin_headers: dict[str, str]
    ) -> None:
        response = client.post(
            URL, json=price(rate_usd_per_minute="0.0043001"), headers=admin_headers
        )
        body = assert_error(response, 400, "Bad Request")
        assert "6 decimal places" in str(body["err_msg"])

    def test_missing_body_is_400(self, client: TestClient, admin_headers: dict[str, str]) -> None:
        assert_error(client.post(URL, headers=admin_headers), 400, "Bad Request")

    def test_six_decimals_and_trailing_zeros_are_accepted(
        self, client: TestClient, admin_headers: dict[str, str]
    ) -> None:
        exact = client.post(URL, json=price(rate_usd_per_minute="0.004301"), headers=admin_headers)
        assert exact.json()["rate_micros_per_minute"] == 4301
        padded = price(rate_usd_per_minute="0.00430000000", tier="base")
        response = client.post(URL, json=padded, headers=admin_headers)
        assert response.json()["rate_micros_per_minute"] == 4300

    def test_absurd_rate_is_400(self, client: TestClient, admin_headers: dict[str, str]) -> None:
        response = client.post(
            URL, json=price(rate_usd_per_minute="1000.000001"), headers=admin_headers
        )
        assert_error(response, 400, "Bad Request")
        ok = client.post(URL, json=price(rate_usd_per_minute="1000"), headers=admin_headers)
        assert ok.status_code == 201


class TestOpenAPI:
    def test_price_endpoints_are_documented(self, client: TestClient) -> None:
        paths = client.get("/openapi.json").json()["paths"]
        assert paths[URL]["get"]["summary"]
        assert paths[URL]["post"]["summary"]
        assert "201" in paths[URL]["post"]["responses"]
        assert "409" in paths[URL]["post"]["responses"]
