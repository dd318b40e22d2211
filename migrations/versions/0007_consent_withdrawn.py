"""Consent withdrawn by an erasure: organizations and projects, and the ledger's new source

An erasure may also withdraw consent: from then on every request of that organization (or
project) is opted out, and its ledger row says why (``opt_out_source = 'consent_withdrawn'``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 20:20:00.000000
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

_CHECK = "ck_ledger_entries_opt_out_source"
_SOURCES = "opt_out_source IN ('request', 'contract', 'default', 'consent_withdrawn')"
_OLD_SOURCES = "opt_out_source IN ('request', 'contract', 'default')"


def _ledger_sources(condition: str, length: int) -> None:
    """The source column's CHECK and width ('consent_withdrawn' is 17 characters)."""
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f(_CHECK), "ledger_entries", type_="check")
        op.alter_column("ledger_entries", "opt_out_source", type_=sa.String(length))
        op.create_check_constraint(op.f(_CHECK), "ledger_entries", condition)
        return
    # SQLite rebuilds the table to change a CHECK; its triggers go with the old table.
    with op.batch_alter_table("ledger_entries", recreate="always") as batch:
        batch.drop_constraint(op.f(_CHECK), type_="check")
        batch.alter_column("opt_out_source", type_=sa.String(length))
        batch.create_check_constraint(op.f(_CHECK), condition)
    append_only = importlib.import_module("migrations.versions.0005_ledger_append_only")
    for statement in append_only.SQLITE_TRIGGERS:
        op.execute(statement)


def upgrade() -> None:
    for table in ("organizations", "projects"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("consent_withdrawn_at", sa.DateTime(timezone=True), nullable=True)
            )
    _ledger_sources(_SOURCES, 32)


def downgrade() -> None:
    # Rows recorded with the new source cannot go back under the old rule, and the ledger is
    # append-only: refuse rather than rewrite billing evidence.
    used = op.get_bind().execute(
        sa.text("SELECT count(*) FROM ledger_entries WHERE opt_out_source = 'consent_withdrawn'")
    )
    if used.scalar():
        raise RuntimeError(
            "ledger rows opted out by a consent withdrawal exist; this revision cannot be undone"
        )
    _ledger_sources(_OLD_SOURCES, 16)
    for table in ("projects", "organizations"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("consent_withdrawn_at")
