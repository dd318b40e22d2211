"""Any interleaving and repetition of the same events gives the same ledger and totals."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.ledger.schemas import LedgerEventIn
from app.ledger.service import ingest_batch
from app.tables import LedgerEntry
from tests.conftest import TEST_SAMPLING, Database, make_tenant

_FIELDS = st.fixed_dictionaries(
    {
        "duration": st.floats(min_value=0, max_value=7200, allow_nan=False),
        "mip_opt_out": st.sampled_from([None, "true", "false", "1", "0", True, False]),
        "status": st.sampled_from([200, 200, 200, 400, 500]),
        "channels": st.integers(min_value=1, max_value=4),
        "model": st.sampled_from(["general", "medical", "phonecall"]),
        "tags": st.lists(st.sampled_from(["a", "b", "c"]), max_size=3),
        "day": st.integers(min_value=0, max_value=80),
    }
)


def _events(tenants: list[uuid.UUID], specs: list[dict[str, Any]]) -> list[LedgerEventIn]:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    events = []
    for i, spec in enumerate(specs):
        events.append(
            LedgerEventIn.model_validate(
                {
                    "request_id": f"req-{i}",
                    "project_id": tenants[i % len(tenants)],
                    "created": start + dt.timedelta(days=spec["day"], seconds=i),
                    "model": spec["model"],
                    "duration": spec["duration"],
                    "mip_opt_out": spec["mip_opt_out"],
                    "status": spec["status"],
                    "channels": spec["channels"],
                    "tags": spec["tags"],
                }
            )
        )
    return events


def _snapshot(db: Database) -> tuple[set[tuple[Any, ...]], tuple[int, ...]]:
    with db.session() as session:
        rows = {
            (
                r.project_id,
                r.request_id,
                r.mip_opt_out,
                r.opt_out_source,
                r.list_amount_micros,
                r.discount_micros,
                r.amount_micros,
                r.billing_period,
            )
            for r in session.scalars(select(LedgerEntry))
        }
        totals = session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(LedgerEntry.list_amount_micros), 0),
                func.coalesce(func.sum(LedgerEntry.discount_micros), 0),
                func.coalesce(func.sum(LedgerEntry.amount_micros), 0),
            )
        ).one()
    return rows, tuple(int(v) for v in totals)


class TestInterleavingInvariance:
    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        specs=st.lists(_FIELDS, min_size=1, max_size=12),
        plan=st.lists(st.integers(min_value=0, max_value=11), min_size=1, max_size=40),
        cuts=st.lists(st.integers(min_value=1, max_value=40), max_size=6),
    )
    def test_same_events_any_order_same_ledger(
        self, db: Database, specs: list[dict[str, Any]], plan: list[int], cuts: list[int]
    ) -> None:
        db.reset()
        tenants = [
            make_tenant(db, plan="growth", name="G").project_id,
            make_tenant(db, plan="pay_as_you_go", name="P").project_id,
            make_tenant(
                db, plan="enterprise", contract_rates={"*": 2500}, contract_opt_out=True, name="E"
            ).project_id,
        ]
        events = _events(tenants, specs)

        # Reference: every event once, in order, one batch.
        with db.session() as session:
            ingest_batch(session, events, sampling=TEST_SAMPLING)
        expected = _snapshot(db)

        # Again from empty: a random stream (repeats, any order, any batch split) that
        # contains every event at least once.
        db.reset()
        tenants_again = [
            make_tenant(db, plan="growth", name="G").project_id,
            make_tenant(db, plan="pay_as_you_go", name="P").project_id,
            make_tenant(
                db, plan="enterprise", contract_rates={"*": 2500}, contract_opt_out=True, name="E"
            ).project_id,
        ]
        remap = dict(zip(tenants, tenants_again, strict=True))
        events = [e.model_copy(update={"project_id": remap[e.project_id]}) for e in events]
        stream = [events[i % len(events)] for i in plan] + events
        bounds = sorted({c % len(stream) for c in cuts} | {0, len(stream)})
        for lo, hi in itertools.pairwise(bounds):
            with db.session() as session:
                ingest_batch(session, stream[lo:hi], sampling=TEST_SAMPLING)
        rows, totals = _snapshot(db)
        back = {v: k for k, v in remap.items()}
        rows = {(back[r[0]], *r[1:]) for r in rows}
        assert (rows, totals) == expected
        assert totals[0] == len(events)
