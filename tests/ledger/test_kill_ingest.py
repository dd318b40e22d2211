"""kill -9 of the real service in the middle of a ledger batch, on PostgreSQL.

The service runs as ``mip serve`` in a process of its own. Three rounds of batches are sent by
concurrent clients; in the second, the server is killed with SIGKILL while one batch's rows are
streaming into ``COPY``. The server is restarted and, like a gateway, the clients re-send every
batch they got no answer for. At the end every event is in the ledger exactly once, the billing
report's totals are the ledger's, and the audit chain verifies.

The kill lands at a chosen point, not at a moment picked by a timer: the test holds an
uncommitted ledger row with the request id of that batch's last event, so the server's COPY
waits on it (a unique index waits for a conflicting transaction to end) with every other row
of the batch already sent. PostgreSQL shows the wait in ``pg_stat_activity``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.audit.service import verify_chain
from app.kit.db import create_db_engine, make_sessionmaker
from app.ledger.schemas import LedgerEventIn
from app.ledger.service import ingest_batch
from app.tables import LedgerEntry
from migrations.run import upgrade
from tests.conftest import (
    TEST_SAMPLING,
    Database,
    Tenant,
    _create_pg_database,
    _drop_pg_database,
    free_port,
    make_staff_key,
    make_tenant,
    wait_until,
)
from tests.ledger.helpers import T0

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not os.environ.get("MIP_TEST_POSTGRES_URL"),
        reason="needs PostgreSQL: set MIP_TEST_POSTGRES_URL (the service is killed mid-COPY)",
    ),
]

ROUNDS = 3
BATCHES_PER_ROUND = 2
EVENTS_PER_BATCH = 1500
KILLED_ROUND = 1  # the second round
# growth plan, 60 s of audio: 3600 micro-dollars at the list rate, half when opted in.
OPTED_OUT_MICROS, OPTED_IN_MICROS = 3600, 1800
INGEST = "/v1/governance/ledger/events"


@pytest.fixture
def fresh_pg(worker_id: str) -> Iterator[Database]:
    """A migrated PostgreSQL database of this test's own: the killed server's connections end
    with it, whatever they still hold."""
    url = _create_pg_database(f"mip_kill_{os.getpid()}_{worker_id}")
    upgrade(url)
    engine = create_db_engine(url)
    yield Database("postgresql", url, engine, make_sessionmaker(engine), seed_prices=[])
    engine.dispose()
    _drop_pg_database(url)


@dataclass
class Server:
    """``mip serve`` in a process of its own; ``start`` again after a kill."""

    database_url: str
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    url: str = ""

    def start(self) -> None:
        port = free_port()
        env = {
            **os.environ,
            "MIP_ENV": "test",
            "MIP_DATABASE_URL": self.database_url,
            "MIP_DATA_DIR": str(self.data_dir),
            "MIP_BUNDLED_MODELS_DIR": "",
            "MIP_LOG_JSON": "true",
        }
        command = [str(Path(sys.executable).with_name("mip")), "serve", "--port", str(port)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        self.url = f"http://127.0.0.1:{port}"
        # A hang guard: the service imports torch before it answers.
        if not wait_until(self._ready, timeout=60):
            raise RuntimeError(f"mip serve did not start:\n{self.log.read_text()[-3000:]}")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"mip serve exited:\n{self.log.read_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


@pytest.fixture
def server(fresh_pg: Database, tmp_path: Path) -> Iterator[Server]:
    running = Server(fresh_pg.url, tmp_path / "var", tmp_path / "server.log")
    running.start()
    yield running
    running.stop()


@dataclass
class Gateway:
    """Clients that send batches concurrently and remember which ones were answered."""

    headers: dict[str, str]
    batches: list[list[dict[str, Any]]]
    answers: dict[int, dict[str, int]] = field(default_factory=dict)

    def send(self, server: Server, indexes: list[int]) -> list[Future[None]]:
        pool = ThreadPoolExecutor(max_workers=len(indexes))
        futures = [pool.submit(self._send_one, server.url, i) for i in indexes]
        pool.shutdown(wait=False)
        return futures

    def _send_one(self, url: str, index: int) -> None:
        body = {"events": self.batches[index]}
        try:
            # A hang guard only: a batch takes well under a second.
            response = httpx.post(f"{url}{INGEST}", json=body, headers=self.headers, timeout=60)
        except httpx.TransportError:
            return  # no answer: the server died under it; re-sent after the restart
        assert response.status_code == 200, response.text
        self.answers[index] = response.json()

    def unanswered(self) -> list[int]:
        return [i for i in range(len(self.batches)) if i not in self.answers]


def make_batches(tenant: Tenant) -> list[list[dict[str, Any]]]:
    batches = []
    for b in range(ROUNDS * BATCHES_PER_ROUND):
        batches.append(
            [
                {
                    "request_id": f"kill-{b}-{e}",
                    "project_id": str(tenant.project_id),
                    "api_key_id": str(tenant.key_id),
                    "created": T0.isoformat(),
                    "model": "general",
                    "duration": 60.0,
                    "mip_opt_out": e % 3 == 0,
                }
                for e in range(EVENTS_PER_BATCH)
            ]
        )
    return batches


def copy_waits_on_lock(db: Database) -> bool:
    """Whether a server connection is in COPY, waiting for another transaction to end."""
    with db.engine.connect() as conn:
        waiting = conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query ILIKE 'COPY%ledger_entries%'"
            )
        )
    return bool(waiting)


def resolve(futures: list[Future[None]]) -> None:
    for future in futures:
        future.result(timeout=120)


def hold_last_event(session: Session, event: dict[str, Any]) -> None:
    """Record ``event`` through the ledger's own ingest, in a transaction left open."""
    ingest_batch(session, [LedgerEventIn.model_validate(event)], sampling=TEST_SAMPLING)
    session.flush()


def send_rounds(gateway: Gateway, server: Server, db: Database) -> None:
    """Every round's batches, concurrently; the server is killed in the middle of one."""
    for number in range(ROUNDS):
        indexes = list(range(number * BATCHES_PER_ROUND, (number + 1) * BATCHES_PER_ROUND))
        if number != KILLED_ROUND:
            resolve(gateway.send(server, indexes))
            continue
        victim = indexes[0]
        with db.factory() as blocker:
            # The victim's last event, uncommitted: the server's COPY of that batch waits on it.
            hold_last_event(blocker, gateway.batches[victim][-1])
            futures = gateway.send(server, indexes)
            assert wait_until(lambda: copy_waits_on_lock(db), timeout=60)
            server.kill()
            blocker.rollback()
        resolve(futures)
        assert victim in gateway.unanswered()
        server.start()
        # Like a gateway: every batch without an answer goes again, as it was.
        resolve(gateway.send(server, gateway.unanswered()))
        assert gateway.unanswered() == []
        # Nothing of the killed batch had been committed: its re-send recorded all of it.
        assert gateway.answers[victim]["recorded"] == EVENTS_PER_BATCH


class TestKillDuringIngest:
    def test_nothing_is_lost_or_duplicated(self, fresh_pg: Database, server: Server) -> None:
        tenant = make_tenant(fresh_pg)
        admin = make_staff_key(fresh_pg, "admin")
        gateway = Gateway(admin, make_batches(tenant))
        send_rounds(gateway, server, fresh_pg)
        # A retry of an answered batch changes nothing either.
        resolve(gateway.send(server, [0]))
        assert gateway.answers[0] == {
            "received": EVENTS_PER_BATCH,
            "recorded": 0,
            "duplicates": EVENTS_PER_BATCH,
            "adjustments": 0,
        }
        for answer in gateway.answers.values():
            assert answer["recorded"] + answer["duplicates"] == answer["received"]

        sent = [event["request_id"] for batch in gateway.batches for event in batch]
        with fresh_pg.session() as session:
            recorded = Counter(session.scalars(select(LedgerEntry.request_id)))
            rows, amount = session.execute(
                select(func.count(), func.sum(LedgerEntry.amount_micros))
            ).one()
        assert recorded == Counter(sent)  # 0 lost, 0 duplicated
        opted_out = sum(event["mip_opt_out"] for batch in gateway.batches for event in batch)
        expected = opted_out * OPTED_OUT_MICROS + (len(sent) - opted_out) * OPTED_IN_MICROS
        assert (rows, amount) == (len(sent), expected)

        report = httpx.get(
            f"{server.url}/v1/governance/billing/reports/{T0:%Y-%m}",
            params={"organization_id": str(tenant.org_id)},
            headers=admin,
            timeout=60,
        )
        assert report.status_code == 200, report.text
        totals = report.json()["totals"]
        assert (totals["requests"], totals["net_amount_micros"]) == (rows, amount)
        assert totals["adjustments_micros"] == 0

        # The chain holds every entry of both servers' lives, the report's export included.
        with fresh_pg.session() as session:
            chain = verify_chain(session)
        assert chain.ok, chain.reason
        assert chain.entries > 0
