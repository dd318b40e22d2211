"""Migration 0008 (report keys on training sets), up and down, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from sqlalchemy import Engine, insert, inspect, select, update

import app.tables  # noqa: F401  (registers every table on Base.metadata)
from app.kit.db import Base, create_db_engine, utcnow
from migrations.run import alembic_config, downgrade, upgrade

NEW_COLUMNS = {
    "report_key_wrapped",
    "report_kek_version",
    "reports_removed_at",
    "reports_removed_reason",
}


def columns(url: str) -> set[str]:
    engine = create_db_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns("training_sets")}
    finally:
        engine.dispose()


def refuse_downgrade(engine: Engine, url: str) -> None:
    """The downgrade to 0007 fails, on a connection of ours (closed whatever happens)."""
    config = alembic_config(url)
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        with pytest.raises(RuntimeError, match="encrypted reports exist"):
            command.downgrade(config, "0007")


class TestReportKeysMigration:
    def test_a_set_built_before_keeps_plaintext_reports_and_the_downgrade_guards_keys(
        self, empty_db_url: str
    ) -> None:
        upgrade(empty_db_url, "0007")
        assert not columns(empty_db_url) & NEW_COLUMNS
        set_id = uuid.uuid4()
        table = Base.metadata.tables["training_sets"]
        engine = create_db_engine(empty_db_url)
        try:
            with engine.begin() as conn:  # only the columns 0007 has
                conn.execute(
                    insert(table).values(
                        id=set_id, name="before", version=1, status="ready", params={},
                        manifest_hash="0" * 64, validation={}, balance={}, sample_count=1,
                        eval_count=0, duration_seconds=1.0, created_by="test",
                        created_at=utcnow(),
                    )
                )  # fmt: skip
            upgrade(empty_db_url)
            assert columns(empty_db_url) >= NEW_COLUMNS
            with engine.connect() as conn:
                row = conn.execute(select(table).where(table.c.id == set_id)).one()
            # No key: the set's reports are the plaintext ones, until `encrypt-reports`.
            assert (row.name, row.report_key_wrapped, row.reports_removed_at) == (
                "before",
                None,
                None,
            )

            with engine.begin() as conn:
                conn.execute(
                    update(table)
                    .where(table.c.id == set_id)
                    .values(report_key_wrapped=b"\x01" * 60, report_kek_version="local-1")
                )
            refuse_downgrade(engine, empty_db_url)
            assert columns(empty_db_url) >= NEW_COLUMNS  # nothing was dropped

            with engine.begin() as conn:
                conn.execute(
                    update(table)
                    .where(table.c.id == set_id)
                    .values(report_key_wrapped=None, report_kek_version=None)
                )
            downgrade(empty_db_url, "0007")
            assert not columns(empty_db_url) & NEW_COLUMNS
            with engine.connect() as conn:
                names = list(conn.execute(select(table.c.name)).scalars())
            assert names == ["before"]
            upgrade(empty_db_url)
            assert columns(empty_db_url) >= NEW_COLUMNS
        finally:
            engine.dispose()
