"""Shared by the audit tests: a history of audited changes, and tampering behind the triggers."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text, update

from app.ledger.service import close_period
from app.pricing.service import set_price
from app.tables import AuditEntry
from app.tenancy import repository as tenancy_repository
from app.tenancy import service as tenancy
from tests.conftest import Database

_SQLITE_NO_UPDATE = (
    "CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END"
)

# The actions :func:`make_history` produces, in order.
HISTORY_ACTIONS = [
    "organization.created",
    "project.created",
    "api_key.created",
    "api_key.revoked",
    "organization.contract_changed",
    "billing_period.closed",
    "price_book.changed",
    "organization.created",
]


@dataclass(frozen=True)
class History:
    org_id: uuid.UUID
    other_org_id: uuid.UUID
    key_id: uuid.UUID


def make_history(db: Database) -> History:
    """One of every audited change, each in its own transaction as in production."""
    with db.session() as session:
        org = tenancy.create_organization(session, name="Acme", plan="growth", actor="alice")
        org_id = org.id
    with db.session() as session:
        project = tenancy.create_project(
            session, organization_id=org_id, name="Acme app", actor="alice"
        )
        key, _secret = tenancy.create_project_key(session, project_id=project.id, actor="alice")
        key_id = key.id
    with db.session() as session:
        live_key = tenancy_repository.get_key(session, key_id)
        assert live_key is not None
        tenancy.revoke_key(session, key=live_key, actor="bob")
    with db.session() as session:
        tenancy.update_contract(
            session,
            organization_id=org_id,
            actor="bob",
            plan="enterprise",
            contract_rates={"*": 4000},
        )
    with db.session() as session:
        close_period(session, period="2026-02", actor="carol")
    with db.session() as session:
        set_price(
            session,
            plan="growth",
            tier="*",
            rate_micros_per_minute=3900,
            effective_from=dt.datetime(2027, 1, 1, tzinfo=dt.UTC),
            version="2027-01",
            actor="carol",
        )
    with db.session() as session:
        other = tenancy.create_organization(session, name="Other", plan="growth", actor="alice")
        other_id = other.id
    return History(org_id=org_id, other_org_id=other_id, key_id=key_id)


def tamper(db: Database, seq: int, /, **values: Any) -> None:
    """Rewrite one entry as an attacker with database access would, around the trigger.

    Runs in one transaction, so the trigger is back (or never gone) when it ends.
    """
    stmt = update(AuditEntry).where(AuditEntry.seq == seq).values(**values)
    with db.engine.begin() as conn:
        if db.backend == "postgresql":
            conn.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_no_update"))
            conn.execute(stmt)
            conn.execute(text("ALTER TABLE audit_entries ENABLE TRIGGER audit_entries_no_update"))
        else:
            conn.execute(text("DROP TRIGGER audit_entries_no_update"))
            conn.execute(stmt)
            conn.execute(text(_SQLITE_NO_UPDATE))


def entry_hashes(db: Database) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(AuditEntry.entry_hash).order_by(AuditEntry.seq)))
