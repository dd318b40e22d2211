"""Migrations run on both backends, and down to base and up again (PostgreSQL included)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from app.kit.db import Base, create_db_engine
from app.kit.migrate import current_heads, downgrade, upgrade
from tests.conftest import DEFAULT_PG


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path, worker_id: str) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.sqlite3'}"
        return
    admin = make_url(os.environ.get("MIP_TEST_POSTGRES_URL", DEFAULT_PG)).set(
        drivername="postgresql+psycopg"
    )
    name = f"mip_migrate_{os.getpid()}_{worker_id}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield admin.set(database=name).render_as_string(hide_password=False)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_db_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


class TestMigrations:
    def test_upgrade_creates_every_table(self, empty_db_url: str) -> None:
        upgrade(empty_db_url)
        assert _tables(empty_db_url) == set(Base.metadata.tables)

    def test_downgrade_to_base_and_upgrade_again(self, empty_db_url: str) -> None:
        upgrade(empty_db_url)
        downgrade(empty_db_url, "base")
        assert _tables(empty_db_url) == set()
        upgrade(empty_db_url)
        assert _tables(empty_db_url) == set(Base.metadata.tables)
        engine = create_db_engine(empty_db_url)
        with engine.connect() as conn:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            prices = conn.execute(text("SELECT count(*) FROM price_book")).scalar()
        engine.dispose()
        assert revision in current_heads()
        assert prices == 2  # seed rows come back with the upgrade

    def test_schema_matches_the_tables(self, empty_db_url: str) -> None:
        """No model change without a migration: autogenerate finds nothing to do."""
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        upgrade(empty_db_url)
        engine = create_db_engine(empty_db_url)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            diff = compare_metadata(context, Base.metadata)
        engine.dispose()
        assert diff == []
