"""Migrations run on both backends, and down to base and up again (PostgreSQL included)."""

from __future__ import annotations

from sqlalchemy import inspect, text

from app.kit.db import Base, create_db_engine
from migrations.run import current_heads, downgrade, upgrade


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
        assert prices == 4  # seed rows (the plans' rates and their custom tier) come back

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
