"""A seeded project (rows through the real ingest path), SDK clients, and expected sums."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from app.ledger.schemas import LedgerEventIn
from app.ledger.service import ingest_batch, record_request
from app.tables import LedgerEntry
from app.tenancy import service as tenancy
from tests.conftest import TEST_SAMPLING, Database, Tenant, make_tenant

START = "2026-03-01"
END = "2026-03-04"


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, second, tzinfo=dt.UTC)


@dataclass
class Seeded:
    """The tenant's project with a second key, its events and rows, and a second tenant's."""

    tenant: Tenant
    key2_id: uuid.UUID
    events: list[LedgerEventIn]
    rows: dict[str, LedgerEntry]
    other: Tenant


def _events(tenant: Tenant, key2: uuid.UUID) -> list[dict[str, Any]]:
    key1 = tenant.key_id
    return [
        {
            "request_id": "r-001",
            "created": at(1, 10),
            "api_key_id": key1,
            "method": "sync",
            "features": ["smart_format", "punctuate"],
            "tags": ["prod"],
            "duration": 120.0,
        },
        {
            "request_id": "r-002",
            "created": at(1, 11),
            "api_key_id": key2,
            "method": "streaming",
            "model": "nova-3",
            "model_uuid": "uuid-nova-3",
            "language": "en",
            "model_version": "v3",
            "features": ["diarize"],
            "tags": ["team-a", "prod"],
            "duration": 60.0,
            "channels": 2,
            "mip_opt_out": True,
        },
        {
            "request_id": "r-003",
            "created": at(2, 9, 30),
            "api_key_id": key1,
            "method": "async",
            "duration": 30.0,
            "status": 500,
        },
        {
            "request_id": "r-004",
            "created": at(3, 23, 59, 59),
            "method": "sync",
            "features": ["punctuate"],
            "tags": ["team-a"],
            "duration": 90.0,
            "mip_opt_out": False,
        },
        {
            "request_id": "r-005",
            "created": at(4, 0),
            "api_key_id": key2,
            "method": "sync",
            "model": "nova-3",
            "model_uuid": "uuid-nova-3",
            "language": "en",
            "model_version": "v3",
            "features": ["punctuate", "smart_format"],
            "tags": ["prod"],
            "duration": 45.0,
            "mip_opt_out": "true",
        },
        {
            "request_id": "r-006",
            "created": at(2, 15),
            "api_key_id": key1,
            "method": "sync",
            "endpoint": "/v1/read",
            "duration": 15.0,
        },
        # Outside the default test range (start 2026-03-01).
        {
            "request_id": "r-000",
            "created": dt.datetime(2026, 2, 28, 23, 0, tzinfo=dt.UTC),
            "api_key_id": key1,
            "duration": 600.0,
        },
    ]


def seed(db: Database) -> Seeded:
    tenant = make_tenant(db)
    other = make_tenant(db, name="Other")
    with db.session() as session:
        key2, _secret = tenancy.create_project_key(
            session, project_id=tenant.project_id, actor="test"
        )
        raw = _events(tenant, key2.id)
        events = [
            LedgerEventIn.model_validate({"model": "general", **e, "project_id": tenant.project_id})
            for e in raw
        ]
        # Both write paths: the batch (COPY on PostgreSQL) and the in-process one.
        ingest_batch(session, events[:4], sampling=TEST_SAMPLING)
        for event in events[4:]:
            record_request(session, event, sampling=TEST_SAMPLING)
        foreign = LedgerEventIn(
            request_id="r-001",
            project_id=other.project_id,
            created=at(2),
            model="general",
            tags=["prod"],
            duration=3600.0,
        )
        ingest_batch(session, [foreign], sampling=TEST_SAMPLING)
        key2_id = key2.id
    with db.session() as session:
        stmt = select(LedgerEntry).where(LedgerEntry.project_id == tenant.project_id)
        rows = {r.request_id: r for r in session.scalars(stmt)}
    return Seeded(tenant, key2_id, events, rows, other)


def in_range(event: LedgerEventIn, start: str = START, end: str = END) -> bool:
    return start <= event.created.date().isoformat() <= end


Pick = Callable[[LedgerEventIn], bool]


def pick(events: Iterable[LedgerEventIn], keep: Pick = in_range) -> list[LedgerEventIn]:
    return [e for e in events if keep(e)]


def hours(events: Iterable[LedgerEventIn]) -> float:
    return sum(e.duration for e in events) / 3600


def total_hours(events: Iterable[LedgerEventIn]) -> float:
    return sum(e.duration * e.channels for e in events) / 3600


def dollars(seeded: Seeded, events: Iterable[LedgerEventIn]) -> float:
    return sum(seeded.rows[e.request_id].amount_micros for e in events) / 1_000_000
