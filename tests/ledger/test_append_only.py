"""The ledger cannot be quietly changed: append-only in the database on both backends, each
closed month sealed with a digest in the audit log, and the seals re-checked."""

from __future__ import annotations

import importlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from app.cli import app as cli
from app.ledger.repository import LEDGER_COLUMNS
from app.ledger.seals import seal_period, verify_seals
from app.ledger.service import close_period
from app.tables import AuditEntry, LedgerEntry
from tests.conftest import Database, Tenant, make_staff_key
from tests.kit.test_http import assert_error
from tests.ledger.helpers import as_database_owner, event

URL = "/v1/governance/ledger/events"


@pytest.fixture
def recorded(client: TestClient, tenant: Tenant, admin_headers: dict[str, str]) -> None:
    events = [
        event(tenant.project_id, f"r{i}", mip_opt_out="true" if i % 2 else None) for i in range(4)
    ]
    response = client.post(URL, json={"events": events}, headers=admin_headers)
    assert response.status_code == 200, response.text


class TestAppendOnly:
    @pytest.mark.usefixtures("recorded")
    @pytest.mark.parametrize(
        ("column", "value"),
        [
            ("mip_opt_out", False),  # flipping the opt-out the "nothing kept" evidence rests on
            ("amount_micros", 0),
            ("sample_selected", True),
            ("request_id", "other"),
        ],
    )
    def test_an_update_is_refused_by_the_database(
        self, db: Database, column: str, value: object
    ) -> None:
        with pytest.raises(DBAPIError, match="append-only"), db.session() as session:
            session.execute(update(LedgerEntry).values({column: value}))
        with db.session() as session:
            rows = session.scalars(select(LedgerEntry)).all()
        assert sorted(r.mip_opt_out for r in rows) == [False, False, True, True]

    @pytest.mark.usefixtures("recorded")
    def test_a_delete_is_refused_by_the_database(self, db: Database) -> None:
        with pytest.raises(DBAPIError, match="append-only"), db.session() as session:
            session.execute(delete(LedgerEntry))
        with db.session() as session:
            assert len(session.scalars(select(LedgerEntry)).all()) == 4

    @pytest.mark.usefixtures("recorded")
    def test_sample_kept_may_only_go_from_false_to_true(self, db: Database) -> None:
        with db.session() as session:
            session.execute(update(LedgerEntry).values(sample_kept=True))
        with pytest.raises(DBAPIError, match="append-only"), db.session() as session:
            session.execute(update(LedgerEntry).values(sample_kept=False))
        with db.session() as session:
            assert all(r.sample_kept for r in session.scalars(select(LedgerEntry)))

    def test_the_sqlite_trigger_names_every_column_but_sample_kept(self) -> None:
        # A migration that adds a ledger column must add it to the frozen list too.
        migration = importlib.import_module("migrations.versions.0005_ledger_append_only")
        frozen = {name.strip() for name in migration.FROZEN_COLUMNS.split(",")}
        assert frozen == set(LEDGER_COLUMNS) - {"sample_kept"}


class TestSeals:
    @pytest.mark.usefixtures("recorded")
    def test_closing_a_month_records_its_seal(self, db: Database) -> None:
        with db.session() as session:
            close_period(session, period="2026-03", actor="test")
        with db.session() as session:
            entry = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "billing_period.closed")
            ).one()
            expected = seal_period(session, "2026-03")
        assert entry.details["rows"] == 4
        assert entry.details["digest"] == expected.digest
        assert entry.details["amount_micros"] == expected.amount_micros > 0

    @pytest.mark.usefixtures("recorded")
    def test_an_edit_around_the_trigger_is_found(self, client: TestClient, db: Database) -> None:
        with db.session() as session:
            close_period(session, period="2026-03", actor="test")
        auditor = make_staff_key(db, "auditor")
        assert client.get("/v1/governance/billing/seals", headers=auditor).json()["ok"] is True
        with as_database_owner(db), db.session() as session:
            session.execute(
                update(LedgerEntry)
                .where(LedgerEntry.request_id == "r1")
                .values(mip_opt_out=False, opt_out_source="default")
            )
        with db.session() as session:
            (check,) = verify_seals(session)
        assert not check.ok
        assert check.actual.rows == check.recorded.rows == 4
        body = client.get("/v1/governance/billing/seals", headers=auditor).json()
        assert body["ok"] is False
        assert body["periods"][0]["period"] == "2026-03"

    @pytest.mark.usefixtures("recorded")
    def test_a_deleted_row_is_found_and_the_cli_exits_1(
        self, db: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with db.session() as session:
            close_period(session, period="2026-03", actor="test")
        with as_database_owner(db), db.session() as session:
            session.execute(delete(LedgerEntry).where(LedgerEntry.request_id == "r0"))
        monkeypatch.setenv("MIP_DATABASE_URL", db.url)
        from app.kit.settings import get_settings

        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(cli, ["billing", "verify-seals", "--json"])
        finally:
            get_settings.cache_clear()
        assert result.exit_code == 1, result.output
        assert '"rows": 3' in result.stdout

    def test_only_billing_auditor_and_admin_read_seals(
        self, client: TestClient, db: Database, tenant: Tenant
    ) -> None:
        for role in ("billing", "auditor", "admin"):
            response = client.get("/v1/governance/billing/seals", headers=make_staff_key(db, role))
            assert response.json() == {"ok": True, "periods": []}
        dataops = make_staff_key(db, "dataops")
        assert_error(
            client.get("/v1/governance/billing/seals", headers=dataops),
            403,
            "INSUFFICIENT_PERMISSIONS",
        )
        assert_error(
            client.get("/v1/governance/billing/seals", headers=tenant.headers),
            403,
            "INSUFFICIENT_PERMISSIONS",
        )
