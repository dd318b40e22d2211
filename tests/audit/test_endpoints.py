"""Audit-log HTTP: auditors read and verify the chain; nobody else can."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from tests.audit.helpers import HISTORY_ACTIONS, entry_hashes, make_history, tamper
from tests.conftest import Database, Tenant, make_staff_key
from tests.kit.test_http import assert_error

ENTRIES = "/v1/governance/audit/entries"
VERIFY = "/v1/governance/audit/verify"


@pytest.fixture
def auditor(db: Database) -> dict[str, str]:
    return make_staff_key(db, "auditor")


def staff_key_entries(count: int) -> list[str]:
    """Creating staff keys for a test appends entries of its own."""
    return ["api_key.created"] * count


class TestListEntries:
    def test_whole_log_in_chain_order(
        self, client: TestClient, db: Database, auditor: dict[str, str]
    ) -> None:
        history = make_history(db)
        response = client.get(ENTRIES, headers=auditor)
        assert response.status_code == 200, response.text
        body = response.json()
        entries = body["entries"]
        assert [e["action"] for e in entries] == staff_key_entries(1) + HISTORY_ACTIONS
        assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
        assert body["next_after_seq"] is None
        revoked = next(e for e in entries if e["action"] == "api_key.revoked")
        assert revoked["target_type"] == "api_key"
        assert revoked["target_id"] == str(history.key_id)
        assert revoked["organization_id"] == str(history.org_id)
        assert revoked["actor"] == "bob"
        assert [e["entry_hash"] for e in entries] == entry_hashes(db)
        assert entries[1]["prev_hash"] == entries[0]["entry_hash"]

    def test_filter_by_action(
        self, client: TestClient, db: Database, auditor: dict[str, str]
    ) -> None:
        make_history(db)
        response = client.get(ENTRIES, params={"action": "price_book.changed"}, headers=auditor)
        entries = response.json()["entries"]
        assert [e["action"] for e in entries] == ["price_book.changed"]
        assert entries[0]["details"]["rate_micros_per_minute"] == 3900

    def test_filter_by_organization(
        self, client: TestClient, db: Database, auditor: dict[str, str]
    ) -> None:
        history = make_history(db)
        params = {"organization_id": str(history.org_id)}
        entries = client.get(ENTRIES, params=params, headers=auditor).json()["entries"]
        assert [e["action"] for e in entries] == [
            "organization.created",
            "project.created",
            "api_key.created",
            "api_key.revoked",
            "organization.contract_changed",
        ]
        assert {e["organization_id"] for e in entries} == {str(history.org_id)}
        other = {"organization_id": str(history.other_org_id), "action": "organization.created"}
        only = client.get(ENTRIES, params=other, headers=auditor).json()["entries"]
        assert [e["target_id"] for e in only] == [str(history.other_org_id)]

    def test_unknown_organization_is_an_empty_page(
        self, client: TestClient, db: Database, auditor: dict[str, str]
    ) -> None:
        make_history(db)
        params = {"organization_id": str(uuid.uuid4())}
        response = client.get(ENTRIES, params=params, headers=auditor)
        assert response.json() == {"entries": [], "next_after_seq": None}

    def test_pages_with_after_seq_and_limit(
        self, client: TestClient, db: Database, auditor: dict[str, str]
    ) -> None:
        make_history(db)
        seen: list[int] = []
        after = 0
        pages = 0
        while True:
            params = {"after_seq": after, "limit": 4}
            body = client.get(ENTRIES, params=params, headers=auditor).json()
            pages += 1
            seen += [e["seq"] for e in body["entries"]]
            if body["next_after_seq"] is None:
                break
            after = body["next_after_seq"]
        total = 1 + len(HISTORY_ACTIONS)
        assert seen == list(range(1, total + 1))
        assert pages == total // 4 + 1

    def test_admin_may_read(self, client: TestClient, db: Database) -> None:
        make_history(db)
        response = client.get(ENTRIES, headers=make_staff_key(db, "admin"))
        assert response.status_code == 200
        assert len(response.json()["entries"]) == 1 + len(HISTORY_ACTIONS)


class TestListEntriesBadInput:
    @pytest.mark.parametrize(
        ("params", "name"),
        [
            ({"limit": 0}, "limit"),
            ({"limit": 1001}, "limit"),
            ({"limit": "many"}, "limit"),
            ({"after_seq": -1}, "after_seq"),
            ({"after_seq": 2**63}, "after_seq"),
            ({"organization_id": "acme"}, "organization_id"),
            ({"action": ""}, "action"),
            ({"action": "a" * 65}, "action"),
        ],
    )
    def test_is_400_naming_the_parameter(
        self,
        client: TestClient,
        auditor: dict[str, str],
        params: dict[str, str | int],
        name: str,
    ) -> None:
        body = assert_error(client.get(ENTRIES, params=params, headers=auditor), 400, "Bad Request")
        assert f"query parameter '{name}'" in str(body["err_msg"])

    def test_limit_bounds_are_inclusive(
        self, client: TestClient, db: Database, auditor: dict[str, str]
    ) -> None:
        make_history(db)
        one = client.get(ENTRIES, params={"limit": 1}, headers=auditor).json()
        assert [e["seq"] for e in one["entries"]] == [1]
        assert one["next_after_seq"] == 1
        most = client.get(ENTRIES, params={"limit": 1000}, headers=auditor)
        assert most.status_code == 200


class TestVerifyEndpoint:
    def test_intact_chain(self, client: TestClient, db: Database, auditor: dict[str, str]) -> None:
        make_history(db)
        response = client.get(VERIFY, headers=auditor)
        assert response.status_code == 200, response.text
        assert response.json() == {
            "ok": True,
            "entries": 1 + len(HISTORY_ACTIONS),
            "first_bad_seq": None,
            "reason": None,
            "head_hash": entry_hashes(db)[-1],
            "checkpoints": {
                "ok": True,
                "checkpoints": 0,
                "anchors": 0,
                "latest": None,
                "problems": [],
            },
        }

    def test_tampered_chain_names_the_entry(
        self, client: TestClient, db: Database, auditor: dict[str, str]
    ) -> None:
        make_history(db)
        tamper(db, 5, details={"project_id": None})
        response = client.get(VERIFY, headers=auditor)
        assert response.status_code == 200
        assert response.json() == {
            "ok": False,
            "entries": 5,
            "first_bad_seq": 5,
            "reason": "content does not match its hash",
            "head_hash": None,
            "checkpoints": {
                "ok": True,
                "checkpoints": 0,
                "anchors": 0,
                "latest": None,
                "problems": [],
            },
        }


class TestAccess:
    @pytest.mark.parametrize("url", [ENTRIES, VERIFY])
    @pytest.mark.parametrize("role", ["billing", "dataops"])
    def test_other_roles_are_403(
        self, client: TestClient, db: Database, url: str, role: str
    ) -> None:
        response = client.get(url, headers=make_staff_key(db, role))
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")

    @pytest.mark.parametrize("url", [ENTRIES, VERIFY])
    def test_project_key_is_403(self, client: TestClient, tenant: Tenant, url: str) -> None:
        # Even filtered to its own organization: the audit log is for staff.
        params = {"organization_id": str(tenant.org_id)} if url == ENTRIES else {}
        response = client.get(url, params=params, headers=tenant.headers)
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")

    @pytest.mark.parametrize("url", [ENTRIES, VERIFY])
    def test_no_or_bad_key_is_401(self, client: TestClient, url: str) -> None:
        assert_error(client.get(url), 401, "INVALID_AUTH")
        bad = {"Authorization": "Token " + "0" * 40}
        assert_error(client.get(url, headers=bad), 401, "INVALID_AUTH")

    def test_documented_in_openapi(self, client: TestClient) -> None:
        paths = client.get("/openapi.json").json()["paths"]
        for url in (ENTRIES, VERIFY):
            operation = paths[url]["get"]
            assert operation["summary"]
            schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
            assert schema["$ref"].startswith("#/components/schemas/")
