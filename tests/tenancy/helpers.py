"""Builders shared by the tenancy endpoint tests."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import func, select

from app.ledger.schemas import LedgerEventIn
from app.ledger.service import ingest_batch
from app.tables import ApiKey, AuditEntry
from tests.conftest import TEST_SAMPLING, Database

T0 = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def token(secret: str) -> dict[str, str]:
    return {"Authorization": f"Token {secret}"}


def ingest(db: Database, project_id: uuid.UUID, *durations: float, opt_out: bool = False) -> None:
    """Record one ledger row per duration (seconds) through the real ingest pipeline."""
    events = [
        LedgerEventIn(
            request_id=f"r-{uuid.uuid4().hex[:12]}",
            project_id=project_id,
            created=T0,
            model="general",
            duration=seconds,
            mip_opt_out=opt_out,
        )
        for seconds in durations
    ]
    with db.session() as session:
        ingest_batch(session, events, sampling=TEST_SAMPLING)


def key_count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(ApiKey)) or 0)


def get_key(db: Database, key_id: uuid.UUID | str) -> ApiKey:
    with db.session() as session:
        key: ApiKey | None = session.get(ApiKey, uuid.UUID(str(key_id)))
        assert key is not None
        return key


def expire_key(db: Database, key_id: uuid.UUID) -> None:
    with db.session() as session:
        key = session.get(ApiKey, key_id)
        assert key is not None
        key.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)


def audit_actions(db: Database) -> list[tuple[str, str, dict[str, Any]]]:
    with db.session() as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        return [(r.action, r.actor, r.details) for r in rows]
