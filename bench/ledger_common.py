"""Constants and the database lifecycle shared by bench/ledger.py and its report part."""

from __future__ import annotations

import datetime as dt
import os
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from rich.console import Console
from sqlalchemy.engine import make_url

from app.kit.migrate import upgrade

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
