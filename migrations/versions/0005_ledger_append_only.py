"""The ledger is append-only in the database itself, as the audit log is

A recorded request's row may change in one way only: ``sample_kept`` from false to true, when
the sample store keeps its audio. Every other UPDATE and every DELETE is refused by a trigger
on both backends, so the rows that billing and the "no opted-out audio was kept" evidence rest
on cannot be edited quietly through the service's own database connection. (A superuser can
still drop the trigger: the sealed digests of closed months, recorded in the audit log, show
such an edit.)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 19:50:00.000000
"""

from __future__ import annotations

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_MESSAGE = "ledger_entries is append-only: only sample_kept may change, from false to true"

_PG = f"""
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION '{_MESSAGE}';
    END IF;
    IF (OLD.sample_kept AND NOT NEW.sample_kept)
        OR (to_jsonb(NEW) - 'sample_kept') IS DISTINCT FROM (to_jsonb(OLD) - 'sample_kept') THEN
        RAISE EXCEPTION '{_MESSAGE}';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
"""

# Every column but sample_kept, as the table stands at this revision: a migration that adds a
# column to the ledger must add it here too (tests/ledger/test_append_only.py checks it).
FROZEN_COLUMNS = (
    "id, request_id, organization_id, project_id, api_key_id, created_at, endpoint, method, "
    "model_name, model_uuid, model_version, model_tier, language, features, tags, "
    "duration_seconds, channels, http_status, mip_opt_out, opt_out_source, sample_selected, "
    "sampling_rate, plan, price_book_version, rate_micros_per_minute, discount_bps, "
    "list_amount_micros, discount_micros, amount_micros, usage_period, billing_period, "
    "is_adjustment, event_hash, recorded_at"
)
SQLITE_TRIGGERS = (
    "CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries "
    f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END",
    f"CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE OF {FROZEN_COLUMNS} "
    f"ON ledger_entries BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END",
    "CREATE TRIGGER ledger_entries_kept_once BEFORE UPDATE OF sample_kept ON ledger_entries "
    "WHEN OLD.sample_kept AND NOT NEW.sample_kept "
    f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_append_only ON ledger_entries")
        op.execute("DROP FUNCTION IF EXISTS ledger_entries_append_only()")
    else:
        for name in ("no_delete", "no_update", "kept_once"):
            op.execute(f"DROP TRIGGER IF EXISTS ledger_entries_{name}")
