"""Prepaid credit balances: credit minus every ledger amount of the organization."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from app.kit.money import usd_to_micros
from app.tenancy import service
from tests.conftest import Database, Tenant, make_staff_key, make_tenant
from tests.kit.test_http import assert_error
from tests.tenancy.helpers import ingest


def set_credit(db: Database, tenant: Tenant, usd: str) -> None:
    with db.session() as session:
        service.update_contract(
            session,
            organization_id=tenant.org_id,
            actor="test",
            prepaid_credit_micros=usd_to_micros(usd),
        )


def add_project(db: Database, tenant: Tenant) -> Tenant:
    with db.session() as session:
        project = service.create_project(
            session, organization_id=tenant.org_id, name="Second", actor="test"
        )
        key, secret = service.create_project_key(session, project_id=project.id, actor="test")
    return Tenant(tenant.org_id, project.id, key.id, secret)


class TestListBalances:
    def test_credit_minus_spend_of_the_whole_organization(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        set_credit(db, tenant, "10.00")
        second = add_project(db, tenant)
        other = make_tenant(db, name="Other")
        # growth: 0.0036 USD/min. Opted in 60 s + 120 s = 0.0018 + 0.0036; opted out 60 s from
        # the second project = 0.0036. Another organization's usage does not count.
        ingest(db, tenant.project_id, 60.0, 120.0)
        ingest(db, second.project_id, 60.0, opt_out=True)
        ingest(db, other.project_id, 600.0)
        response = client.get(f"/v1/projects/{tenant.project_id}/balances", headers=tenant.headers)
        assert response.status_code == 200
        assert response.json() == {
            "balances": [
                {
                    "balance_id": str(tenant.org_id),
                    "amount": 9.991,
                    "units": "usd",
                    "purchase_order_id": "",
                }
            ]
        }
        shared = client.get(f"/v1/projects/{second.project_id}/balances", headers=second.headers)
        assert shared.json() == response.json()

    def test_spend_without_credit_is_negative(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        ingest(db, tenant.project_id, 30.0)
        response = client.get(f"/v1/projects/{tenant.project_id}/balances", headers=tenant.headers)
        assert response.json()["balances"][0]["amount"] == -0.0009

    def test_no_credit_no_spend_is_zero(self, client: TestClient, tenant: Tenant) -> None:
        response = client.get(f"/v1/projects/{tenant.project_id}/balances", headers=tenant.headers)
        assert response.json()["balances"][0]["amount"] == 0.0

    @pytest.mark.parametrize(("role", "status"), [("billing", 200), ("dataops", 403)])
    def test_staff_roles(
        self, client: TestClient, db: Database, tenant: Tenant, role: str, status: int
    ) -> None:
        set_credit(db, tenant, "1.5")
        response = client.get(
            f"/v1/projects/{tenant.project_id}/balances", headers=make_staff_key(db, role)
        )
        assert response.status_code == status
        if status == 200:
            assert response.json()["balances"][0]["amount"] == 1.5

    def test_another_tenants_project_is_404(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        other = make_tenant(db, name="Other")
        response = client.get(f"/v1/projects/{other.project_id}/balances", headers=tenant.headers)
        assert_error(response, 404, "NOT_FOUND")

    def test_key_without_usage_read_is_403(self, client: TestClient, db: Database) -> None:
        listen_only = make_tenant(db, scopes=["listen"])
        response = client.get(
            f"/v1/projects/{listen_only.project_id}/balances", headers=listen_only.headers
        )
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")

    def test_no_key_is_401(self, client: TestClient, tenant: Tenant) -> None:
        assert_error(client.get(f"/v1/projects/{tenant.project_id}/balances"), 401, "INVALID_AUTH")


class TestGetBalance:
    def test_by_id(self, client: TestClient, db: Database, tenant: Tenant) -> None:
        set_credit(db, tenant, "25.123456")
        ingest(db, tenant.project_id, 90.0)  # 0.0027 opted in
        response = client.get(
            f"/v1/projects/{tenant.project_id}/balances/{tenant.org_id}", headers=tenant.headers
        )
        assert response.status_code == 200
        assert response.json() == {
            "balance_id": str(tenant.org_id),
            "amount": 25.120756,
            "units": "usd",
            "purchase_order_id": "",
        }

    def test_another_organizations_balance_id_is_404(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        other = make_tenant(db, name="Other")
        for balance_id in (other.org_id, uuid.uuid4()):
            response = client.get(
                f"/v1/projects/{tenant.project_id}/balances/{balance_id}", headers=tenant.headers
            )
            assert_error(response, 404, "NOT_FOUND")

    def test_bad_balance_uuid_is_400(self, client: TestClient, tenant: Tenant) -> None:
        response = client.get(
            f"/v1/projects/{tenant.project_id}/balances/bal-1", headers=tenant.headers
        )
        body = assert_error(response, 400, "Bad Request")
        assert "balance_id" in str(body["err_msg"])
