"""training sets, training jobs, model versions; sample references and fingerprints

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 14:12:03.783320
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "training_sets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("manifest_hash", sa.String(length=64), nullable=False),
        sa.Column("validation", sa.JSON(), nullable=False),
        sa.Column("balance", sa.JSON(), nullable=False),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("eval_count", sa.Integer(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tainted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("taint_reason", sa.String(length=1000), nullable=True),
        sa.CheckConstraint("status IN ('ready', 'tainted')", name=op.f("ck_training_sets_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_sets")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_training_sets_name_version")),
    )
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("base_model", sa.String(length=200), nullable=False),
        sa.Column("training_set_id", sa.Uuid(), nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_training_jobs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["training_set_id"],
            ["training_sets.id"],
            name=op.f("fk_training_jobs_training_set_id_training_sets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_jobs")),
    )
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_training_jobs_status_created", ["status", "created_at"], unique=False
        )

    op.create_table(
        "training_set_samples",
        sa.Column("training_set_id", sa.Uuid(), nullable=False),
        sa.Column("sample_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("split", sa.String(length=8), nullable=False),
        sa.CheckConstraint(
            "split IN ('train', 'eval')", name=op.f("ck_training_set_samples_split")
        ),
        sa.ForeignKeyConstraint(
            ["training_set_id"],
            ["training_sets.id"],
            name=op.f("fk_training_set_samples_training_set_id_training_sets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "training_set_id", "sample_id", name=op.f("pk_training_set_samples")
        ),
    )
    with op.batch_alter_table("training_set_samples", schema=None) as batch_op:
        batch_op.create_index(
            "ix_training_set_samples_organization_id", ["organization_id"], unique=False
        )
        batch_op.create_index("ix_training_set_samples_sample_id", ["sample_id"], unique=False)

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("uuid", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=False),
        sa.Column("blob_key", sa.String(length=300), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("training_set_id", sa.Uuid(), nullable=True),
        sa.Column("base_model", sa.String(length=200), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("promoted_by", sa.String(length=100), nullable=True),
        sa.Column("replaced_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "status IN ('candidate', 'promoted', 'demoted', 'rejected')",
            name=op.f("ck_model_versions_status"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["training_jobs.id"], name=op.f("fk_model_versions_job_id_training_jobs")
        ),
        sa.ForeignKeyConstraint(
            ["training_set_id"],
            ["training_sets.id"],
            name=op.f("fk_model_versions_training_set_id_training_sets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_model_versions_name_version")),
        sa.UniqueConstraint("uuid", name=op.f("uq_model_versions_uuid")),
    )
    op.create_index(
        "uq_model_versions_promoted_name",
        "model_versions",
        ["name"],
        unique=True,
        postgresql_where=sa.text("status = 'promoted'"),
        sqlite_where=sa.text("status = 'promoted'"),
    )
    op.create_table(
        "training_job_logs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["training_jobs.id"],
            name=op.f("fk_training_job_logs_job_id_training_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_job_logs")),
    )
    with op.batch_alter_table("training_job_logs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_training_job_logs_job_id"), ["job_id"], unique=False)

    with op.batch_alter_table("samples", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reference_blob_key", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("reference_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("reference_by", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("audio_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("samples", schema=None) as batch_op:
        batch_op.drop_column("audio_sha256")
        batch_op.drop_column("reference_by")
        batch_op.drop_column("reference_at")
        batch_op.drop_column("reference_blob_key")

    with op.batch_alter_table("training_job_logs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_training_job_logs_job_id"))

    op.drop_table("training_job_logs")
    op.drop_index("uq_model_versions_promoted_name", table_name="model_versions")
    op.drop_table("model_versions")
    with op.batch_alter_table("training_set_samples", schema=None) as batch_op:
        batch_op.drop_index("ix_training_set_samples_sample_id")
        batch_op.drop_index("ix_training_set_samples_organization_id")

    op.drop_table("training_set_samples")
    with op.batch_alter_table("training_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_training_jobs_status_created")

    op.drop_table("training_jobs")
    op.drop_table("training_sets")
