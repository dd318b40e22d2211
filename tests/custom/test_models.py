"""Custom models over HTTP and the CLI: who may do what, names per reseller, bad input, audit."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import app as cli_app
from app.tables import ApiKey, AuditEntry
from app.tenancy import service as tenancy
from tests.conftest import Database, make_staff_key, make_tenant
from tests.custom.conftest import BASE_UUID, BASE_VERSION, Reseller, make_reseller
from tests.kit.test_http import assert_error

URL = "/v1/governance/custom-models"
BODY = {"name": "clinic-notes", "language": "en", "domain": "medical"}


def message_of(error: dict[str, object]) -> str:
    return str(error["err_msg"])


def create(client: TestClient, headers: dict[str, str], **fields: Any) -> Any:
    return client.post(URL, json={**BODY, **fields}, headers=headers)


def audit_of(db: Database, action: str) -> list[AuditEntry]:
    with db.session() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()
        for row in rows:
            session.expunge(row)
        return list(rows)


class TestCreate:
    def test_a_reseller_creates_a_model_on_the_default_base(
        self, client: TestClient, db: Database, reseller: Reseller
    ) -> None:
        response = create(client, reseller.headers, description="Clinic dictation")
        assert response.status_code == 201, response.text
        model = response.json()
        assert model["reseller_id"] == reseller.id
        assert (model["name"], model["status"], model["domain"]) == (
            "clinic-notes",
            "collecting",
            "medical",
        )
        assert model["base_model"] == {
            "name": "ctcconv-general",
            "version": BASE_VERSION,
            "uuid": BASE_UUID,
        }
        assert model["created_by"] == f"reseller:{reseller.id}:{reseller.key_id}"
        (entry,) = audit_of(db, "custom_model.created")
        assert entry.target_id == model["id"]
        assert entry.actor == model["created_by"]
        assert entry.details["base_model"] == model["base_model"]

    def test_names_are_unique_per_reseller(
        self, client: TestClient, db: Database, reseller: Reseller
    ) -> None:
        assert create(client, reseller.headers).status_code == 201
        assert_error(create(client, reseller.headers), 409, "CONFLICT")
        other = make_reseller(db, "Other Co")
        assert create(client, other.headers).status_code == 201

    def test_staff_admin_creates_for_a_named_reseller(
        self, client: TestClient, db: Database, reseller: Reseller
    ) -> None:
        admin = make_staff_key(db, "admin")
        made = create(client, admin, reseller_id=reseller.id, base_model=BASE_UUID)
        assert made.status_code == 201, made.text
        assert made.json()["reseller_id"] == reseller.id
        missing = create(client, admin)
        assert "reseller_id" in message_of(assert_error(missing, 400, "Bad Request"))
        unknown = create(client, admin, name="x", reseller_id=str(uuid.uuid4()))
        assert_error(unknown, 404, "NOT_FOUND")

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"name": "Clinic Notes"}, "lower-case letters, digits and dashes"),
            ({"name": "clinic.notes"}, "lower-case letters, digits and dashes"),
            ({"domain": "Medical!"}, "A domain is"),
            ({"language": "english"}, "BCP-47"),
            ({"language": "de"}, "No such model"),
            ({"base_model": "nova-9"}, "No such model"),
            ({"name": ""}, None),
            ({"tier": "gold"}, None),
        ],
    )
    def test_bad_input_is_a_400_and_writes_nothing(
        self,
        client: TestClient,
        db: Database,
        reseller: Reseller,
        fields: dict[str, str],
        message: str | None,
    ) -> None:
        error = assert_error(create(client, reseller.headers, **fields), 400, "Bad Request")
        if message is not None:
            assert message.lower() in message_of(error).lower(), error
        assert client.get(URL, headers=reseller.headers).json()["total"] == 0
        assert audit_of(db, "custom_model.created") == []

    def test_a_reseller_cannot_create_for_another(
        self, client: TestClient, db: Database, reseller: Reseller
    ) -> None:
        other = make_reseller(db, "Other Co")
        response = create(client, reseller.headers, reseller_id=other.id)
        assert_error(response, 400, "Bad Request")


class TestAccess:
    def test_a_reseller_sees_only_its_own_models(
        self, client: TestClient, db: Database, reseller: Reseller
    ) -> None:
        other = make_reseller(db, "Other Co")
        mine = create(client, reseller.headers).json()
        theirs = create(client, other.headers, name="call-center").json()
        listed = client.get(URL, headers=reseller.headers).json()
        assert [m["id"] for m in listed["models"]] == [mine["id"]]
        assert listed["total"] == 1
        assert client.get(f"{URL}/{mine['id']}", headers=reseller.headers).status_code == 200
        for method, path in (("GET", ""), ("POST", "/archive")):
            response = client.request(
                method, f"{URL}/{theirs['id']}{path}", headers=reseller.headers
            )
            assert_error(response, 404, "NOT_FOUND")
        every = client.get(URL, headers=make_staff_key(db, "auditor")).json()
        assert {m["id"] for m in every["models"]} == {mine["id"], theirs["id"]}

    @pytest.mark.parametrize("role", ["billing", "dataops", "auditor"])
    def test_other_staff_roles_cannot_create(
        self, client: TestClient, db: Database, reseller: Reseller, role: str
    ) -> None:
        response = create(client, make_staff_key(db, role), reseller_id=reseller.id)
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")

    def test_project_keys_are_refused(self, client: TestClient, db: Database) -> None:
        tenant = make_tenant(db, scopes=["admin"])
        assert_error(client.get(URL, headers=tenant.headers), 403, "INSUFFICIENT_PERMISSIONS")

    def test_a_read_only_reseller_key_reads_but_does_not_write(
        self, client: TestClient, db: Database, reseller: Reseller
    ) -> None:
        model = create(client, reseller.headers).json()
        with db.session() as session:
            _key, secret = tenancy.create_reseller_key(
                session,
                reseller_id=uuid.UUID(reseller.id),
                actor="test",
                scopes=["custom_models:read"],
            )
        reader = {"Authorization": f"Token {secret}"}
        assert client.get(f"{URL}/{model['id']}", headers=reader).status_code == 200
        refused = client.post(f"{URL}/{model['id']}/archive", headers=reader)
        error = assert_error(refused, 403, "INSUFFICIENT_PERMISSIONS")
        assert "custom_models:write" in message_of(error)

    def test_a_revoked_reseller_key_is_a_401(
        self, client: TestClient, db: Database, reseller: Reseller
    ) -> None:
        with db.session() as session:
            key = session.get(ApiKey, uuid.UUID(reseller.key_id))
            assert key is not None
            tenancy.revoke_key(session, key=key, actor="test")
        assert_error(client.get(URL, headers=reseller.headers), 401, "INVALID_AUTH")


class TestArchive:
    def test_archive_once(self, client: TestClient, db: Database, reseller: Reseller) -> None:
        model = create(client, reseller.headers).json()
        archived = client.post(f"{URL}/{model['id']}/archive", headers=reseller.headers)
        assert archived.status_code == 200, archived.text
        assert archived.json()["status"] == "archived"
        assert archived.json()["archived_at"] is not None
        again = client.post(f"{URL}/{model['id']}/archive", headers=reseller.headers)
        assert_error(again, 409, "CONFLICT")
        (entry,) = audit_of(db, "custom_model.archived")
        assert entry.details["before"] == "collecting"
        status = client.get(URL, params={"status": "archived"}, headers=reseller.headers).json()
        assert status["total"] == 1
        bad = client.get(URL, params={"status": "shipped"}, headers=reseller.headers)
        assert_error(bad, 400, "Bad Request")


# --- the command line -----------------------------------------------------------------------


def mip_json(*args: str) -> Any:
    result = CliRunner().invoke(cli_app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class TestCommands:
    def test_reseller_key_and_model_lifecycle(
        self, cli_env: None, client: TestClient, tmp_path: Path
    ) -> None:
        reseller = mip_json("resellers", "create", "Resell Co")
        key = mip_json("resellers", "create-key", reseller["id"])
        assert key["scopes"] == [
            "custom_models:assign",
            "custom_models:read",
            "custom_models:write",
        ]
        assert len(key["key"]) == 40
        made = mip_json(
            "custom", "create", "call-center", "--reseller", reseller["id"], "--domain", "retail"
        )
        assert (made["status"], made["base_model"]["uuid"]) == ("collecting", BASE_UUID)
        headers = {"Authorization": f"Token {key['key']}"}
        seen = client.get(URL, headers=headers).json()
        assert [m["id"] for m in seen["models"]] == [made["id"]]
        listed = mip_json("custom", "list", "--reseller", reseller["id"])
        assert listed["total"] == 1
        assert mip_json("custom", "show", made["id"])["name"] == "call-center"
        assert mip_json("custom", "archive", made["id"])["status"] == "archived"

    @pytest.mark.parametrize(
        "args",
        [
            ["resellers", "create-key", "not-a-uuid"],
            ["resellers", "create-key", str(uuid.uuid4())],
            ["custom", "show", str(uuid.uuid4())],
            ["custom", "list", "--status", "shipped"],
        ],
    )
    def test_bad_input_exits_non_zero_with_a_message(self, cli_env: None, args: list[str]) -> None:
        result = CliRunner().invoke(cli_app, args)
        assert result.exit_code in {1, 2}
        assert "error" in result.stderr.lower()

    def test_unknown_reseller_scope(self, cli_env: None) -> None:
        reseller = mip_json("resellers", "create", "Resell Co")
        result = CliRunner().invoke(
            cli_app, ["resellers", "create-key", reseller["id"], "--scope", "listen"]
        )
        assert result.exit_code == 2
        assert "Unknown reseller scope" in result.stderr
