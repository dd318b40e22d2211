"""Custom models' training data: each model's data key, and its uploaded pairs

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 23:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("custom_models") as batch:
        batch.add_column(sa.Column("data_key_wrapped", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("data_kek_version", sa.String(length=256), nullable=True))
    op.create_table(
        "custom_data_files",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("speaker", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("audio_format", sa.String(length=16), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("sample_rate", sa.Integer(), nullable=True),
        sa.Column("channels", sa.Integer(), nullable=True),
        sa.Column("snr_db", sa.Float(), nullable=True),
        sa.Column("chars_per_second", sa.Float(), nullable=True),
        sa.Column("loss_per_char", sa.Float(), nullable=True),
        sa.Column("audio_sha256", sa.String(length=64), nullable=True),
        sa.Column("audio_bytes", sa.BigInteger(), nullable=False),
        sa.Column("audio_blob_key", sa.String(length=512), nullable=True),
        sa.Column("transcript_blob_key", sa.String(length=512), nullable=True),
        sa.Column("uploaded_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('accepted', 'rejected', 'removed')",
            name=op.f("ck_custom_data_files_status"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["custom_models.id"],
            name=op.f("fk_custom_data_files_model_id_custom_models"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_data_files")),
    )
    with op.batch_alter_table("custom_data_files") as batch:
        batch.create_index(
            op.f("ix_custom_data_files_audio_sha256"), ["audio_sha256"], unique=False
        )
        batch.create_index(op.f("ix_custom_data_files_model_id"), ["model_id"], unique=False)


def downgrade() -> None:
    held = op.get_bind().execute(sa.text("SELECT count(*) FROM custom_data_files"))
    if held.scalar():
        raise RuntimeError(
            "custom models hold training data; this revision cannot be undone without losing it"
        )
    with op.batch_alter_table("custom_data_files") as batch:
        batch.drop_index(op.f("ix_custom_data_files_model_id"))
        batch.drop_index(op.f("ix_custom_data_files_audio_sha256"))
    op.drop_table("custom_data_files")
    with op.batch_alter_table("custom_models") as batch:
        batch.drop_column("data_kek_version")
        batch.drop_column("data_key_wrapped")
