"""Shared fixtures: a real database per backend (SQLite file and PostgreSQL), reset per test.

Database tests take the ``db`` fixture, parametrized over both backends, so the whole suite
runs on SQLite and on PostgreSQL in one ``make test``. PostgreSQL comes from
``MIP_TEST_POSTGRES_URL`` (default: the local server, database ``test``); each xdist worker
gets a database of its own.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import uvicorn
from deepgram import DeepgramClient, DeepgramClientEnvironment
from fastapi import FastAPI
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer
from sqlalchemy import Engine, create_engine, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.kit.db import Base, create_db_engine, make_sessionmaker, session_scope
from app.kit.settings import Settings
from app.main import create_app
from app.sampling.policy import SamplingConfig
from app.tables import PriceBookEntry
from app.tenancy import service as tenancy
from migrations.run import upgrade

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
# For service calls made directly in tests (the app reads its own from settings).
TEST_SAMPLING = SamplingConfig(secret=b"test-sampling-secret", default_rate=0.05)
BACKENDS = ("sqlite", "postgresql")


def _pg_admin_url() -> str:
    return os.environ.get("MIP_TEST_POSTGRES_URL", DEFAULT_PG)


def _create_pg_database(name: str) -> str:
    admin = make_url(_pg_admin_url()).set(drivername="postgresql+psycopg")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin.set(database=name).render_as_string(hide_password=False)


@dataclass
class Database:
    """A migrated database of one backend, and how to reset it between tests."""

    backend: str
    url: str
    engine: Engine
    factory: sessionmaker[Session]
    seed_prices: list[dict[str, Any]]

    def reset(self) -> None:
        tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
        with self.engine.begin() as conn:
            if self.backend == "postgresql":
                # TRUNCATE does not fire the audit log's row-level append-only trigger.
                conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
            else:
                # The append-only triggers (audit log, ledger) refuse DELETE: set them aside.
                triggers = list(
                    conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
                )
                for name, _sql in triggers:
                    conn.execute(text(f'DROP TRIGGER "{name}"'))
                for table in tables:
                    conn.execute(text(f"DELETE FROM {table}"))
                for _name, sql in triggers:
                    conn.execute(text(sql))
            conn.execute(insert(PriceBookEntry), self.seed_prices)

    def session(self) -> Any:
        return session_scope(self.factory)


def _drop_pg_database(url: str) -> None:
    target = make_url(url)
    admin = make_url(_pg_admin_url()).set(drivername="postgresql+psycopg")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
    engine.dispose()


def _build_database(backend: str, tmp: Path, name: str) -> Database:
    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'mip.sqlite3'}"
    else:
        url = _create_pg_database(name)
    upgrade(url)
    engine = create_db_engine(url)
    with engine.connect() as conn:
        seed = [dict(r._mapping) for r in conn.execute(select(PriceBookEntry.__table__))]
    return Database(backend, url, engine, make_sessionmaker(engine), seed)


@pytest.fixture(scope="session")
def databases(
    tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> Iterator[dict[str, Database]]:
    built: dict[str, Database] = {}
    yield built
    for database in built.values():
        database.engine.dispose()
        if database.backend == "postgresql":
            _drop_pg_database(database.url)


@pytest.fixture(params=BACKENDS)
def db(
    request: pytest.FixtureRequest,
    databases: dict[str, Database],
    tmp_path_factory: pytest.TempPathFactory,
    worker_id: str,
) -> Database:
    backend: str = request.param
    if backend not in databases:
        # Unique per run and worker: concurrent suites on one server never share a database.
        name = f"mip_test_{os.getpid()}_{worker_id}"
        databases[backend] = _build_database(
            backend, tmp_path_factory.mktemp(f"db-{backend}"), name
        )
    database = databases[backend]
    database.reset()
    return database


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path, worker_id: str) -> Iterator[str]:
    """An empty, unmigrated database of each backend (for migration tests)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    url = _create_pg_database(f"mip_empty_{os.getpid()}_{worker_id}")
    yield url
    _drop_pg_database(url)


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    # No bundled model: most tests never transcribe, and loading it costs each app start.
    return Settings(
        env="test",
        data_dir=tmp_path / "var",
        database_url=db.url,
        log_json=True,
        bundled_models_dir=None,
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass
class Tenant:
    org_id: uuid.UUID
    project_id: uuid.UUID
    key_id: uuid.UUID
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.key}"}


def make_tenant(
    db: Database,
    *,
    plan: str = "growth",
    contract_rates: dict[str, int] | None = None,
    contract_opt_out: bool = False,
    scopes: list[str] | None = None,
    name: str = "Acme",
    reseller_id: str | uuid.UUID | None = None,
) -> Tenant:
    with db.session() as session:
        org = tenancy.create_organization(
            session,
            name=name,
            plan=plan,
            actor="test",
            contract_rates=contract_rates,
            contract_opt_out=contract_opt_out,
            reseller_id=uuid.UUID(str(reseller_id)) if reseller_id is not None else None,
        )
        project = tenancy.create_project(
            session, organization_id=org.id, name=f"{name} project", actor="test"
        )
        key, secret = tenancy.create_project_key(
            session, project_id=project.id, actor="test", scopes=scopes
        )
        return Tenant(org.id, project.id, key.id, secret)


def make_staff_key(db: Database, role: str) -> dict[str, str]:
    with db.session() as session:
        _key, secret = tenancy.create_staff_key(session, role=role, actor="test")
    return {"Authorization": f"Token {secret}"}


@pytest.fixture
def tenant(db: Database) -> Tenant:
    return make_tenant(db)


@pytest.fixture
def admin_headers(db: Database) -> dict[str, str]:
    return make_staff_key(db, "admin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> bool:
    """Poll ``condition`` until it holds; ``timeout`` is a hang guard, not a speed figure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


@pytest.fixture
def live_server(app: FastAPI) -> Iterator[str]:
    """The app served by a real uvicorn on 127.0.0.1 (for the official SDK)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


SdkFactory = Callable[[str], DeepgramClient]


@pytest.fixture
def sdk(live_server: str) -> Iterator[SdkFactory]:
    """Official Deepgram SDK clients (``sdk(api_key)``) pointed at the live server.

    They share one httpx client that the fixture closes, so no keep-alive socket outlives the
    test (an unclosed socket is a ResourceWarning, an error here) and the server stops at once.
    """
    ws = live_server.replace("http://", "ws://")
    environment = DeepgramClientEnvironment(
        base=live_server, production=ws, agent=ws, agent_rest=live_server
    )
    http = httpx.Client(timeout=30)

    def build(api_key: str) -> DeepgramClient:
        return DeepgramClient(
            api_key=api_key, environment=environment, max_retries=0, httpx_client=http
        )

    yield build
    http.close()


@dataclass(frozen=True)
class S3Endpoint:
    """moto's S3/KMS server on 127.0.0.1, reached through boto3 like any S3 API."""

    url: str
    region: str = "us-east-1"

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.url, region_name=self.region)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    # Dummy credentials: moto accepts any, and they keep boto3 from looking for real ones.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield S3Endpoint(f"http://{host}:{port}")
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: S3Endpoint) -> str:
    """A new, empty bucket for one test."""
    name = f"mip-test-{uuid.uuid4().hex[:12]}"
    s3_endpoint.client("s3").create_bucket(Bucket=name)
    return name


__all__ = [
    "TEST_SAMPLING",
    "Database",
    "S3Endpoint",
    "Tenant",
    "free_port",
    "make_staff_key",
    "make_tenant",
]
