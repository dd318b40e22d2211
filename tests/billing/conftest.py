"""Billing fixtures: a ledger of three organizations (one per plan) and a CLI runner."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from app.cli import app as mip
from app.kit.cli import console
from app.kit.settings import get_settings
from app.ledger.schemas import LedgerEventIn
from app.ledger.service import ingest_batch
from app.tables import AuditEntry
from tests.conftest import TEST_SAMPLING, Database, make_tenant

PERIOD = "2026-03"
T0 = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)

Cli = Callable[..., Result]


def event(
    project_id: uuid.UUID,
    request_id: str,
    *,
    duration: float,
    model: str = "general",
    status: int = 200,
    opt_out: bool | None = None,
    created: dt.datetime = T0,
) -> LedgerEventIn:
    return LedgerEventIn(
        request_id=request_id,
        project_id=project_id,
        created=created,
        model=model,
        duration=duration,
        status=status,
        mip_opt_out=opt_out,
    )


def ingest(db: Database, *events: LedgerEventIn) -> None:
    with db.session() as session:
        ingest_batch(session, list(events), sampling=TEST_SAMPLING)


@dataclass(frozen=True)
class Ledger:
    """Alpha (pay_as_you_go 4300 µ$/min), Beta (growth 3600), Gamma (enterprise 4000)."""

    alpha: uuid.UUID
    beta: uuid.UUID
    gamma: uuid.UUID
    alpha_project: uuid.UUID


@pytest.fixture
def ledger(db: Database) -> Ledger:
    alpha = make_tenant(db, plan="pay_as_you_go", name="Alpha")
    beta = make_tenant(db, plan="growth", name="Beta")
    gamma = make_tenant(db, plan="enterprise", contract_rates={"*": 4000}, name="Gamma")
    a, b, g = alpha.project_id, beta.project_id, gamma.project_id
    ingest(
        db,
        event(a, "a1", duration=60),  # in: 4300 list, 2150 discount, 2150 net
        event(a, "a2", duration=90, opt_out=True),  # out: 6450 list and net
        event(a, "a3", duration=30, status=500),  # failed: counted, not billed
        event(a, "a4", duration=120, model="nova"),  # in: 8600 / 4300 / 4300
        event(a, "april", duration=60, created=T0.replace(month=4)),  # another period
        event(b, "b1", duration=30),  # in: 1800 / 900 / 900
        event(b, "b2", duration=45, opt_out=True),  # out: 2700
        event(b, "b3", duration=10, opt_out=True, status=404),  # failed
        event(g, "g1", duration=45),  # in: 3000 / 1500 / 1500
        event(g, "g2", duration=15, opt_out=False),  # in: 1000 / 500 / 500
        event(g, "g3", duration=15, opt_out=True),  # out: 1000
    )
    return Ledger(alpha.org_id, beta.org_id, gamma.org_id, a)


def audit_entries(db: Database, action: str) -> list[AuditEntry]:
    with db.session() as session:
        stmt = select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        return list(session.scalars(stmt))


@pytest.fixture
def cli(db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    """``mip billing …`` against the test database."""
    monkeypatch.setenv("MIP_DATABASE_URL", db.url)
    # Full-width rich tables; the console was sized on import (xdist workers have COLUMNS=80).
    monkeypatch.setattr(console, "_width", 250)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: Any) -> Result:
        return runner.invoke(mip, ["billing", *(str(a) for a in args)])

    yield invoke
    get_settings.cache_clear()
