"""Model versions trained on a tainted training set are flagged

An erasure (or a retention purge) taints every training set that held what it removed; the
model versions trained on such a set now carry when and why they were flagged, and a flagged
version cannot be promoted.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 20:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("tainted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("taint_reason", sa.String(length=1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("taint_reason")
        batch.drop_column("tainted_at")
