"""foundation: tenancy, ledger, price book, periods, audit

The audit log is append-only in the database itself (triggers on both backends), and the
price book starts with the list rates below (micro-dollars per audio minute, any tier).

Revision ID: 0001
Revises:
Create Date: 2026-11-21 09:21:28.452405
"""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from alembic import op

SEED_PRICE_BOOK = (
    ("pay_as_you_go", "*", 4_300),
    ("growth", "*", 3_600),
)
SEED_VERSION = "2026-01"

_PG_APPEND_ONLY = """
CREATE FUNCTION audit_entries_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_entries is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_entries_no_update BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only();
"""
_SQLITE_APPEND_ONLY = (
    "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
    "CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END",
)

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=64), nullable=False),
        sa.Column("target_id", sa.String(length=128), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_entries")),
        sa.UniqueConstraint("entry_hash", name=op.f("uq_audit_entries_entry_hash")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entries_action"), ["action"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_entries_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "billing_periods",
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(length=100), nullable=True),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_billing_periods_status")),
        sa.PrimaryKeyConstraint("period", name=op.f("pk_billing_periods")),
    )
    op.create_table(
        "price_book",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("plan", sa.String(length=32), nullable=False),
        sa.Column("tier", sa.String(length=64), nullable=False),
        sa.Column("rate_micros_per_minute", sa.BigInteger(), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "rate_micros_per_minute >= 0", name=op.f("ck_price_book_rate_non_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_book")),
        sa.UniqueConstraint(
            "plan", "tier", "effective_from", name=op.f("uq_price_book_plan_tier_effective_from")
        ),
    )
    op.create_table(
        "resellers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resellers")),
    )
    op.create_table(
        "organizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("plan", sa.String(length=32), nullable=False),
        sa.Column("reseller_id", sa.Uuid(), nullable=True),
        sa.Column("contract_rates", sa.JSON(), nullable=True),
        sa.Column("contract_opt_out", sa.Boolean(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "plan IN ('pay_as_you_go', 'growth', 'enterprise')", name=op.f("ck_organizations_plan")
        ),
        sa.CheckConstraint("retention_days > 0", name=op.f("ck_organizations_retention_days")),
        sa.ForeignKeyConstraint(
            ["reseller_id"],
            ["resellers.id"],
            name=op.f("fk_organizations_reseller_id_resellers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organizations")),
    )
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_organizations_reseller_id"), ["reseller_id"], unique=False
        )

    op.create_table(
        "projects",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_projects_organization_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_projects_organization_id"), ["organization_id"], unique=False
        )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("comment", sa.String(length=500), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.CheckConstraint(
            "role IS NULL OR role IN ('admin', 'billing', 'dataops', 'auditor')",
            name=op.f("ck_api_keys_role"),
        ),
        sa.CheckConstraint(
            "(project_id IS NULL) <> (role IS NULL)", name=op.f("ck_api_keys_project_xor_role")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_api_keys_project_id_projects"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_project_id"), ["project_id"], unique=False)

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("endpoint", sa.String(length=128), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("model_uuid", sa.String(length=64), nullable=True),
        sa.Column("model_version", sa.String(length=64), nullable=True),
        sa.Column("model_tier", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=32), nullable=True),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("mip_opt_out", sa.Boolean(), nullable=False),
        sa.Column("opt_out_source", sa.String(length=16), nullable=False),
        sa.Column("sample_kept", sa.Boolean(), nullable=False),
        sa.Column("plan", sa.String(length=32), nullable=False),
        sa.Column("price_book_version", sa.String(length=64), nullable=False),
        sa.Column("rate_micros_per_minute", sa.BigInteger(), nullable=False),
        sa.Column("discount_bps", sa.Integer(), nullable=False),
        sa.Column("list_amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("discount_micros", sa.BigInteger(), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=False),
        sa.Column("usage_period", sa.String(length=7), nullable=False),
        sa.Column("billing_period", sa.String(length=7), nullable=False),
        sa.Column("is_adjustment", sa.Boolean(), nullable=False),
        sa.Column("event_hash", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "method IN ('sync', 'async', 'streaming')", name=op.f("ck_ledger_entries_method")
        ),
        sa.CheckConstraint(
            "opt_out_source IN ('request', 'contract', 'default')",
            name=op.f("ck_ledger_entries_opt_out_source"),
        ),
        sa.CheckConstraint(
            "list_amount_micros = discount_micros + amount_micros",
            name=op.f("ck_ledger_entries_amounts"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_ledger_entries_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_ledger_entries_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.UniqueConstraint(
            "project_id", "request_id", name=op.f("uq_ledger_entries_project_id_request_id")
        ),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_entries_billing_period_org",
            ["billing_period", "organization_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_ledger_entries_project_created", ["project_id", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_ledger_entries_org_created", ["organization_id", "created_at"], unique=False
        )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_APPEND_ONLY)
    else:
        for statement in _SQLITE_APPEND_ONLY:
            op.execute(statement)

    price_book = sa.table(
        "price_book",
        sa.column("id", sa.Uuid()),
        sa.column("version", sa.String()),
        sa.column("plan", sa.String()),
        sa.column("tier", sa.String()),
        sa.column("rate_micros_per_minute", sa.BigInteger()),
        sa.column("effective_from", sa.DateTime(timezone=True)),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    op.bulk_insert(
        price_book,
        [
            {
                "id": uuid.uuid4(),
                "version": SEED_VERSION,
                "plan": plan,
                "tier": tier,
                "rate_micros_per_minute": rate,
                "effective_from": start,
                "created_at": start,
            }
            for plan, tier, rate in SEED_PRICE_BOOK
        ],
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_entries_no_update ON audit_entries")
        op.execute("DROP FUNCTION IF EXISTS audit_entries_append_only()")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_entries_org_created")
        batch_op.drop_index("ix_ledger_entries_project_created")
        batch_op.drop_index("ix_ledger_entries_billing_period_org")

    op.drop_table("ledger_entries")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_project_id"))

    op.drop_table("api_keys")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_projects_organization_id"))

    op.drop_table("projects")
    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_organizations_reseller_id"))

    op.drop_table("organizations")
    op.drop_table("resellers")
    op.drop_table("price_book")
    op.drop_table("billing_periods")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entries_organization_id"))
        batch_op.drop_index(batch_op.f("ix_audit_entries_action"))

    op.drop_table("audit_entries")
