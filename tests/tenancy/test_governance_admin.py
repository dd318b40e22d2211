"""Governance of tenants over HTTP: resellers, organizations, projects, keys (staff only)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Database, Tenant, make_staff_key, make_tenant
from tests.kit.test_http import assert_error
from tests.tenancy.helpers import audit_actions, get_key, key_count, token

GOV = "/v1/governance"


def create_org(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    payload: dict[str, Any] = {"name": "Acme", "plan": "growth", **body}
    return client.post(f"{GOV}/organizations", json=payload, headers=headers)


class TestResellers:
    def test_create_and_list(
        self, client: TestClient, db: Database, admin_headers: dict[str, str]
    ) -> None:
        response = client.post(
            f"{GOV}/resellers", json={"name": "  Voice Partners "}, headers=admin_headers
        )
        assert response.status_code == 201
        created = response.json()
        assert created["name"] == "Voice Partners"
        org = create_org(client, admin_headers, reseller_id=created["id"]).json()
        assert org["reseller_id"] == created["id"]
        listed = client.get(f"{GOV}/resellers", headers=make_staff_key(db, "auditor")).json()
        assert listed == {"resellers": [created]}
        audited = [(a, d) for a, _, d in audit_actions(db) if a == "reseller.created"]
        assert audited == [("reseller.created", {"name": "Voice Partners"})]

    def test_empty_name_is_400(self, client: TestClient, admin_headers: dict[str, str]) -> None:
        response = client.post(f"{GOV}/resellers", json={"name": " "}, headers=admin_headers)
        body = assert_error(response, 400, "Bad Request")
        assert "name" in str(body["err_msg"])

    def test_billing_cannot_create(self, client: TestClient, db: Database) -> None:
        response = client.post(
            f"{GOV}/resellers", json={"name": "R"}, headers=make_staff_key(db, "billing")
        )
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")


class TestCreateOrganization:
    def test_enterprise_contract_in_usd_strings(
        self, client: TestClient, db: Database, admin_headers: dict[str, str]
    ) -> None:
        response = create_org(
            client,
            admin_headers,
            name="Big",
            plan="enterprise",
            contract_rates={"*": "0.0040", "medical": "0.0061"},
            contract_opt_out=True,
            retention_days=90,
            prepaid_credit="2500.5",
        )
        assert response.status_code == 201, response.text
        org = response.json()
        assert org["contract_rates"] == {"*": "0.004000", "medical": "0.006100"}
        assert (org["plan"], org["contract_opt_out"], org["retention_days"]) == (
            "enterprise",
            True,
            90,
        )
        assert org["prepaid_credit"] == "2500.500000"
        action, actor, details = audit_actions(db)[-1]
        assert action == "organization.created"
        assert actor.startswith("staff:admin:")
        assert details["contract_rates"] == {"*": 4000, "medical": 6100}
        assert details["prepaid_credit_micros"] == 2_500_500_000
        fetched = client.get(f"{GOV}/organizations/{org['id']}", headers=admin_headers)
        assert fetched.json() == org

    def test_defaults(self, client: TestClient, admin_headers: dict[str, str]) -> None:
        org = create_org(client, admin_headers).json()
        assert (org["contract_rates"], org["contract_opt_out"]) == (None, False)
        assert (org["retention_days"], org["prepaid_credit"], org["reseller_id"]) == (
            30,
            "0.000000",
            None,
        )

    @pytest.mark.parametrize(
        ("body", "named"),
        [
            ({"plan": "free"}, "plan"),
            ({"plan": "enterprise"}, "contract rate"),
            ({"contract_opt_out": True}, "enterprise"),
            ({"plan": "enterprise", "contract_rates": {"*": 0.004}}, "contract_rates"),
            ({"plan": "enterprise", "contract_rates": {"*": "0.0000001"}}, "contract_rates"),
            ({"plan": "enterprise", "contract_rates": {"*": "-1"}}, "contract_rates"),
            ({"prepaid_credit": "-5"}, "prepaid_credit"),
            ({"prepaid_credit": "1e3"}, "prepaid_credit"),
            ({"prepaid_credit": "1000000000000"}, "prepaid_credit"),
            ({"retention_days": 0}, "retention_days"),
            ({"name": ""}, "name"),
            ({"reseller_id": "abc"}, "reseller_id"),
            ({"surprise": 1}, "surprise"),
        ],
    )
    def test_bad_input_is_400_and_writes_nothing(
        self,
        client: TestClient,
        db: Database,
        admin_headers: dict[str, str],
        body: dict[str, object],
        named: str,
    ) -> None:
        error = assert_error(create_org(client, admin_headers, **body), 400, "Bad Request")
        assert named in str(error["err_msg"])
        assert client.get(f"{GOV}/organizations", headers=admin_headers).json() == {
            "organizations": []
        }

    def test_unknown_reseller_is_404(
        self, client: TestClient, admin_headers: dict[str, str]
    ) -> None:
        response = create_org(client, admin_headers, reseller_id=str(uuid.uuid4()))
        assert_error(response, 404, "NOT_FOUND")

    def test_malformed_json_is_400(self, client: TestClient, admin_headers: dict[str, str]) -> None:
        response = client.post(
            f"{GOV}/organizations",
            content=b"{name:",
            headers={**admin_headers, "content-type": "application/json"},
        )
        assert_error(response, 400, "Bad Request")


class TestReadOrganizations:
    @pytest.mark.parametrize("role", ["billing", "auditor"])
    def test_readers_list_and_get(
        self, client: TestClient, db: Database, tenant: Tenant, role: str
    ) -> None:
        headers = make_staff_key(db, role)
        listed = client.get(f"{GOV}/organizations", headers=headers).json()["organizations"]
        assert [(o["id"], o["name"], o["plan"]) for o in listed] == [
            (str(tenant.org_id), "Acme", "growth")
        ]
        one = client.get(f"{GOV}/organizations/{tenant.org_id}", headers=headers)
        assert one.json() == listed[0]

    def test_dataops_and_project_keys_are_403(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        for headers in (make_staff_key(db, "dataops"), tenant.headers):
            response = client.get(f"{GOV}/organizations", headers=headers)
            assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")

    def test_no_key_is_401(self, client: TestClient) -> None:
        assert_error(client.get(f"{GOV}/organizations"), 401, "INVALID_AUTH")

    def test_unknown_is_404_and_bad_uuid_400(
        self, client: TestClient, admin_headers: dict[str, str]
    ) -> None:
        response = client.get(f"{GOV}/organizations/{uuid.uuid4()}", headers=admin_headers)
        assert_error(response, 404, "NOT_FOUND")
        response = client.get(f"{GOV}/organizations/acme", headers=admin_headers)
        assert_error(response, 400, "Bad Request")


class TestUpdateOrganization:
    def test_contract_change_is_audited(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        response = client.patch(
            f"{GOV}/organizations/{tenant.org_id}",
            json={
                "plan": "enterprise",
                "contract_rates": {"*": "0.0035"},
                "contract_opt_out": True,
                "retention_days": 7,
                "prepaid_credit": "99.99",
            },
            headers=admin_headers,
        )
        assert response.status_code == 200, response.text
        org = response.json()
        assert (org["plan"], org["contract_rates"], org["contract_opt_out"]) == (
            "enterprise",
            {"*": "0.003500"},
            True,
        )
        assert (org["retention_days"], org["prepaid_credit"]) == (7, "99.990000")
        action, _actor, details = audit_actions(db)[-1]
        assert action == "organization.contract_changed"
        assert details["before"]["plan"] == "growth"
        assert details["before"]["prepaid_credit_micros"] == 0
        assert details["after"]["prepaid_credit_micros"] == 99_990_000
        assert details["after"]["contract_rates"] == {"*": 3500}
        # The Deepgram view follows the new contract.
        project = client.get(f"/v1/projects/{tenant.project_id}", headers=tenant.headers)
        assert project.json()["mip_opt_out"] is True

    def test_credit_only(
        self, client: TestClient, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        response = client.patch(
            f"{GOV}/organizations/{tenant.org_id}",
            json={"prepaid_credit": "12"},
            headers=admin_headers,
        )
        assert (response.json()["plan"], response.json()["prepaid_credit"]) == (
            "growth",
            "12.000000",
        )
        balance = client.get(f"/v1/projects/{tenant.project_id}/balances", headers=tenant.headers)
        assert balance.json()["balances"][0]["amount"] == 12.0

    @pytest.mark.parametrize(
        ("body", "named"),
        [
            ({}, "nothing to change"),
            ({"plan": "free"}, "plan"),
            ({"contract_opt_out": True}, "enterprise"),
            ({"retention_days": -1}, "retention_days"),
            ({"prepaid_credit": "-1"}, "prepaid_credit"),
            ({"name": "rename"}, "name"),
        ],
    )
    def test_bad_input_is_400_and_changes_nothing(
        self,
        client: TestClient,
        db: Database,
        tenant: Tenant,
        admin_headers: dict[str, str],
        body: dict[str, object],
        named: str,
    ) -> None:
        url = f"{GOV}/organizations/{tenant.org_id}"
        before = client.get(url, headers=admin_headers).json()
        audit_before = len(audit_actions(db))
        error = assert_error(
            client.patch(url, json=body, headers=admin_headers), 400, "Bad Request"
        )
        assert named in str(error["err_msg"])
        assert client.get(url, headers=admin_headers).json() == before
        assert len(audit_actions(db)) == audit_before

    def test_billing_cannot_update(self, client: TestClient, db: Database, tenant: Tenant) -> None:
        response = client.patch(
            f"{GOV}/organizations/{tenant.org_id}",
            json={"prepaid_credit": "1"},
            headers=make_staff_key(db, "billing"),
        )
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")

    def test_unknown_is_404(self, client: TestClient, admin_headers: dict[str, str]) -> None:
        response = client.patch(
            f"{GOV}/organizations/{uuid.uuid4()}",
            json={"retention_days": 5},
            headers=admin_headers,
        )
        assert_error(response, 404, "NOT_FOUND")


class TestProjects:
    def test_create_and_list_by_organization(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        other = make_tenant(db, name="Other")
        response = client.post(
            f"{GOV}/organizations/{tenant.org_id}/projects",
            json={"name": "Mobile"},
            headers=admin_headers,
        )
        assert response.status_code == 201
        created = response.json()
        assert (created["organization_id"], created["name"]) == (str(tenant.org_id), "Mobile")
        reader = make_staff_key(db, "auditor")
        mine = client.get(
            f"{GOV}/projects", params={"organization_id": str(tenant.org_id)}, headers=reader
        ).json()["projects"]
        assert [p["id"] for p in mine] == [str(tenant.project_id), created["id"]]
        everything = client.get(f"{GOV}/projects", headers=reader).json()["projects"]
        assert {p["id"] for p in everything} == {
            str(tenant.project_id),
            created["id"],
            str(other.project_id),
        }

    def test_unknown_organization_is_404(
        self, client: TestClient, admin_headers: dict[str, str]
    ) -> None:
        response = client.post(
            f"{GOV}/organizations/{uuid.uuid4()}/projects",
            json={"name": "X"},
            headers=admin_headers,
        )
        assert_error(response, 404, "NOT_FOUND")

    def test_bad_input_is_400(
        self, client: TestClient, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        url = f"{GOV}/organizations/{tenant.org_id}/projects"
        assert_error(client.post(url, json={}, headers=admin_headers), 400, "Bad Request")
        assert_error(
            client.post(url, json={"name": "x" * 201}, headers=admin_headers), 400, "Bad Request"
        )
        response = client.get(
            f"{GOV}/projects", params={"organization_id": "acme"}, headers=admin_headers
        )
        assert_error(response, 400, "Bad Request")

    def test_billing_cannot_create(self, client: TestClient, db: Database, tenant: Tenant) -> None:
        response = client.post(
            f"{GOV}/organizations/{tenant.org_id}/projects",
            json={"name": "X"},
            headers=make_staff_key(db, "billing"),
        )
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")


class TestProjectKeys:
    def test_create_like_the_cli(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        response = client.post(
            f"{GOV}/projects/{tenant.project_id}/keys",
            json={"scopes": ["usage:read"], "comment": "billing export", "expires_in_days": 30},
            headers=admin_headers,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["project_id"], body["scopes"], body["comment"]) == (
            str(tenant.project_id),
            ["usage:read"],
            "billing export",
        )
        stored = get_key(db, body["id"])
        assert stored.expires_at is not None
        assert (stored.expires_at - stored.created_at).days in (29, 30)
        usage_key = token(body["key"])
        assert client.get(
            f"/v1/projects/{tenant.project_id}/balances", headers=usage_key
        ).is_success
        assert_error(
            client.get(f"/v1/projects/{tenant.project_id}/keys", headers=usage_key),
            403,
            "INSUFFICIENT_PERMISSIONS",
        )

    def test_default_scope_is_member(
        self, client: TestClient, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        body = client.post(
            f"{GOV}/projects/{tenant.project_id}/keys", json={}, headers=admin_headers
        ).json()
        assert (body["scopes"], body["expires_at"]) == (["member"], None)

    @pytest.mark.parametrize(
        ("body", "named"),
        [
            ({"scopes": ["root"]}, "root"),
            ({"scopes": []}, "scopes"),
            ({"expires_in_days": 0}, "expires_in_days"),
        ],
    )
    def test_bad_input_is_400(
        self,
        client: TestClient,
        db: Database,
        tenant: Tenant,
        admin_headers: dict[str, str],
        body: dict[str, object],
        named: str,
    ) -> None:
        response = client.post(
            f"{GOV}/projects/{tenant.project_id}/keys", json=body, headers=admin_headers
        )
        assert named in str(assert_error(response, 400, "Bad Request")["err_msg"])
        assert key_count(db) == 2  # the tenant's key and the admin's

    def test_unknown_project_is_404(
        self, client: TestClient, admin_headers: dict[str, str]
    ) -> None:
        response = client.post(
            f"{GOV}/projects/{uuid.uuid4()}/keys", json={}, headers=admin_headers
        )
        assert_error(response, 404, "NOT_FOUND")

    def test_project_key_cannot_use_governance(self, client: TestClient, db: Database) -> None:
        owner = make_tenant(db, scopes=["admin"])
        response = client.post(
            f"{GOV}/projects/{owner.project_id}/keys", json={}, headers=owner.headers
        )
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")


class TestStaffKeysAndRevocation:
    def test_staff_key_created_works_then_revoked(
        self, client: TestClient, db: Database, admin_headers: dict[str, str]
    ) -> None:
        response = client.post(
            f"{GOV}/staff-keys",
            json={"role": "billing", "comment": "finance team"},
            headers=admin_headers,
        )
        assert response.status_code == 201
        body = response.json()
        assert (body["role"], body["comment"]) == ("billing", "finance team")
        billing = token(body["key"])
        assert client.get(f"{GOV}/organizations", headers=billing).is_success
        revoked = client.post(f"{GOV}/keys/{body['id']}/revoke", headers=admin_headers)
        assert revoked.status_code == 200
        assert revoked.json()["id"] == body["id"]
        assert_error(client.get(f"{GOV}/organizations", headers=billing), 401, "INVALID_AUTH")
        again = client.post(f"{GOV}/keys/{body['id']}/revoke", headers=admin_headers)
        assert again.json() == revoked.json()  # idempotent: first revocation time kept
        actions = [a for a, _, _ in audit_actions(db)]
        assert actions.count("api_key.revoked") == 1

    def test_revoke_project_key(
        self, client: TestClient, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        response = client.post(f"{GOV}/keys/{tenant.key_id}/revoke", headers=admin_headers)
        assert response.status_code == 200
        assert_error(
            client.get(f"/v1/projects/{tenant.project_id}", headers=tenant.headers),
            401,
            "INVALID_AUTH",
        )

    @pytest.mark.parametrize("role", ["billing", "auditor", "dataops"])
    def test_only_admin_creates_staff_keys_or_revokes(
        self, client: TestClient, db: Database, tenant: Tenant, role: str
    ) -> None:
        headers = make_staff_key(db, role)
        response = client.post(f"{GOV}/staff-keys", json={"role": "admin"}, headers=headers)
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")
        response = client.post(f"{GOV}/keys/{tenant.key_id}/revoke", headers=headers)
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")
        assert get_key(db, tenant.key_id).revoked_at is None

    def test_bad_input(self, client: TestClient, admin_headers: dict[str, str]) -> None:
        response = client.post(f"{GOV}/staff-keys", json={"role": "root"}, headers=admin_headers)
        assert "role" in str(assert_error(response, 400, "Bad Request")["err_msg"])
        response = client.post(f"{GOV}/keys/{uuid.uuid4()}/revoke", headers=admin_headers)
        assert_error(response, 404, "NOT_FOUND")
        response = client.post(f"{GOV}/keys/abc/revoke", headers=admin_headers)
        assert_error(response, 400, "Bad Request")


class TestOpenAPI:
    def test_every_tenancy_route_is_documented(self, client: TestClient) -> None:
        spec = client.get("/openapi.json").json()
        paths = spec["paths"]
        expected = {
            "/v1/projects": {"get"},
            "/v1/projects/{project_id}": {"get"},
            "/v1/projects/{project_id}/keys": {"get", "post"},
            "/v1/projects/{project_id}/keys/{key_id}": {"get", "delete"},
            "/v1/projects/{project_id}/balances": {"get"},
            "/v1/projects/{project_id}/balances/{balance_id}": {"get"},
            f"{GOV}/organizations": {"get", "post"},
            f"{GOV}/organizations/{{organization_id}}": {"get", "patch"},
            f"{GOV}/organizations/{{organization_id}}/projects": {"post"},
            f"{GOV}/projects": {"get"},
            f"{GOV}/projects/{{project_id}}/keys": {"post"},
            f"{GOV}/staff-keys": {"post"},
            f"{GOV}/keys/{{key_id}}/revoke": {"post"},
            f"{GOV}/resellers": {"get", "post"},
        }
        for path, methods in expected.items():
            assert methods <= set(paths[path]), path
            for method in methods:
                operation = paths[path][method]
                assert operation["summary"]
                success = next(c for c in operation["responses"] if c.startswith("2"))
                assert "$ref" in str(operation["responses"][success]["content"])
