"""Training-set reports are encrypted under a key of their own and go with an erasure

Each set's reports (validation page, quarantine, balance, plots: sample and organization ids,
accents, ages) are sealed under the set's report key, kept here wrapped by the KEK. An erasure
or a purge that taints the set destroys the key and deletes the reports, and says when and why.

Sets built before this revision keep plaintext reports and no key: a migration cannot reach the
blob store, so ``mip curate encrypt-reports`` encrypts them afterwards.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("training_sets") as batch:
        batch.add_column(sa.Column("report_key_wrapped", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("report_kek_version", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("reports_removed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("reports_removed_reason", sa.String(length=1000), nullable=True))


def downgrade() -> None:
    # Dropping the wrapped keys would make every encrypted report unreadable for good: refuse
    # rather than shred reports nobody asked to erase.
    sealed = op.get_bind().execute(
        sa.text("SELECT count(*) FROM training_sets WHERE report_key_wrapped IS NOT NULL")
    )
    if sealed.scalar():
        raise RuntimeError(
            "training sets with encrypted reports exist; downgrading would destroy their keys"
        )
    with op.batch_alter_table("training_sets") as batch:
        batch.drop_column("reports_removed_reason")
        batch.drop_column("reports_removed_at")
        batch.drop_column("report_kek_version")
        batch.drop_column("report_key_wrapped")
