"""Constants and the database lifecycle shared by bench/ledger.py and its report part."""

from __future__ import annotations

import datetime as dt
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from rich.console import Console
from sqlalchemy.engine import make_url

from migrations.run import upgrade

ROOT = str(Path(__file__).resolve().parents[1])
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
ACTOR = "bench"
HTTP_TARGET = 0.5  # HTTP ingest should reach half of raw COPY throughput
INGEST_MONTH = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)
REPORT_PERIOD = "2026-10"
REPORT_MONTH = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
MONTH_SECONDS = 28 * 86_400
JSON_COLUMNS = frozenset({"features", "tags"})

# (name, price-book tier): ten models, several tiers.
MODELS = (
    ("nova-3", "nova"),
    ("nova-2", "nova"),
    ("nova-2-medical", "nova"),
    ("nova-2-phonecall", "nova"),
    ("general", "standard"),
    ("general-meeting", "standard"),
    ("base", "standard"),
    ("enhanced", "enhanced"),
    ("whisper-large", "whisper"),
    ("custom-acme-call", "custom"),
)
FEATURES = ("punctuate", "diarize", "smart_format", "utterances", "paragraphs", "summarize")
TAGS = ("prod", "staging", "callcenter", "eu-west", "us-east", "mobile", "web", "batch")
LANGUAGES = ("en", "en-US", "en-GB", "es", "fr", "de", "pt-BR", "ja")
METHODS = ("sync", "sync", "sync", "async", "streaming")
STATUSES = (200,) * 30 + (400, 499)
# Every accepted spelling; absent (None) most often, which means opted in.
OPT_OUT = (None, None, None, None, False, True, True, "true", "false", "1", "0", "TRUE")
# (plan, contract rates, contract opt-out) of the organizations the ingest phases write to.
INGEST_ORGS: tuple[tuple[str, dict[str, int] | None, bool], ...] = (
    ("pay_as_you_go", None, False),
    ("pay_as_you_go", None, False),
    ("growth", None, False),
    ("growth", None, False),
    ("enterprise", {"*": 2_500, "nova": 3_000}, False),
    ("enterprise", {"*": 2_000}, True),
)
PROJECTS_PER_ORG = 3
REPORT_ORGS = 50
LIST_RATES = {"pay_as_you_go": 4_300, "growth": 3_600}  # the migration's seed price book

console = Console(stderr=True)


@dataclass(frozen=True, slots=True)
class Target:
    organization_id: uuid.UUID
    project_id: uuid.UUID
    key_id: uuid.UUID
    plan: str


@dataclass(frozen=True, slots=True)
class BenchDb:
    name: str
    sqlalchemy_url: str  # postgresql+psycopg://…
    conninfo: str  # postgresql://… for raw psycopg


def _seconds(values: list[float]) -> dict[str, float]:
    return {
        "total": round(sum(values), 4),
        "median": round(statistics.median(values), 4),
        "max": round(max(values), 4),
    }


# --- database lifecycle ---------------------------------------------------------------------


@contextmanager
def bench_database(admin_url: str) -> Iterator[BenchDb]:
    """A fresh, migrated database, dropped on the way out whatever happens."""
    name = f"mip_bench_{os.getpid()}"
    admin = make_url(admin_url).set(drivername="postgresql")
    admin_info = admin.render_as_string(hide_password=False)
    target = admin.set(database=name)
    db = BenchDb(
        name=name,
        sqlalchemy_url=target.set(drivername="postgresql+psycopg").render_as_string(
            hide_password=False
        ),
        conninfo=target.render_as_string(hide_password=False),
    )
    with psycopg.connect(admin_info, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(db.sqlalchemy_url)
        yield db
    finally:
        with psycopg.connect(admin_info, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        console.print(f"dropped database {name}")


# --- events and the service under test ---------------------------------------------------


def make_events(
    rng: random.Random, targets: list[Target], *, prefix: str, start: int, count: int
) -> list[dict[str, Any]]:
    """``count`` distinct events as a gateway would send them (JSON-ready dicts)."""
    events: list[dict[str, Any]] = []
    for number in range(start, start + count):
        target = rng.choice(targets)
        model, tier = rng.choice(MODELS)
        created = INGEST_MONTH + dt.timedelta(seconds=rng.randrange(MONTH_SECONDS))
        event: dict[str, Any] = {
            "request_id": f"{prefix}-{number:08d}",
            "project_id": str(target.project_id),
            "created": created.isoformat(),
            "endpoint": "/v1/listen",
            "method": rng.choice(METHODS),
            "model": model,
            "model_uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, model)),
            "model_version": "2026-07-01.1",
            "model_tier": tier,
            "language": rng.choice(LANGUAGES),
            "features": rng.sample(FEATURES, rng.randrange(4)),
            "tags": rng.sample(TAGS, rng.randrange(3)),
            "duration": round(rng.uniform(0.5, 900.0), 3),
            "channels": rng.choice((1, 1, 1, 2)),
            "status": rng.choice(STATUSES),
        }
        if rng.random() < 0.7:
            event["api_key_id"] = str(target.key_id)
        opt_out = rng.choice(OPT_OUT)
        if opt_out is not None:
            event["mip_opt_out"] = opt_out
        events.append(event)
    return events


def batch_sizes(total: int, batch: int) -> list[int]:
    return [min(batch, total - start) for start in range(0, total, batch)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_server(db: BenchDb, workdir: Path, *, workers: int = 1) -> Iterator[str]:
    """``mip serve`` as a subprocess on a free port; yields its base URL once /readyz says so."""
    port = free_port()
    env = {
        **os.environ,
        "MIP_DATABASE_URL": db.sqlalchemy_url,
        "MIP_LOG_LEVEL": "WARNING",
        "MIP_DATA_DIR": str(workdir / "var"),
    }
    command = [
        str(Path(sys.executable).with_name("mip")),
        *("serve", "--host", "127.0.0.1", "--workers", str(workers)),
    ]
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base_url, log_path)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    tail = log_path.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"the service did not become ready:\n{tail}")
