"""Prepaid credit per organization (the Deepgram ``/balances`` endpoints).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # A plain ADD COLUMN on both backends: existing organizations start with no credit.
    op.add_column(
        "organizations",
        sa.Column(
            "prepaid_credit_micros", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
    )


def downgrade() -> None:
    # SQLite (3.35+) drops a column in place; a batch copy would have to drop and recreate
    # "organizations", which the RESTRICT foreign keys of projects and ledger rows forbid.
    op.execute("ALTER TABLE organizations DROP COLUMN prepaid_credit_micros")
