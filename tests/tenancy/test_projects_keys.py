"""Deepgram-compatible projects and keys over HTTP: shapes, access rules, bad input."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Database, Tenant, make_staff_key, make_tenant
from tests.kit.test_http import assert_error
from tests.tenancy.helpers import audit_actions, expire_key, get_key, key_count, token


def keys_url(project_id: uuid.UUID | str) -> str:
    return f"/v1/projects/{project_id}/keys"


@pytest.fixture
def owner(db: Database) -> Tenant:
    """A tenant whose key holds the ``admin`` bundle (so it may manage keys)."""
    return make_tenant(db, scopes=["admin"], name="Owner")


def create_key(client: TestClient, tenant: Tenant, **body: Any) -> Any:
    payload = {"comment": "ci key", "scopes": ["member"], **body}
    return client.post(keys_url(tenant.project_id), json=payload, headers=tenant.headers)


class TestListProjects:
    def test_project_key_sees_only_its_project(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        make_tenant(db, name="Other")
        response = client.get("/v1/projects", headers=tenant.headers)
        assert response.status_code == 200
        assert response.json() == {
            "projects": [{"project_id": str(tenant.project_id), "name": "Acme project"}]
        }

    @pytest.mark.parametrize("role", ["admin", "billing", "auditor"])
    def test_staff_readers_see_every_project(
        self, client: TestClient, db: Database, tenant: Tenant, role: str
    ) -> None:
        other = make_tenant(db, name="Other")
        response = client.get("/v1/projects", headers=make_staff_key(db, role))
        assert response.status_code == 200
        listed = {p["project_id"]: p["name"] for p in response.json()["projects"]}
        assert listed == {
            str(tenant.project_id): "Acme project",
            str(other.project_id): "Other project",
        }

    def test_dataops_is_403(self, client: TestClient, db: Database) -> None:
        response = client.get("/v1/projects", headers=make_staff_key(db, "dataops"))
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")

    def test_key_without_project_read_is_403(self, client: TestClient, db: Database) -> None:
        listen_only = make_tenant(db, scopes=["listen"])
        assert_error(
            client.get("/v1/projects", headers=listen_only.headers), 403, "INSUFFICIENT_PERMISSIONS"
        )


class TestGetProject:
    def test_name_and_contract_opt_out(self, client: TestClient, db: Database) -> None:
        growth = make_tenant(db, name="Growth")
        ent = make_tenant(
            db, name="Ent", plan="enterprise", contract_rates={"*": 4000}, contract_opt_out=True
        )
        first = client.get(f"/v1/projects/{growth.project_id}", headers=growth.headers)
        assert first.json() == {
            "project_id": str(growth.project_id),
            "name": "Growth project",
            "mip_opt_out": False,
        }
        second = client.get(f"/v1/projects/{ent.project_id}", headers=ent.headers)
        assert second.json()["mip_opt_out"] is True

    def test_limit_and_page_are_accepted(self, client: TestClient, tenant: Tenant) -> None:
        response = client.get(
            f"/v1/projects/{tenant.project_id}",
            params={"limit": "10.0", "page": "0"},
            headers=tenant.headers,
        )
        assert response.status_code == 200
        assert response.json()["name"] == "Acme project"

    def test_non_numeric_limit_is_400(self, client: TestClient, tenant: Tenant) -> None:
        response = client.get(
            f"/v1/projects/{tenant.project_id}", params={"limit": "ten"}, headers=tenant.headers
        )
        body = assert_error(response, 400, "Bad Request")
        assert "limit" in str(body["err_msg"])

    def test_another_tenants_project_is_404(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        other = make_tenant(db, name="Other")
        response = client.get(f"/v1/projects/{other.project_id}", headers=tenant.headers)
        assert_error(response, 404, "NOT_FOUND")

    def test_unknown_project_is_404_for_staff(
        self, client: TestClient, db: Database, admin_headers: dict[str, str]
    ) -> None:
        response = client.get(f"/v1/projects/{uuid.uuid4()}", headers=admin_headers)
        assert_error(response, 404, "NOT_FOUND")

    def test_bad_uuid_is_400(self, client: TestClient, tenant: Tenant) -> None:
        body = assert_error(
            client.get("/v1/projects/not-a-uuid", headers=tenant.headers), 400, "Bad Request"
        )
        assert "project_id" in str(body["err_msg"])


class TestAuthentication:
    def test_no_key_is_401(self, client: TestClient, tenant: Tenant) -> None:
        assert_error(client.get(keys_url(tenant.project_id)), 401, "INVALID_AUTH")

    def test_unknown_key_is_401(self, client: TestClient, tenant: Tenant) -> None:
        response = client.get(keys_url(tenant.project_id), headers=token("0" * 40))
        assert_error(response, 401, "INVALID_AUTH")

    def test_revoked_key_is_401(self, client: TestClient, owner: Tenant) -> None:
        created = create_key(client, owner, scopes=["keys:read"]).json()
        url = f"{keys_url(owner.project_id)}/{created['api_key_id']}"
        assert client.delete(url, headers=owner.headers).status_code == 200
        response = client.get(keys_url(owner.project_id), headers=token(created["key"]))
        assert_error(response, 401, "INVALID_AUTH")

    def test_expired_key_is_401(self, client: TestClient, db: Database, tenant: Tenant) -> None:
        expire_key(db, tenant.key_id)
        response = client.get(f"/v1/projects/{tenant.project_id}", headers=tenant.headers)
        assert_error(response, 401, "INVALID_AUTH")


class TestListKeys:
    def test_lists_live_keys_without_secrets(
        self, client: TestClient, db: Database, owner: Tenant
    ) -> None:
        created = create_key(client, owner, tags=["ci"]).json()
        response = client.get(keys_url(owner.project_id), headers=owner.headers)
        assert response.status_code == 200
        items = {i["api_key"]["api_key_id"]: i for i in response.json()["api_keys"]}
        assert set(items) == {str(owner.key_id), created["api_key_id"]}
        mine = items[created["api_key_id"]]
        assert mine["member"] == {"member_id": f"key:{owner.key_id}", "email": ""}
        assert mine["api_key"]["comment"] == "ci key"
        assert mine["api_key"]["scopes"] == ["member"]
        created_at = dt.datetime.fromisoformat(mine["api_key"]["created"])
        assert abs(created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
        assert items[str(owner.key_id)]["member"]["member_id"] == "test"
        stored = get_key(db, created["api_key_id"])
        assert created["key"] not in response.text
        assert stored.key_hash not in response.text

    def test_status_filter(self, client: TestClient, db: Database, owner: Tenant) -> None:
        live = create_key(client, owner).json()["api_key_id"]
        expiring = create_key(client, owner, time_to_live_in_seconds=60).json()["api_key_id"]
        expire_key(db, uuid.UUID(expiring))

        def listed(status: str) -> set[str]:
            response = client.get(
                keys_url(owner.project_id), params={"status": status}, headers=owner.headers
            )
            assert response.status_code == 200
            return {i["api_key"]["api_key_id"] for i in response.json()["api_keys"]}

        assert listed("active") == {str(owner.key_id), live}
        assert listed("expired") == {expiring}

    def test_revoked_keys_are_not_listed(self, client: TestClient, owner: Tenant) -> None:
        gone = create_key(client, owner).json()["api_key_id"]
        client.delete(f"{keys_url(owner.project_id)}/{gone}", headers=owner.headers)
        response = client.get(keys_url(owner.project_id), headers=owner.headers)
        ids = [i["api_key"]["api_key_id"] for i in response.json()["api_keys"]]
        assert ids == [str(owner.key_id)]

    def test_unknown_status_is_400(self, client: TestClient, owner: Tenant) -> None:
        response = client.get(
            keys_url(owner.project_id), params={"status": "revoked"}, headers=owner.headers
        )
        body = assert_error(response, 400, "Bad Request")
        assert "status" in str(body["err_msg"])

    @pytest.mark.parametrize("role", ["auditor", "billing", "dataops"])
    def test_only_admin_staff_read_a_projects_keys(
        self, client: TestClient, db: Database, tenant: Tenant, role: str
    ) -> None:
        # The roles table gives auditors organizations, projects, usage and the audit log; a
        # project's keys (comments, scopes, tags) are its own.
        response = client.get(keys_url(tenant.project_id), headers=make_staff_key(db, role))
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")
        response = client.get(keys_url(tenant.project_id), headers=make_staff_key(db, "admin"))
        assert [i["api_key"]["api_key_id"] for i in response.json()["api_keys"]] == [
            str(tenant.key_id)
        ]

    def test_another_tenants_project_is_404(
        self, client: TestClient, db: Database, owner: Tenant
    ) -> None:
        other = make_tenant(db, name="Other")
        assert_error(
            client.get(keys_url(other.project_id), headers=owner.headers), 404, "NOT_FOUND"
        )


class TestCreateKey:
    def test_created_key_works_and_is_audited(
        self, client: TestClient, db: Database, owner: Tenant
    ) -> None:
        before = dt.datetime.now(dt.UTC)
        response = create_key(client, owner, tags=["ci", "nightly"], time_to_live_in_seconds=3600)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {
            "api_key_id",
            "key",
            "comment",
            "scopes",
            "tags",
            "expiration_date",
        }
        assert (body["comment"], body["scopes"], body["tags"]) == (
            "ci key",
            ["member"],
            ["ci", "nightly"],
        )
        expires = dt.datetime.fromisoformat(body["expiration_date"])
        assert before + dt.timedelta(seconds=3599) < expires < before + dt.timedelta(seconds=3660)
        assert len(body["key"]) == 40
        # The new key authenticates and has the member bundle: it reads the project...
        project = client.get(f"/v1/projects/{owner.project_id}", headers=token(body["key"]))
        assert project.json()["name"] == "Owner project"
        # ...but may not manage keys.
        response = client.post(
            keys_url(owner.project_id),
            json={"comment": "x", "scopes": ["listen"]},
            headers=token(body["key"]),
        )
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")
        stored = get_key(db, body["api_key_id"])
        assert (stored.project_id, stored.created_by) == (owner.project_id, f"key:{owner.key_id}")
        action, actor, details = audit_actions(db)[-1]
        assert (action, actor) == ("api_key.created", f"key:{owner.key_id}")
        assert details["scopes"] == ["member"]

    def test_expiration_date_is_stored_in_utc(
        self, client: TestClient, db: Database, owner: Tenant
    ) -> None:
        body = create_key(client, owner, expiration_date="2030-01-01T02:00:00+02:00").json()
        assert body["expiration_date"] == "2030-01-01T00:00:00Z"
        assert get_key(db, body["api_key_id"]).expires_at == dt.datetime(2030, 1, 1, tzinfo=dt.UTC)

    @pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
    def test_expiration_date_without_a_utc_form_is_400(
        self, client: TestClient, db: Database, owner: Tenant, moment: str
    ) -> None:
        body = assert_error(create_key(client, owner, expiration_date=moment), 400, "Bad Request")
        assert "expiration_date" in str(body["err_msg"])
        assert "outside the dates" in str(body["err_msg"])

    def test_staff_admin_may_grant_any_scope(
        self, client: TestClient, db: Database, tenant: Tenant, admin_headers: dict[str, str]
    ) -> None:
        response = client.post(
            keys_url(tenant.project_id),
            json={"comment": "ops", "scopes": ["admin"]},
            headers=admin_headers,
        )
        assert response.status_code == 200
        assert get_key(db, response.json()["api_key_id"]).scopes == ["admin"]

    def test_member_key_is_403(self, client: TestClient, db: Database, tenant: Tenant) -> None:
        response = create_key(client, tenant)
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")
        assert key_count(db) == 1

    @pytest.mark.parametrize(
        ("holder", "requested", "named"),
        [
            (["keys:write", "listen"], ["usage:read"], "usage:read"),
            (["keys:write", "listen"], ["member"], "project:read"),
            (["keys:write", "keys:read", "listen"], ["admin"], "project:read"),
        ],
    )
    def test_escalation_is_403(
        self,
        client: TestClient,
        db: Database,
        holder: list[str],
        requested: list[str],
        named: str,
    ) -> None:
        grantor = make_tenant(db, scopes=holder)
        response = create_key(client, grantor, scopes=requested)
        body = assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")
        assert named in str(body["err_msg"])
        assert key_count(db) == 1

    def test_staff_without_admin_role_is_403(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        response = client.post(
            keys_url(tenant.project_id),
            json={"comment": "x", "scopes": ["member"]},
            headers=make_staff_key(db, "auditor"),
        )
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")

    def test_another_tenants_project_is_404(
        self, client: TestClient, db: Database, owner: Tenant
    ) -> None:
        other = make_tenant(db, name="Other")
        response = client.post(
            keys_url(other.project_id),
            json={"comment": "x", "scopes": ["member"]},
            headers=owner.headers,
        )
        assert_error(response, 404, "NOT_FOUND")
        assert key_count(db) == 2


class TestCreateKeyBadInput:
    @pytest.mark.parametrize(
        ("body", "named"),
        [
            ({"comment": "", "scopes": ["member"]}, "comment"),
            ({"comment": "   ", "scopes": ["member"]}, "comment"),
            ({"scopes": ["member"]}, "comment"),
            ({"comment": "x"}, "scopes"),
            ({"comment": "x", "scopes": []}, "scopes"),
            ({"comment": "x", "scopes": "member"}, "scopes"),
            ({"comment": "x", "scopes": ["god"]}, "god"),
            (
                {
                    "comment": "x",
                    "scopes": ["member"],
                    "expiration_date": "2030-01-01T00:00:00Z",
                    "time_to_live_in_seconds": 60,
                },
                "not both",
            ),
            ({"comment": "x", "scopes": ["member"], "time_to_live_in_seconds": -5}, "time_to"),
            ({"comment": "x", "scopes": ["member"], "time_to_live_in_seconds": 0}, "time_to"),
            ({"comment": "x", "scopes": ["member"], "time_to_live_in_seconds": 1.5}, "time_to"),
            ({"comment": "x", "scopes": ["member"], "time_to_live_in_seconds": True}, "time_to"),
            ({"comment": "x", "scopes": ["member"], "expiration_date": "soon"}, "expiration"),
            (
                {"comment": "x", "scopes": ["member"], "expiration_date": "2020-01-01T00:00:00Z"},
                "future",
            ),
            ({"comment": "x", "scopes": ["member"], "key": "value"}, "key"),
        ],
    )
    def test_is_400_and_writes_nothing(
        self,
        client: TestClient,
        db: Database,
        owner: Tenant,
        body: dict[str, object],
        named: str,
    ) -> None:
        response = client.post(keys_url(owner.project_id), json=body, headers=owner.headers)
        error = assert_error(response, 400, "Bad Request")
        assert named in str(error["err_msg"])
        assert key_count(db) == 1

    def test_malformed_json_is_400(self, client: TestClient, db: Database, owner: Tenant) -> None:
        response = client.post(
            keys_url(owner.project_id),
            content=b'{"comment": "x", "scopes": [',
            headers={**owner.headers, "content-type": "application/json"},
        )
        assert_error(response, 400, "Bad Request")
        assert key_count(db) == 1

    def test_bad_project_uuid_is_400(self, client: TestClient, owner: Tenant) -> None:
        response = client.post(
            keys_url("12345"), json={"comment": "x", "scopes": ["member"]}, headers=owner.headers
        )
        assert_error(response, 400, "Bad Request")


class TestGetKey:
    def test_item_shape(self, client: TestClient, owner: Tenant) -> None:
        created = create_key(client, owner, tags=["ci"], expiration_date="2031-05-06T07:08:09Z")
        key_id = created.json()["api_key_id"]
        response = client.get(f"{keys_url(owner.project_id)}/{key_id}", headers=owner.headers)
        assert response.status_code == 200
        member = response.json()["item"]["member"]
        api_key = member.pop("api_key")
        assert member == {
            "member_id": f"key:{owner.key_id}",
            "email": "",
            "first_name": "",
            "last_name": "",
        }
        created_at = api_key.pop("created")
        assert dt.datetime.fromisoformat(created_at).tzinfo is not None
        assert api_key == {
            "api_key_id": key_id,
            "comment": "ci key",
            "scopes": ["member"],
            "tags": ["ci"],
            "expiration_date": "2031-05-06T07:08:09Z",
        }
        assert created.json()["key"] not in response.text

    def test_another_projects_key_is_404(
        self, client: TestClient, db: Database, owner: Tenant
    ) -> None:
        other = make_tenant(db, name="Other")
        response = client.get(f"{keys_url(owner.project_id)}/{other.key_id}", headers=owner.headers)
        assert_error(response, 404, "NOT_FOUND")
        response = client.get(f"{keys_url(other.project_id)}/{other.key_id}", headers=owner.headers)
        assert_error(response, 404, "NOT_FOUND")

    def test_unknown_and_revoked_keys_are_404(self, client: TestClient, owner: Tenant) -> None:
        gone = create_key(client, owner).json()["api_key_id"]
        client.delete(f"{keys_url(owner.project_id)}/{gone}", headers=owner.headers)
        for key_id in (gone, str(uuid.uuid4())):
            response = client.get(f"{keys_url(owner.project_id)}/{key_id}", headers=owner.headers)
            assert_error(response, 404, "NOT_FOUND")

    def test_bad_key_uuid_is_400(self, client: TestClient, owner: Tenant) -> None:
        response = client.get(f"{keys_url(owner.project_id)}/key-1", headers=owner.headers)
        body = assert_error(response, 400, "Bad Request")
        assert "key_id" in str(body["err_msg"])

    def test_key_without_keys_read_is_403(self, client: TestClient, db: Database) -> None:
        listen_only = make_tenant(db, scopes=["listen"])
        response = client.get(
            f"{keys_url(listen_only.project_id)}/{listen_only.key_id}",
            headers=listen_only.headers,
        )
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")


class TestDeleteKey:
    def test_revokes_and_audits(self, client: TestClient, db: Database, owner: Tenant) -> None:
        created = create_key(client, owner).json()
        url = f"{keys_url(owner.project_id)}/{created['api_key_id']}"
        response = client.delete(url, headers=owner.headers)
        assert response.status_code == 200
        assert created["api_key_id"] in response.json()["message"]
        assert get_key(db, created["api_key_id"]).revoked_at is not None
        assert audit_actions(db)[-1][:2] == ("api_key.revoked", f"key:{owner.key_id}")
        assert_error(
            client.get(f"/v1/projects/{owner.project_id}", headers=token(created["key"])),
            401,
            "INVALID_AUTH",
        )
        assert_error(client.delete(url, headers=owner.headers), 404, "NOT_FOUND")

    def test_a_key_deletes_only_keys_whose_scopes_it_holds(
        self, client: TestClient, db: Database, owner: Tenant
    ) -> None:
        writer = create_key(client, owner, scopes=["keys:write"]).json()
        peer = create_key(client, owner, scopes=["keys:write"]).json()
        headers = token(writer["key"])
        # The project's admin key holds scopes the writer does not: it stays.
        response = client.delete(f"{keys_url(owner.project_id)}/{owner.key_id}", headers=headers)
        error = assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")
        assert "cannot delete a key with scopes it does not hold" in str(error["err_msg"])
        assert get_key(db, str(owner.key_id)).revoked_at is None
        assert client.get(f"/v1/projects/{owner.project_id}", headers=owner.headers).is_success
        # A key with no more than the writer's scopes may go.
        response = client.delete(
            f"{keys_url(owner.project_id)}/{peer['api_key_id']}", headers=headers
        )
        assert response.status_code == 200, response.text
        assert get_key(db, peer["api_key_id"]).revoked_at is not None

    def test_another_projects_key_is_404_and_keeps_working(
        self, client: TestClient, db: Database, owner: Tenant
    ) -> None:
        other = make_tenant(db, name="Other")
        response = client.delete(
            f"{keys_url(owner.project_id)}/{other.key_id}", headers=owner.headers
        )
        assert_error(response, 404, "NOT_FOUND")
        response = client.delete(
            f"{keys_url(other.project_id)}/{other.key_id}", headers=owner.headers
        )
        assert_error(response, 404, "NOT_FOUND")
        assert client.get(f"/v1/projects/{other.project_id}", headers=other.headers).is_success

    def test_member_key_is_403(self, client: TestClient, tenant: Tenant) -> None:
        response = client.delete(
            f"{keys_url(tenant.project_id)}/{tenant.key_id}", headers=tenant.headers
        )
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")
        assert client.get(f"/v1/projects/{tenant.project_id}", headers=tenant.headers).is_success

    def test_bad_key_uuid_is_400(self, client: TestClient, owner: Tenant) -> None:
        response = client.delete(f"{keys_url(owner.project_id)}/nope", headers=owner.headers)
        assert_error(response, 400, "Bad Request")
