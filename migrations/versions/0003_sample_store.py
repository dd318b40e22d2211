"""sample store: catalog, data keys, sampling rates, erasure requests; the sampling decision

Every existing ledger row is recorded as not selected (nothing was sampled before this
revision).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 11:07:31.593070
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "data_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("kek_provider", sa.String(length=16), nullable=False),
        sa.Column("kek_version", sa.String(length=256), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rewrapped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('active', 'retired', 'destroyed')", name=op.f("ck_data_keys_status")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_data_keys_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_keys")),
        sa.UniqueConstraint(
            "organization_id", "version", name=op.f("uq_data_keys_organization_id_version")
        ),
    )
    op.create_table(
        "erasure_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stores", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "scope IN ('organization', 'project')", name=op.f("ck_erasure_requests_scope")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'in_progress', 'done', 'failed')",
            name=op.f("ck_erasure_requests_status"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_erasure_requests_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_requests")),
    )
    with op.batch_alter_table("erasure_requests", schema=None) as batch_op:
        batch_op.create_index("ix_erasure_requests_org", ["organization_id"], unique=False)

    op.create_table(
        "sampling_rates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope_key", sa.String(length=200), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("model_name", sa.String(length=128), nullable=True),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.CheckConstraint(
            "organization_id IS NOT NULL OR model_name IS NOT NULL",
            name=op.f("ck_sampling_rates_has_scope"),
        ),
        sa.CheckConstraint("rate >= 0 AND rate <= 1", name=op.f("ck_sampling_rates_rate")),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_sampling_rates_organization_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sampling_rates")),
        sa.UniqueConstraint("scope_key", name=op.f("uq_sampling_rates_scope_key")),
    )
    op.create_table(
        "samples",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("ledger_entry_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retention_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("legal_hold", sa.Boolean(), nullable=False),
        sa.Column("audio_blob_key", sa.String(length=300), nullable=False),
        sa.Column("transcript_blob_key", sa.String(length=300), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("audio_bytes", sa.BigInteger(), nullable=False),
        sa.Column("transcript_bytes", sa.BigInteger(), nullable=False),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=False),
        sa.Column("audio_format", sa.String(length=16), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("sample_rate", sa.Integer(), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=32), nullable=True),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("accent", sa.String(length=64), nullable=True),
        sa.Column("accent_source", sa.String(length=16), nullable=True),
        sa.Column("age_group", sa.String(length=64), nullable=True),
        sa.Column("age_group_source", sa.String(length=16), nullable=True),
        sa.Column("sex", sa.String(length=64), nullable=True),
        sa.Column("sex_source", sa.String(length=16), nullable=True),
        sa.Column("noise_type", sa.String(length=64), nullable=True),
        sa.Column("noise_type_source", sa.String(length=16), nullable=True),
        sa.Column("snr_db", sa.Float(), nullable=True),
        sa.Column("snr_db_source", sa.String(length=16), nullable=True),
        sa.Column("environment", sa.String(length=64), nullable=True),
        sa.Column("environment_source", sa.String(length=16), nullable=True),
        sa.Column("domain", sa.String(length=64), nullable=True),
        sa.Column("domain_source", sa.String(length=16), nullable=True),
        sa.Column("labeled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("labeled_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_samples_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_samples_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_samples")),
        sa.UniqueConstraint(
            "project_id", "request_id", name=op.f("uq_samples_project_id_request_id")
        ),
    )
    with op.batch_alter_table("samples", schema=None) as batch_op:
        batch_op.create_index(
            "ix_samples_org_created", ["organization_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_samples_retention_until", ["retention_until"], unique=False)

    # Plain ADD COLUMN on both backends (no batch copy of the ledger).
    op.add_column(
        "ledger_entries",
        sa.Column("sample_selected", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("ledger_entries", sa.Column("sampling_rate", sa.Float(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE ledger_entries DROP COLUMN sampling_rate")
    op.execute("ALTER TABLE ledger_entries DROP COLUMN sample_selected")

    with op.batch_alter_table("samples", schema=None) as batch_op:
        batch_op.drop_index("ix_samples_retention_until")
        batch_op.drop_index("ix_samples_org_created")

    op.drop_table("samples")
    op.drop_table("sampling_rates")
    with op.batch_alter_table("erasure_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_erasure_requests_org")

    op.drop_table("erasure_requests")
    op.drop_table("data_keys")
