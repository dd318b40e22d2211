"""``mip orgs create|update --prepaid-credit``: the credit the balances endpoints start from."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import app as cli_app
from app.kit.settings import get_settings
from tests.conftest import Database
from tests.tenancy.helpers import audit_actions, ingest, token

runner = CliRunner()


@pytest.fixture
def cli_env(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("MIP_DATABASE_URL", db.url)
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def mip_json(*args: str) -> Any:
    result = runner.invoke(cli_app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class TestPrepaidCreditOption:
    def test_create_then_update_moves_the_balance(
        self, cli_env: Database, client: TestClient
    ) -> None:
        org = mip_json("orgs", "create", "Acme", "--plan", "growth", "--prepaid-credit", "20.50")
        assert org["prepaid_credit_usd"] == "20.500000"
        project = mip_json("projects", "create", "Web", "--org", org["id"])
        key = mip_json("keys", "create", "--project", project["id"])
        ingest(cli_env, uuid.UUID(project["id"]), 60.0)  # 0.0018 USD

        def balance() -> float:
            response = client.get(
                f"/v1/projects/{project['id']}/balances", headers=token(key["key"])
            )
            amount: float = response.json()["balances"][0]["amount"]
            return amount

        assert balance() == 20.4982
        updated = mip_json("orgs", "update", org["id"], "--prepaid-credit", "100")
        assert updated["prepaid_credit_usd"] == "100.000000"
        assert balance() == 99.9982
        changed = [d for a, _, d in audit_actions(cli_env) if a == "organization.contract_changed"]
        assert changed[-1]["before"]["prepaid_credit_micros"] == 20_500_000
        assert changed[-1]["after"]["prepaid_credit_micros"] == 100_000_000

    @pytest.mark.parametrize("value", ["-1", "abc", "0.0000001"])
    def test_bad_amount_is_refused(self, cli_env: Database, value: str) -> None:
        result = runner.invoke(
            cli_app, ["orgs", "create", "Acme", "--plan", "growth", "--prepaid-credit", value]
        )
        assert result.exit_code != 0
        assert "USD amount" in str(result.exception)
