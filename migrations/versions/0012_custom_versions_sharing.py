"""Custom models: the confirmed data set, vocabulary, versions, sharing, and their training jobs

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 00:00:00.000000
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None

# A request served by a custom model is priced at the plan's "custom" tier (the plan's "*"
# rate applies where a price book has no such row). Enterprise contracts name their own.
CUSTOM_TIER_PRICES = (("pay_as_you_go", 6_500), ("growth", 5_400))
CUSTOM_TIER_VERSION = "2026-12-custom"


def _price_book() -> sa.TableClause:
    return sa.table(
        "price_book",
        sa.column("id", sa.Uuid()),
        sa.column("version", sa.String()),
        sa.column("plan", sa.String()),
        sa.column("tier", sa.String()),
        sa.column("rate_micros_per_minute", sa.BigInteger()),
        sa.column("effective_from", sa.DateTime(timezone=True)),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )


def upgrade() -> None:
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    op.bulk_insert(
        _price_book(),
        [
            {
                "id": uuid.uuid4(),
                "version": CUSTOM_TIER_VERSION,
                "plan": plan,
                "tier": "custom",
                "rate_micros_per_minute": rate,
                "effective_from": start,
                "created_at": start,
            }
            for plan, rate in CUSTOM_TIER_PRICES
        ],
    )
    with op.batch_alter_table("custom_models") as batch:
        batch.add_column(sa.Column("data_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("data_files", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("data_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("data_confirmed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("data_confirmed_by", sa.String(length=100), nullable=True))
        batch.add_column(
            sa.Column("vocabulary", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch.add_column(sa.Column("published_version_id", sa.Uuid(), nullable=True))
    with op.batch_alter_table("custom_data_files") as batch:
        batch.add_column(sa.Column("organization_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_custom_data_files_organization_id_organizations"),
            "organizations",
            ["organization_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch.create_index(
            op.f("ix_custom_data_files_organization_id"), ["organization_id"], unique=False
        )
    op.create_table(
        "custom_model_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("package_uuid", sa.String(length=36), nullable=False),
        sa.Column("package_name", sa.String(length=128), nullable=False),
        sa.Column("package_version", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=300), nullable=False),
        sa.Column("blob_key", sa.String(length=512), nullable=False),
        sa.Column("package_sha256", sa.String(length=64), nullable=False),
        sa.Column("data_hash", sa.String(length=64), nullable=False),
        sa.Column("data_files", sa.Integer(), nullable=False),
        sa.Column("data_seconds", sa.Float(), nullable=False),
        sa.Column("vocabulary", sa.JSON(), nullable=False),
        sa.Column("base_model", sa.JSON(), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("test", sa.JSON(), nullable=False),
        sa.Column("report_blob_key", sa.String(length=512), nullable=True),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_by", sa.String(length=100), nullable=True),
        sa.CheckConstraint(
            "status IN ('candidate', 'published', 'retired', 'rejected')",
            name=op.f("ck_custom_model_versions_status"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["custom_models.id"],
            name=op.f("fk_custom_model_versions_model_id_custom_models"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_model_versions")),
        sa.UniqueConstraint(
            "model_id", "number", name=op.f("uq_custom_model_versions_model_id_number")
        ),
        sa.UniqueConstraint("package_uuid", name=op.f("uq_custom_model_versions_package_uuid")),
    )
    with op.batch_alter_table("custom_model_versions") as batch:
        batch.create_index(op.f("ix_custom_model_versions_model_id"), ["model_id"], unique=False)
    op.create_table(
        "custom_model_assignments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("can_view", sa.Boolean(), nullable=False),
        sa.Column("can_use", sa.Boolean(), nullable=False),
        sa.Column("can_contribute", sa.Boolean(), nullable=False),
        sa.Column("revoke_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "mode IN ('default', 'optional')", name=op.f("ck_custom_model_assignments_mode")
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["custom_models.id"],
            name=op.f("fk_custom_model_assignments_model_id_custom_models"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_custom_model_assignments_organization_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_model_assignments")),
        sa.UniqueConstraint(
            "model_id",
            "organization_id",
            name=op.f("uq_custom_model_assignments_model_id_organization_id"),
        ),
    )
    with op.batch_alter_table("custom_model_assignments") as batch:
        batch.create_index(op.f("ix_custom_model_assignments_model_id"), ["model_id"], unique=False)
        batch.create_index(
            op.f("ix_custom_model_assignments_organization_id"), ["organization_id"], unique=False
        )
    with op.batch_alter_table("custom_uploads") as batch:
        # A received upload is read after the last PATCH is answered: "validating" till then.
        batch.drop_constraint(op.f("ck_custom_uploads_status"), type_="check")
        batch.create_check_constraint(
            "status", "status IN ('uploading', 'validating', 'complete', 'failed', 'terminated')"
        )
    with op.batch_alter_table("training_jobs") as batch:
        batch.alter_column("training_set_id", existing_type=sa.Uuid(), nullable=True)
        batch.add_column(sa.Column("custom_model_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_training_jobs_custom_model_id_custom_models"),
            "custom_models",
            ["custom_model_id"],
            ["id"],
        )
        batch.create_index(
            op.f("ix_training_jobs_custom_model_id"), ["custom_model_id"], unique=False
        )
        batch.create_check_constraint(
            "one_subject", "(training_set_id IS NULL) <> (custom_model_id IS NULL)"
        )


def downgrade() -> None:
    with op.batch_alter_table("custom_uploads") as batch:
        batch.drop_constraint(op.f("ck_custom_uploads_status"), type_="check")
        batch.create_check_constraint(
            "status", "status IN ('uploading', 'complete', 'failed', 'terminated')"
        )
    book = _price_book()
    op.execute(book.delete().where(book.c.version == CUSTOM_TIER_VERSION))
    with op.batch_alter_table("training_jobs") as batch:
        batch.drop_constraint(op.f("ck_training_jobs_one_subject"), type_="check")
        batch.drop_index(op.f("ix_training_jobs_custom_model_id"))
        batch.drop_constraint(
            op.f("fk_training_jobs_custom_model_id_custom_models"), type_="foreignkey"
        )
        batch.drop_column("custom_model_id")
        batch.alter_column("training_set_id", existing_type=sa.Uuid(), nullable=False)
    with op.batch_alter_table("custom_model_assignments") as batch:
        batch.drop_index(op.f("ix_custom_model_assignments_organization_id"))
        batch.drop_index(op.f("ix_custom_model_assignments_model_id"))
    op.drop_table("custom_model_assignments")
    with op.batch_alter_table("custom_model_versions") as batch:
        batch.drop_index(op.f("ix_custom_model_versions_model_id"))
    op.drop_table("custom_model_versions")
    with op.batch_alter_table("custom_data_files") as batch:
        batch.drop_index(op.f("ix_custom_data_files_organization_id"))
        batch.drop_constraint(
            op.f("fk_custom_data_files_organization_id_organizations"), type_="foreignkey"
        )
        batch.drop_column("organization_id")
    with op.batch_alter_table("custom_models") as batch:
        for column in (
            "published_version_id",
            "vocabulary",
            "data_confirmed_by",
            "data_confirmed_at",
            "data_seconds",
            "data_files",
            "data_hash",
        ):
            batch.drop_column(column)
