"""Migration 0002 (prepaid credit) goes up and down with data in place, on both backends."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from app.kit.db import create_db_engine
from app.kit.migrate import downgrade, upgrade
from tests.conftest import DEFAULT_PG


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path, worker_id: str) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.sqlite3'}"
        return
    admin = make_url(os.environ.get("MIP_TEST_POSTGRES_URL", DEFAULT_PG)).set(
        drivername="postgresql+psycopg"
    )
    name = f"mip_mig0002_{os.getpid()}_{worker_id}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield admin.set(database=name).render_as_string(hide_password=False)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


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
        self, empty_url: str
    ) -> None:
        upgrade(empty_url, "0001")
        assert "prepaid_credit_micros" not in _org_columns(empty_url)
        _insert_org_with_project(empty_url)

        upgrade(empty_url, "0002")
        assert "prepaid_credit_micros" in _org_columns(empty_url)
        assert _scalar(empty_url, "SELECT prepaid_credit_micros FROM organizations") == 0
        # BIGINT: a trillion dollars in micro-dollars fits.
        engine = create_db_engine(empty_url)
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE organizations SET prepaid_credit_micros = 1000000000000000000")
            )
        engine.dispose()
        assert _scalar(empty_url, "SELECT prepaid_credit_micros FROM organizations") == 10**18

        # The projects' RESTRICT foreign keys do not stand in the way of the downgrade.
        downgrade(empty_url, "0001")
        assert "prepaid_credit_micros" not in _org_columns(empty_url)
        assert _scalar(empty_url, "SELECT count(*) FROM projects") == 1
        assert _scalar(empty_url, "SELECT version_num FROM alembic_version") == "0001"

        upgrade(empty_url, "0002")
        assert _scalar(empty_url, "SELECT prepaid_credit_micros FROM organizations") == 0
