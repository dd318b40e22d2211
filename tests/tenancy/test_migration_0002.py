"""Migration 0002 (prepaid credit) goes up and down with data in place, on both backends."""

from __future__ import annotations

import uuid

from sqlalchemy import inspect, text

from app.kit.db import create_db_engine
from migrations.run import downgrade, upgrade


def _org_columns(url: str) -> set[str]:
    engine = create_db_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns("organizations")}
    finally:
        engine.dispose()


def _insert_org_with_project(url: str) -> uuid.UUID:
    org_id = uuid.uuid4()
    engine = create_db_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO organizations (id, name, plan, contract_opt_out, retention_days, "
                "created_at) VALUES (:id, 'Acme', 'growth', false, 30, CURRENT_TIMESTAMP)"
            ),
            {"id": org_id.hex if conn.dialect.name == "sqlite" else org_id},
        )
        conn.execute(
            text(
                "INSERT INTO projects (id, organization_id, name, created_at) "
                "VALUES (:id, :org, 'Web', CURRENT_TIMESTAMP)"
            ),
            {
                "id": uuid.uuid4().hex if conn.dialect.name == "sqlite" else uuid.uuid4(),
                "org": org_id.hex if conn.dialect.name == "sqlite" else org_id,
            },
        )
    engine.dispose()
    return org_id


def _scalar(url: str, sql: str) -> object:
    engine = create_db_engine(url)
    with engine.connect() as conn:
        value = conn.execute(text(sql)).scalar()
    engine.dispose()
    return value


class TestPrepaidCreditMigration:
    def test_upgrade_keeps_rows_with_zero_credit_and_downgrade_drops_column(
        self, empty_db_url: str
    ) -> None:
        upgrade(empty_db_url, "0001")
        assert "prepaid_credit_micros" not in _org_columns(empty_db_url)
        _insert_org_with_project(empty_db_url)

        upgrade(empty_db_url, "0002")
        assert "prepaid_credit_micros" in _org_columns(empty_db_url)
        assert _scalar(empty_db_url, "SELECT prepaid_credit_micros FROM organizations") == 0
        # BIGINT: a trillion dollars in micro-dollars fits.
        engine = create_db_engine(empty_db_url)
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE organizations SET prepaid_credit_micros = 1000000000000000000")
            )
        engine.dispose()
        assert _scalar(empty_db_url, "SELECT prepaid_credit_micros FROM organizations") == 10**18

        # The projects' RESTRICT foreign keys do not stand in the way of the downgrade.
        downgrade(empty_db_url, "0001")
        assert "prepaid_credit_micros" not in _org_columns(empty_db_url)
        assert _scalar(empty_db_url, "SELECT count(*) FROM projects") == 1
        assert _scalar(empty_db_url, "SELECT version_num FROM alembic_version") == "0001"

        upgrade(empty_db_url, "0002")
        assert _scalar(empty_db_url, "SELECT prepaid_credit_micros FROM organizations") == 0
