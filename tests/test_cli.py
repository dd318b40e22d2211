"""The bootstrap CLI, the way a new installation and its scripts use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import app as cli_app
from app.kit.settings import get_settings
from tests.conftest import Database

runner = CliRunner()


@pytest.fixture
def cli_env(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("MIP_DATABASE_URL", db.url)
    monkeypatch.setenv("MIP_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def mip(*args: str) -> Any:
    result = runner.invoke(cli_app, list(args))
    return result


def mip_json(*args: str) -> Any:
    result = mip(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class TestBootstrap:
    def test_org_project_key_staff_key_with_json(
        self, cli_env: Database, client: TestClient
    ) -> None:
        org = mip_json("orgs", "create", "Acme", "--plan", "growth")
        assert org["plan"] == "growth"
        project = mip_json("projects", "create", "Web", "--org", org["id"])
        assert project["org_id"] == org["id"]
        key = mip_json("keys", "create", "--project", project["id"], "--scope", "member")
        assert len(key["key"]) == 40
        assert key["scopes"] == ["member"]
        staff = mip_json("staff", "create-key", "--role", "billing")
        assert staff["role"] == "billing"
        # The printed secrets work as API keys.
        assert uuid.UUID(key["id"])
        response = client.post(
            "/v1/governance/ledger/events",
            json={"events": []},
            headers={"Authorization": f"Token {key['key']}"},
        )
        assert response.status_code == 403  # authenticated, but a project key cannot ingest
        response = client.post(
            "/v1/governance/ledger/events",
            json={"events": []},
            headers={"Authorization": f"Bearer {staff['key']}"},
        )
        assert response.status_code == 403  # billing role, authenticated

    def test_enterprise_with_contract(self, cli_env: Database) -> None:
        org = mip_json(
            "orgs",
            "create",
            "Big",
            "--plan",
            "enterprise",
            "--contract-rate",
            "0.0040",
            "--contract-rate",
            "medical=0.0061",
            "--contract-opt-out",
        )
        assert org["contract_rates_micros_per_minute"] == {"*": 4000, "medical": 6100}
        assert org["contract_opt_out"] is True
        updated = mip_json("orgs", "update", org["id"], "--no-contract-opt-out")
        assert updated["contract_opt_out"] is False

    def test_key_list_never_shows_secrets(self, cli_env: Database) -> None:
        org = mip_json("orgs", "create", "Acme", "--plan", "growth")
        project = mip_json("projects", "create", "Web", "--org", org["id"])
        key = mip_json("keys", "create", "--project", project["id"])
        listed = mip("keys", "list", "--project", project["id"], "--json")
        assert key["key"] not in listed.output
        assert json.loads(listed.stdout)[0]["prefix"] == key["key"][:8]
        revoked = mip_json("keys", "revoke", key["id"])
        assert revoked["revoked_at"]

    def test_audit_list_shows_the_newest_entries_in_order(self, cli_env: Database) -> None:
        for name in ("A", "B", "C"):
            mip_json("orgs", "create", name, "--plan", "growth")
        entries = mip_json("audit", "list", "--limit", "2")
        assert [e["seq"] for e in entries] == [2, 3]
        assert [e["action"] for e in entries] == ["organization.created"] * 2

    def test_audit_verify_after_bootstrap(self, cli_env: Database) -> None:
        mip_json("orgs", "create", "Acme", "--plan", "growth")
        report = mip_json("audit", "verify")
        assert report["ok"] is True
        assert report["entries"] == 1


class TestBadInput:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["orgs", "create", "X", "--plan", "free"], "Unknown plan"),
            (["orgs", "create", "X", "--plan", "enterprise"], "contract rate"),
            (["orgs", "create", "X", "--plan", "growth", "--contract-opt-out"], "enterprise"),
            (
                ["orgs", "create", "X", "--plan", "enterprise", "--contract-rate", "abc"],
                "USD amount",
            ),
            (
                ["orgs", "create", "X", "--plan", "enterprise", "--contract-rate", "0.0000001"],
                "6 decimal",
            ),
            (["staff", "create-key", "--role", "root"], "Unknown role"),
            (["projects", "create", "W", "--org", str(uuid.UUID(int=1))], "not found"),
        ],
    )
    def test_clear_error_and_exit_1(self, cli_env: Database, args: list[str], message: str) -> None:
        result = mip(*args)
        assert result.exit_code != 0
        assert message in result.output or message in str(result.exception)

    def test_scope_must_exist(self, cli_env: Database) -> None:
        org = mip_json("orgs", "create", "Acme", "--plan", "growth")
        project = mip_json("projects", "create", "Web", "--org", org["id"])
        result = mip("keys", "create", "--project", project["id"], "--scope", "god")
        assert result.exit_code != 0
        assert "Unknown scope" in str(result.exception)


class TestConfigShow:
    def test_masks_secrets(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MIP_DATABASE_URL", "postgresql://mip:hunter2@db:5432/mip")
        monkeypatch.setenv("MIP_BOOTSTRAP_ADMIN_KEY", "s3cr3t-bootstrap-value")
        get_settings.cache_clear()
        try:
            result = mip("config", "show", "--json")
        finally:
            get_settings.cache_clear()
        assert result.exit_code == 0
        assert "hunter2" not in result.output
        assert "s3cr3t" not in result.output
        values = json.loads(result.stdout)
        assert values["bootstrap_admin_key"] == "***"
        assert values["database_url"] == "postgresql://mip:***@db:5432/mip"
        assert values["port"] == 8000

    def test_every_command_has_help(self) -> None:
        for args in (
            ["--help"],
            ["orgs", "create", "--help"],
            ["keys", "create", "--help"],
            ["staff", "create-key", "--help"],
            ["migrate", "--help"],
            ["serve", "--help"],
            ["worker", "--help"],
            ["audit", "verify", "--help"],
        ):
            result = mip(*args)
            assert result.exit_code == 0, args
            assert "Usage" in result.output


class TestBootstrapAdminKey:
    def test_migrate_registers_the_key_once(
        self, cli_env: Database, monkeypatch: pytest.MonkeyPatch, client: TestClient
    ) -> None:
        secret = "b" * 40
        monkeypatch.setenv("MIP_BOOTSTRAP_ADMIN_KEY", secret)
        get_settings.cache_clear()
        first = mip("migrate")
        second = mip("migrate")
        assert first.exit_code == 0, first.output
        assert second.exit_code == 0, second.output
        assert "Bootstrap admin key registered" in first.output
        assert "Bootstrap admin key registered" not in second.output
        assert secret not in first.output
        response = client.get(
            "/v1/governance/organizations", headers={"Authorization": f"Token {secret}"}
        )
        assert response.status_code == 200, response.text
        entries = mip_json("audit", "list")
        assert [e["action"] for e in entries].count("api_key.created") == 1

    def test_short_key_is_refused(self, cli_env: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MIP_BOOTSTRAP_ADMIN_KEY", "short")
        get_settings.cache_clear()
        result = mip("migrate")
        assert result.exit_code != 0
        assert "at least 32" in str(result.exception)


class TestUnmigratedDatabase:
    def test_clear_message_not_a_traceback(self, tmp_path: Path) -> None:
        env = {**os.environ, "MIP_DATA_DIR": str(tmp_path / "elsewhere")}
        env.pop("MIP_DATABASE_URL", None)
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "billing", "report", "--period", "2026-10"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert "mip migrate" in result.stderr
        assert "Traceback" not in result.stderr
