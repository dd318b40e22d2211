"""Event builders shared by the ledger tests."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, select, text

from app.tables import LedgerEntry
from tests.conftest import Database

T0 = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def event(project_id: uuid.UUID, request_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": request_id,
        "project_id": str(project_id),
        "created": T0.isoformat(),
        "model": "general",
        "duration": 60.0,
        "channels": 1,
        "status": 200,
    }
    body.update(overrides)
    return body


def ledger_count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def ledger_rows(db: Database) -> dict[str, LedgerEntry]:
    with db.session() as session:
        rows = session.scalars(select(LedgerEntry)).all()
        return {r.request_id: r for r in rows}


@contextmanager
def as_database_owner(db: Database, table: str = "ledger_entries") -> Iterator[None]:
    """The append-only triggers of ``table`` (the ledger's, or ``audit_entries``) set aside, as
    the database's owner could: for tests that show what the other defences (sealed digests,
    audit-sampling, signed checkpoints) catch."""
    with db.engine.begin() as conn:
        if db.backend == "postgresql":
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            saved: list[str] = []
        else:
            rows = conn.execute(
                text(
                    "SELECT name, sql FROM sqlite_master "
                    "WHERE type = 'trigger' AND tbl_name = :table"
                ),
                {"table": table},
            ).all()
            saved = [sql for _name, sql in rows]
            for name, _sql in rows:
                conn.execute(text(f'DROP TRIGGER "{name}"'))
    try:
        yield
    finally:
        with db.engine.begin() as conn:
            if db.backend == "postgresql":
                conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
            for sql in saved:
                conn.execute(text(sql))
