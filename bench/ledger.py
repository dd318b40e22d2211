"""Ledger ingest (HTTP, in-process, raw COPY) and the billing report (PostgreSQL vs DuckDB).

Prints one JSON object of figures on stdout; progress goes to stderr::

    .venv/bin/python -m bench.ledger [--pg-url URL] [--events 200000] [--report-rows 1000000]

It creates its own database ``mip_bench_<pid>`` on the server of ``--pg-url`` and drops it
at the end, also on failure. What each figure means: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import importlib.metadata
import json
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import CodeType
from typing import Any

import httpx
import orjson
import psycopg
from pydantic import TypeAdapter
from rich.progress import Progress
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.kit.db import create_db_engine, make_sessionmaker, session_scope
from app.kit.heap import settle_heap
from app.ledger import repository as ledger_repository
from app.ledger.repository import LEDGER_COLUMNS, existing_hashes
from app.ledger.schemas import LedgerBatchIn, LedgerEventIn
from app.ledger.service import event_hash, ingest_batch
from app.sampling.policy import SamplingConfig
from app.tenancy import service as tenancy
from bench.ledger_common import (
    ACTOR,
    DEFAULT_PG,
    HTTP_TARGET,
    INGEST_ORGS,
    JSON_COLUMNS,
    PROJECTS_PER_ORG,
    ROOT,
    BenchDb,
    Target,
    _seconds,
    batch_sizes,
    bench_database,
    console,
    make_events,
    running_server,
)
from bench.ledger_concurrent import bench_concurrent
from bench.ledger_report import (
    bench_report,
)

# The service's default rate, with a secret of this run (the server reads its own).
BENCH_SAMPLING = SamplingConfig(secret=os.urandom(32), default_rate=0.05)


def create_targets(factory: sessionmaker[Session]) -> tuple[list[Target], str]:
    """Organizations of every plan, three projects each with a key; and an admin staff key."""
    targets: list[Target] = []
    with session_scope(factory) as session:
        for index, (plan, rates, opt_out) in enumerate(INGEST_ORGS):
            org = tenancy.create_organization(
                session,
                name=f"Bench {plan} {index}",
                plan=plan,
                actor=ACTOR,
                contract_rates=rates,
                contract_opt_out=opt_out,
            )
            for number in range(PROJECTS_PER_ORG):
                project = tenancy.create_project(
                    session, organization_id=org.id, name=f"project {number}", actor=ACTOR
                )
                key, _secret = tenancy.create_project_key(
                    session, project_id=project.id, actor=ACTOR
                )
                targets.append(Target(org.id, project.id, key.id, plan))
        _staff, secret = tenancy.create_staff_key(session, role="admin", actor=ACTOR)
    return targets, secret


# --- events ---------------------------------------------------------------------------------


# --- 1-3. ingest: HTTP, in-process, raw COPY, batch by batch in turn ------------------------


# The repository functions ingest_batch calls for the database work, timed in place during the
# in-process rounds (ingest_batch reaches them as attributes of the repository module).
TIMED_STEPS = ("existing_hashes", "insert_rows")


@contextmanager
def timing_steps(steps: dict[str, list[float]]) -> Iterator[None]:
    """Add each call's seconds to ``steps[name][-1]`` while inside; restore the originals."""
    originals = {name: getattr(ledger_repository, name) for name in TIMED_STEPS}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                steps[name][-1] += time.perf_counter() - began

        return wrapper

    for name, function in originals.items():
        setattr(ledger_repository, name, timed(name, function))
    try:
        yield
    finally:
        for name, function in originals.items():
            setattr(ledger_repository, name, function)


class IngestPaths:
    """The three ways one batch reaches ``ledger_entries`` (or its copy), each timed alone."""

    def __init__(
        self, client: httpx.Client, factory: sessionmaker[Session], raw: psycopg.Connection[Any]
    ) -> None:
        self.client = client
        self.factory = factory
        self.raw = raw
        self.steps: dict[str, list[float]] = {name: [] for name in TIMED_STEPS}
        self.json_at = frozenset(i for i, c in enumerate(LEDGER_COLUMNS) if c in JSON_COLUMNS)
        # Same definition as ledger_entries, foreign keys included (LIKE does not copy them).
        raw.execute("CREATE TABLE ledger_copy (LIKE ledger_entries INCLUDING ALL)")
        raw.execute(
            "ALTER TABLE ledger_copy "
            "ADD FOREIGN KEY (organization_id) REFERENCES organizations (id), "
            "ADD FOREIGN KEY (project_id) REFERENCES projects (id)"
        )
        raw.commit()

    def http(self, events: list[dict[str, Any]]) -> float:
        # Serialised before the clock starts: the client's JSON encoding is not measured.
        body = orjson.dumps({"events": events})
        began = time.perf_counter()
        response = self.client.post("/v1/governance/ledger/events", content=body)
        elapsed = time.perf_counter() - began
        if response.status_code != 200 or response.json().get("recorded") != len(events):
            raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:500]}")
        return elapsed

    def in_process(self, events: list[dict[str, Any]]) -> float:
        validated = LedgerBatchIn.model_validate({"events": events}).events
        for seconds in self.steps.values():
            seconds.append(0.0)
        began = time.perf_counter()
        with timing_steps(self.steps), session_scope(self.factory) as session:
            result = ingest_batch(session, validated, sampling=BENCH_SAMPLING)
        elapsed = time.perf_counter() - began
        if result.recorded != len(events):
            raise RuntimeError(f"in-process ingest recorded {result.recorded} of {len(events)}")
        return elapsed

    def copy(self, events: list[dict[str, Any]]) -> float:
        """COPY the rows ``in_process`` just wrote: fully built and priced, what ingest writes."""
        columns = ", ".join(LEDGER_COLUMNS)
        ids = sorted(e["request_id"] for e in events)
        # A range, not = ANY(ids): that compares every ledger row with every id (untimed, but
        # minutes per batch once the ledger is large). The ids of a batch are consecutive.
        rows = self.raw.execute(
            f"SELECT {columns} FROM ledger_entries WHERE request_id BETWEEN %s AND %s",
            (ids[0], ids[-1]),
        ).fetchall()
        self.raw.commit()
        if len(rows) != len(events):
            raise RuntimeError(f"found {len(rows)} rows of the {len(events)} just ingested")
        began = time.perf_counter()
        with (
            self.raw.cursor() as cursor,
            cursor.copy(f"COPY ledger_copy ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                # The same per-row work as the repository's COPY path.
                copy.write_row(
                    [
                        orjson.dumps(v).decode() if i in self.json_at else v
                        for i, v in enumerate(row)
                    ]
                )
        self.raw.commit()
        return time.perf_counter() - began


def bench_ingest(
    db: BenchDb,
    workdir: Path,
    factory: sessionmaker[Session],
    targets: list[Target],
    staff_secret: str,
    sizes: list[int],
    progress: Progress,
) -> dict[str, Any]:
    """Each batch goes HTTP, then in-process, then COPY: a busy neighbour slows all three."""
    headers = {"Authorization": f"Token {staff_secret}", "Content-Type": "application/json"}
    timings: dict[str, list[float]] = {"http": [], "in_process": [], "copy": []}
    task = progress.add_task("ingest (HTTP, in-process, COPY)", total=sum(sizes))
    with (
        running_server(db, workdir) as base_url,
        httpx.Client(base_url=base_url, headers=headers, timeout=600) as client,
        psycopg.connect(db.conninfo) as raw,
    ):
        paths = IngestPaths(client, factory, raw)
        http_rng, proc_rng = random.Random(1), random.Random(2)
        # One small untimed round first: connections, caches, the server's first request.
        paths.http(make_events(http_rng, targets, prefix="warm-http", start=0, count=100))
        warm = make_events(proc_rng, targets, prefix="warm", start=0, count=100)
        paths.in_process(warm)
        paths.copy(warm)
        for seconds in paths.steps.values():
            seconds.clear()
        start = 0
        for size in sizes:
            timings["http"].append(
                paths.http(make_events(http_rng, targets, prefix="http", start=start, count=size))
            )
            events = make_events(proc_rng, targets, prefix="proc", start=start, count=size)
            timings["in_process"].append(paths.in_process(events))
            timings["copy"].append(paths.copy(events))
            start += size
            progress.advance(task, size)
        raw.execute("DROP TABLE ledger_copy")
        raw.commit()
    http = _throughput(timings["http"], sizes, "events")
    in_process = _throughput(timings["in_process"], sizes, "events")
    # The service's own database steps inside those batches, timed in place.
    in_process["step_seconds_median"] = {
        f"repository.{name}": round(statistics.median(values), 4)
        for name, values in paths.steps.items()
    }
    copy = _throughput(timings["copy"], sizes, "rows")
    return {
        "http": http,
        "in_process": in_process,
        "copy_baseline": copy,
        "http_over_copy": round(http["events_per_s"] / copy["rows_per_s"], 3),
        "in_process_over_copy": round(in_process["events_per_s"] / copy["rows_per_s"], 3),
        "http_target_over_copy": HTTP_TARGET,
        "http_target_met": http["events_per_s"] / copy["rows_per_s"] >= HTTP_TARGET,
        # What HTTP adds to a batch: body parsing, validation, transport (median batches).
        "http_extra_seconds_per_batch": round(
            http["batch_seconds"]["median"] - in_process["batch_seconds"]["median"], 4
        ),
    }


def _throughput(timings: list[float], sizes: list[int], unit: str) -> dict[str, Any]:
    return {
        unit: sum(sizes),
        "batches": len(sizes),
        "seconds": round(sum(timings), 3),
        f"{unit}_per_s": round(sum(sizes) / sum(timings)),
        "batch_seconds": _seconds(timings),
    }


# --- where an ingest request's time goes ----------------------------------------------------

# (label, file suffix, function) whose cumulative time the profile reports.
PROFILED = (
    ("ingest_batch", "app/ledger/service.py", "ingest_batch"),
    ("plan", "app/ledger/service.py", "_plan"),
    ("resolve_projects", "app/ledger/service.py", "_resolve_projects"),
    ("check_keys", "app/ledger/service.py", "_check_keys"),
    ("event_hashes", "app/ledger/service.py", "event_hashes"),
    ("build_row", "app/ledger/service.py", "__call__"),
    ("rate_for", "app/pricing/service.py", "rate_for"),
    ("compute_amounts", "app/pricing/service.py", "compute_amounts"),
    ("existing_hashes", "app/ledger/repository.py", "existing_hashes"),
    ("insert_rows_copy", "app/ledger/repository.py", "insert_rows"),
    ("commit", "sqlalchemy/orm/session.py", "commit"),
)


def _best_time(work: Callable[[], object], runs: int = 5) -> float:
    """Fastest of ``runs``: on shared cores the minimum is the least disturbed figure."""
    timings = []
    for _ in range(runs):
        began = time.perf_counter()
        work()
        timings.append(time.perf_counter() - began)
    return round(min(timings), 4)


def _canonical_json_hash(events: list[LedgerEventIn]) -> list[str]:
    # A cheaper digest to compare with (not what the service stores): pydantic's own JSON,
    # whose key order is the model's field order, so it is stable without sorting.
    return [hashlib.sha256(e.model_dump_json().encode()).hexdigest() for e in events]


def bench_breakdown(
    factory: sessionmaker[Session], targets: list[Target], size: int
) -> dict[str, Any]:
    """One batch, piece by piece: body parsing, validation, hashing, lookups, profiled ingest.

    Each piece is the best of several runs (CPU-bound work on shared cores); the profile is
    the fastest of three profiled runs.
    """
    raw = make_events(random.Random(3), targets, prefix="prof", start=0, count=size)
    body = orjson.dumps({"events": raw})
    adapter = TypeAdapter(LedgerBatchIn)
    parsed = json.loads(body)
    events = LedgerBatchIn.model_validate_json(body).events
    pieces = {
        # What FastAPI does for a `batch: LedgerBatchIn` parameter: request.json() (stdlib),
        # then the field's TypeAdapter.validate_python(..., from_attributes=True).
        "fastapi_json_loads": _best_time(lambda: json.loads(body)),
        "fastapi_validate_python": _best_time(
            lambda: adapter.validate_python(parsed, from_attributes=True)
        ),
        # The alternative: pydantic parses and validates the raw bytes in one pass.
        "model_validate_json": _best_time(lambda: LedgerBatchIn.model_validate_json(body)),
        "event_hash_all": _best_time(lambda: [event_hash(e) for e in events]),
        "model_dump_json_hash_all": _best_time(lambda: _canonical_json_hash(events)),
    }
    # Rolled back, so the very same batch can be ingested again and again.
    pieces["ingest_batch_rolled_back"] = _best_time(lambda: _ingest(factory, events), runs=3)
    keys = list(dict.fromkeys((e.project_id, e.request_id) for e in events))
    lookups = {"new_events": _time_lookups(factory, keys)}
    profiles = [_profiled_ingest(factory, events) for _ in range(3)]
    profile, profiled = min(profiles, key=lambda p: p[1])
    _ingest(factory, events, commit=True)
    lookups["resent_events"] = _time_lookups(factory, keys)
    return {
        "events": size,
        "body_bytes": len(body),
        "best_seconds_per_batch": pieces,
        "duplicate_lookup_best_seconds": lookups,
        "profile": _profile_summary(profile, profiled),
    }


def http_request_split(ingest: dict[str, Any], breakdown: dict[str, Any]) -> dict[str, Any]:
    """Where the median HTTP batch's time goes: parsing and validation (best-of, from the
    breakdown), then the in-process median batch of the same rounds cut by its own timed
    database steps, and what is left for transport and framework. Approximate: medians of
    different batches do not add up exactly."""
    pieces = breakdown["best_seconds_per_batch"]
    request = ingest["http"]["batch_seconds"]["median"]
    in_process = ingest["in_process"]["batch_seconds"]["median"]
    steps = ingest["in_process"]["step_seconds_median"]
    lookup, insert = steps["repository.existing_hashes"], steps["repository.insert_rows"]
    parse_validate = pieces["fastapi_json_loads"] + pieces["fastapi_validate_python"]
    split = {
        "json_parse_and_validation": parse_validate,
        "duplicate_lookup_queries": lookup,
        "copy_write": insert,
        "hash_price_build_rows_and_checks": in_process - lookup - insert,
        "transport_and_framework": request - parse_validate - in_process,
    }
    return {
        "request_seconds": request,
        "seconds": {k: round(v, 4) for k, v in split.items()},
        "share": {k: round(v / request, 3) for k, v in split.items()},
    }


def _ingest(
    factory: sessionmaker[Session], events: list[LedgerEventIn], commit: bool = False
) -> None:
    session = factory()
    try:
        ingest_batch(session, events, sampling=BENCH_SAMPLING)
        if commit:
            session.commit()
    finally:
        session.rollback()
        session.close()


def _profiled_ingest(
    factory: sessionmaker[Session], events: list[LedgerEventIn]
) -> tuple[cProfile.Profile, float]:
    profile = cProfile.Profile()
    began = time.perf_counter()
    profile.enable()
    _ingest(factory, events)
    profile.disable()
    return profile, time.perf_counter() - began


# One statement per batch, one probe of the unique index (project_id, request_id) per key:
# LIMIT 1 keeps the lateral subquery a per-key index scan whatever the statistics say, so the
# plan neither depends on ANALYZE having run nor on a generic plan psycopg's server-side
# prepared statements (after 5 executions) may have cached while the ledger was small.
LOOKUP_LATERAL = text(
    "SELECT k.p, k.r, l.event_hash "
    "FROM unnest(CAST(:projects AS uuid[]), CAST(:requests AS varchar[])) AS k (p, r) "
    "JOIN LATERAL (SELECT event_hash FROM ledger_entries "
    "WHERE project_id = k.p AND request_id = k.r LIMIT 1) AS l ON true"
)


def _lookup_lateral(
    session: Session, keys: list[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], str]:
    params = {"projects": [k[0] for k in keys], "requests": [k[1] for k in keys]}
    return {(p, r): h for p, r, h in session.execute(LOOKUP_LATERAL, params)}


def _time_lookups(
    factory: sessionmaker[Session], keys: list[tuple[uuid.UUID, str]]
) -> dict[str, float | int]:
    """The service's duplicate lookup (repository.existing_hashes) vs LOOKUP_LATERAL."""
    with session_scope(factory) as session:
        found = len(existing_hashes(session, keys))
        if len(_lookup_lateral(session, keys)) != found:
            raise RuntimeError("the two duplicate lookups disagree")
        analyzed = session.execute(
            text("SELECT reltuples >= 0 FROM pg_class WHERE relname = 'ledger_entries'")
        ).scalar()
        return {
            "keys": len(keys),
            "found": found,
            "ledger_analyzed": bool(analyzed),
            "existing_hashes": _best_time(lambda: existing_hashes(session, keys)),
            "lateral_unique_probe": _best_time(lambda: _lookup_lateral(session, keys)),
        }


def _profile_summary(profile: cProfile.Profile, wall: float) -> dict[str, Any]:
    entries = [e for e in profile.getstats() if not isinstance(e.code, str)]
    cumulative: dict[str, float] = {}
    for label, suffix, name in PROFILED:
        cumulative[label] = sum(
            e.totaltime
            for e in entries
            if not isinstance(e.code, str)
            and e.code.co_name == name
            and e.code.co_filename.endswith(suffix)
        )
    own = sorted(entries, key=lambda e: e.inlinetime, reverse=True)[:12]
    top = [(e.code, e) for e in own if not isinstance(e.code, str)]
    return {
        "note": "cProfile of ingest_batch (rolled back); includes the profiler's overhead",
        "wall_seconds": round(wall, 4),
        "cumulative_seconds": {k: round(v, 4) for k, v in cumulative.items()},
        "share_of_wall": {k: round(v / wall, 3) for k, v in cumulative.items()},
        "top_own_time": [
            {
                "function": _where(code),
                "calls": e.callcount,
                "own_seconds": round(e.inlinetime, 4),
            }
            for code, e in top
        ],
    }


def _where(code: CodeType) -> str:
    path = code.co_filename
    for marker in ("site-packages/", f"{ROOT}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{code.co_firstlineno}({code.co_name})"


# --- the run --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="admin URL of the PostgreSQL server")
    parser.add_argument("--events", type=int, default=200_000, help="events per ingest phase")
    parser.add_argument("--batch-size", type=int, default=10_000, help="events per batch")
    parser.add_argument("--report-rows", type=int, default=1_000_000, help="rows in the report")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per report engine")
    parser.add_argument(
        "--server-workers", type=int, default=2, help="mip serve --workers in the concurrent phase"
    )
    parser.add_argument(
        "--streams", type=int, default=2, help="batches in flight in the concurrent phase"
    )
    args = parser.parse_args(argv)
    if min(args.events, args.batch_size, args.report_rows, args.runs, args.streams) < 1:
        parser.error("--events, --batch-size, --report-rows, --runs, --streams must be positive")
    if args.server_workers < 1:
        parser.error("--server-workers must be positive")
    return args


def machine(db: BenchDb) -> dict[str, Any]:
    with psycopg.connect(db.conninfo) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgres_server_version": row[0] if row else None,
        "packages": {
            name: importlib.metadata.version(name)
            for name in ("fastapi", "uvicorn", "pydantic", "sqlalchemy", "psycopg", "duckdb")
        },
        "loadavg_start": [round(v, 2) for v in os.getloadavg()],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = batch_sizes(args.events, args.batch_size)
    result: dict[str, Any] = {"benchmark": "ledger"}
    with (
        tempfile.TemporaryDirectory(prefix="mip-bench-") as workdir,
        bench_database(args.pg_url) as db,
        Progress(console=console) as progress,
    ):
        pg_url = make_url(args.pg_url).render_as_string(hide_password=True)
        result["parameters"] = {**vars(args), "pg_url": pg_url, "database": db.name}
        result["machine"] = machine(db)
        engine = create_db_engine(db.sqlalchemy_url)
        try:
            factory = make_sessionmaker(engine)
            targets, staff_secret = create_targets(factory)
            # As the service does once started (app.main): the in-process figures then measure
            # ingest, not this process's heap. Every path, the COPY baseline too, runs under it.
            settle_heap()
            console.log(f"ingest: {len(sizes)} batches, each over HTTP, in-process and COPY")
            result["ingest"] = bench_ingest(
                db, Path(workdir), factory, targets, staff_secret, sizes, progress
            )
            console.log(
                f"concurrent ingest: {args.streams} batches in flight, "
                f"{args.server_workers} server workers, and COPY with as many streams"
            )
            result["ingest_concurrent"] = bench_concurrent(
                db,
                Path(workdir),
                targets,
                staff_secret,
                sizes,
                workers=args.server_workers,
                streams=args.streams,
                progress=progress,
            )
            console.log("one more batch, piece by piece and under cProfile")
            breakdown = bench_breakdown(factory, targets, args.batch_size)
            result["http_breakdown"] = {
                "http_request_split": http_request_split(result["ingest"], breakdown),
                **breakdown,
            }
            console.log(f"billing report over {args.report_rows:,} rows: PostgreSQL vs DuckDB")
            result["billing_report"] = bench_report(
                db, factory, args.report_rows, args.runs, progress
            )
        finally:
            engine.dispose()
        result["machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    return result


def _stop(signum: int, _frame: object) -> None:
    # Turn SIGTERM into an exception so the server is stopped and the database dropped.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    result = run(args)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
