"""Alembic environment: the URL comes from the caller (``migrations.run``) or the settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import app.tables  # noqa: F401  (registers every table on Base.metadata)
from app.kit.db import Base, create_db_engine
from app.kit.settings import get_settings

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or get_settings().effective_database_url
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:  # a refused migration must not leave a pooled connection open
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Offline migrations are not supported; run `mip migrate`.")
run_migrations_online()
