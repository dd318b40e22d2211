"""Reseller keys and custom models

An API key now belongs to exactly one of a project (project key), a role (staff key) or a
reseller (reseller key: its own custom models and organizations). ``custom_models`` holds the
resellers' models, their names unique per reseller and their base as it was at creation.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 22:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

_ONE_OWNER = (
    "(CASE WHEN project_id IS NULL THEN 0 ELSE 1 END) + "
    "(CASE WHEN role IS NULL THEN 0 ELSE 1 END) + "
    "(CASE WHEN reseller_id IS NULL THEN 0 ELSE 1 END) = 1"
)
_PROJECT_XOR_ROLE = "(project_id IS NULL) <> (role IS NULL)"
_STATUSES = (
    "collecting",
    "validating",
    "ready_to_train",
    "training",
    "testing",
    "published",
    "failed",
    "archived",
)


def upgrade() -> None:
    with op.batch_alter_table("api_keys", recreate="always") as batch:
        batch.add_column(sa.Column("reseller_id", sa.Uuid(), nullable=True))
        batch.drop_constraint(op.f("ck_api_keys_project_xor_role"), type_="check")
        batch.create_check_constraint(op.f("ck_api_keys_one_owner"), _ONE_OWNER)
        batch.create_foreign_key(
            op.f("fk_api_keys_reseller_id_resellers"),
            "resellers",
            ["reseller_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch.create_index(op.f("ix_api_keys_reseller_id"), ["reseller_id"], unique=False)

    op.create_table(
        "custom_models",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("domain", sa.String(length=64), nullable=False),
        sa.Column("base_model_name", sa.String(length=128), nullable=False),
        sa.Column("base_model_version", sa.String(length=64), nullable=False),
        sa.Column("base_model_uuid", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ({})".format(", ".join(f"'{s}'" for s in _STATUSES)),
            name=op.f("ck_custom_models_status"),
        ),
        sa.ForeignKeyConstraint(
            ["reseller_id"],
            ["resellers.id"],
            name=op.f("fk_custom_models_reseller_id_resellers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_models")),
        sa.UniqueConstraint("reseller_id", "name", name=op.f("uq_custom_models_reseller_id_name")),
    )
    with op.batch_alter_table("custom_models") as batch:
        batch.create_index(op.f("ix_custom_models_reseller_id"), ["reseller_id"], unique=False)


def downgrade() -> None:
    # Reseller keys cannot exist under the old rule; refuse rather than delete credentials.
    held = op.get_bind().execute(
        sa.text("SELECT count(*) FROM api_keys WHERE reseller_id IS NOT NULL")
    )
    if held.scalar():
        raise RuntimeError("reseller keys exist; revoke and delete them before downgrading")
    with op.batch_alter_table("custom_models") as batch:
        batch.drop_index(op.f("ix_custom_models_reseller_id"))
    op.drop_table("custom_models")
    with op.batch_alter_table("api_keys", recreate="always") as batch:
        batch.drop_index(op.f("ix_api_keys_reseller_id"))
        batch.drop_constraint(op.f("fk_api_keys_reseller_id_resellers"), type_="foreignkey")
        batch.drop_constraint(op.f("ck_api_keys_one_owner"), type_="check")
        batch.create_check_constraint(op.f("ck_api_keys_project_xor_role"), _PROJECT_XOR_ROLE)
        batch.drop_column("reseller_id")
