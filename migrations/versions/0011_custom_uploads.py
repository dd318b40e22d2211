"""Resumable (tus 1.0) uploads of custom models' training archives

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 23:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "custom_uploads",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("upload_length", sa.BigInteger(), nullable=False),
        sa.Column("upload_offset", sa.BigInteger(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("upload_metadata", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('uploading', 'complete', 'failed', 'terminated')",
            name=op.f("ck_custom_uploads_status"),
        ),
        sa.CheckConstraint(
            "upload_offset >= 0 AND upload_offset <= upload_length",
            name=op.f("ck_custom_uploads_offset"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["custom_models.id"],
            name=op.f("fk_custom_uploads_model_id_custom_models"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_uploads")),
    )
    with op.batch_alter_table("custom_uploads") as batch:
        batch.create_index(op.f("ix_custom_uploads_model_id"), ["model_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("custom_uploads") as batch:
        batch.drop_index(op.f("ix_custom_uploads_model_id"))
    op.drop_table("custom_uploads")
