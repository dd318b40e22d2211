"""Event builders shared by the ledger tests."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import func, select

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
