"""The billing-report part of bench/ledger.py: build_report on PostgreSQL vs DuckDB."""

from __future__ import annotations

import io
import random
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import duckdb
import orjson
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from rich.progress import Progress
from sqlalchemy.orm import Session, sessionmaker

from app.billing.schemas import BillingReport
from app.billing.service import build_report, millis_to_minutes
from app.kit.db import session_scope
from app.ledger.repository import LEDGER_COLUMNS
from app.pricing.service import compute_amounts
from app.tenancy import service as tenancy
from bench.ledger_common import (
    ACTOR,
    FEATURES,
    LANGUAGES,
    LIST_RATES,
    METHODS,
    MODELS,
    MONTH_SECONDS,
    REPORT_MONTH,
    REPORT_ORGS,
    REPORT_PERIOD,
    TAGS,
    BenchDb,
)

# --- 4. billing report: build_report on PostgreSQL vs DuckDB --------------------------------


@dataclass(frozen=True, slots=True)
class ReportOrg:
    organization_id: uuid.UUID
    project_id: uuid.UUID
    plan: str
    rate: int
    version: str
    contract_opt_out: bool


def create_report_orgs(factory: sessionmaker[Session], count: int) -> list[ReportOrg]:
    """``count`` organizations (every plan; some enterprise ones opted out by contract)."""
    orgs: list[ReportOrg] = []
    with session_scope(factory) as session:
        for index in range(count):
            plan = ("pay_as_you_go", "growth", "enterprise")[index % 3]
            rate = LIST_RATES.get(plan, 2_000 + 250 * (index % 5))
            opt_out = plan == "enterprise" and index % 4 == 2
            org = tenancy.create_organization(
                session,
                name=f"Report org {index:02d}",
                plan=plan,
                actor=ACTOR,
                contract_rates={"*": rate} if plan == "enterprise" else None,
                contract_opt_out=opt_out,
            )
            project = tenancy.create_project(
                session, organization_id=org.id, name="main", actor=ACTOR
            )
            version = "contract" if plan == "enterprise" else "2026-01"
            orgs.append(ReportOrg(org.id, project.id, plan, rate, version, opt_out))
    return orgs


def amounts(rate: int, millis: int, discount_bps: int) -> tuple[int, int, int]:
    """(list, discount, net) by the pricing rule, in integers: durations are whole ms."""
    list_amount = (2 * rate * millis + 60_000) // 120_000
    net = (2 * rate * millis * (10_000 - discount_bps) + 600_000_000) // 1_200_000_000
    return list_amount, list_amount - net, net


def _check_amounts(rng: random.Random) -> None:
    for _ in range(2_000):
        rate, millis = rng.randrange(1, 6_000), rng.randrange(0, 3_600_000)
        bps = rng.choice((0, 5_000))
        expected = compute_amounts(
            rate_micros_per_minute=rate, duration_seconds=millis / 1000, discount_bps=bps
        )
        if amounts(rate, millis, bps) != expected:
            raise RuntimeError(f"synthetic pricing differs from the service's: {rate} {millis}")


def report_table(
    rng: random.Random, orgs: list[ReportOrg], count: int, progress: Progress
) -> pa.Table:
    """``count`` priced ledger rows billed in REPORT_PERIOD (2% late adjustments)."""
    _check_amounts(rng)
    task = progress.add_task("generate report rows", total=count)
    names = (
        "id request_id organization_id project_id created_at method model_name model_tier "
        "language features tags duration_seconds http_status mip_opt_out opt_out_source plan "
        "price_book_version rate_micros_per_minute discount_bps list_amount_micros "
        "discount_micros amount_micros usage_period is_adjustment"
    ).split()
    columns: dict[str, list[Any]] = {name: [] for name in names}
    features = [orjson.dumps(sorted(rng.sample(FEATURES, k))).decode() for k in (0, 1, 2, 3)]
    tags = [orjson.dumps(sorted(rng.sample(TAGS, k))).decode() for k in (0, 1, 2)]
    month_us = int(REPORT_MONTH.timestamp() * 1_000_000)
    for number in range(count):
        org = orgs[rng.randrange(len(orgs))]
        model, tier = MODELS[rng.randrange(len(MODELS))]
        late = rng.random() < 0.02
        status = 200 if rng.random() < 0.97 else rng.choice((400, 499, 500))
        if org.contract_opt_out:
            opt_out, source = True, "contract"
        else:
            draw = rng.random()
            opt_out, source = draw < 0.3, "request" if draw < 0.45 else "default"
        millis = rng.randrange(500, 900_000)
        bps = 0 if opt_out else 5_000
        priced = amounts(org.rate, millis, bps) if status < 400 else (0, 0, 0)
        offset_us = rng.randrange(MONTH_SECONDS) * 1_000_000
        values = (
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            f"rpt-{number:08d}",
            str(org.organization_id),
            str(org.project_id),
            month_us + offset_us - (30 * 86_400_000_000 if late else 0),
            METHODS[rng.randrange(len(METHODS))],
            model,
            tier,
            LANGUAGES[rng.randrange(len(LANGUAGES))],
            features[rng.randrange(4)],
            tags[rng.randrange(3)],
            millis / 1000,
            status,
            opt_out,
            source,
            org.plan,
            org.version,
            org.rate,
            bps,
            *priced,
            "2026-09" if late else REPORT_PERIOD,
            late,
        )
        for name, value in zip(names, values, strict=True):
            columns[name].append(value)
        if number % 50_000 == 0:
            progress.update(task, completed=number)
    progress.update(task, completed=count)
    return _as_table(columns, count)


def _as_table(columns: dict[str, list[Any]], count: int) -> pa.Table:
    timestamp = pa.timestamp("us", tz="UTC")
    created = pa.array(columns.pop("created_at"), pa.int64()).cast(timestamp)
    recorded = pa.array([int(time.time() * 1_000_000)] * count, pa.int64()).cast(timestamp)
    arrays: dict[str, pa.Array] = {
        "created_at": created,
        "recorded_at": recorded,
        "endpoint": pa.repeat("/v1/listen", count),
        "api_key_id": pa.nulls(count, pa.string()),
        "model_uuid": pa.repeat(str(uuid.uuid5(uuid.NAMESPACE_DNS, "bench")), count),
        "model_version": pa.repeat("2026-07-01.1", count),
        "channels": pa.repeat(1, count),
        "sample_kept": pa.repeat(False, count),
        "sample_selected": pa.repeat(False, count),
        "sampling_rate": pa.repeat(0.0, count),
        "billing_period": pa.repeat(REPORT_PERIOD, count),
        "event_hash": pa.repeat("0" * 64, count),
    }
    for name, values in columns.items():
        arrays[name] = pa.array(values)
    return pa.table({name: arrays[name] for name in LEDGER_COLUMNS})


def load_into_postgres(db: BenchDb, table: pa.Table, progress: Progress) -> float:
    """COPY the rows in CSV chunks, then VACUUM ANALYZE (what autovacuum leaves behind)."""
    task = progress.add_task("COPY report rows into PostgreSQL", total=table.num_rows)
    columns = ", ".join(table.column_names)
    options = pa_csv.WriteOptions(include_header=False)
    began = time.perf_counter()
    with psycopg.connect(db.conninfo) as conn:
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY ledger_entries ({columns}) FROM STDIN (FORMAT csv)") as copy,
        ):
            for chunk in table.to_batches(max_chunksize=50_000):
                buffer = io.BytesIO()
                pa_csv.write_csv(chunk, buffer, options)
                copy.write(buffer.getvalue())
                progress.advance(task, chunk.num_rows)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM (ANALYZE) ledger_entries")
    return round(time.perf_counter() - began, 2)


# What build_report computes, in plain SQL that PostgreSQL and DuckDB both run: aggregate the
# period's rows by organization and model, then join the organizations (name, plan).
REPORT_SQL = """
SELECT lines.organization_id, o.name, o.plan, lines.model_name, lines.requests,
       lines.billable_requests, lines.millis_opted_in, lines.millis_opted_out,
       lines.list_amount_micros, lines.discount_micros, lines.net_amount_micros,
       lines.adjustments_micros, lines.adjustment_requests
FROM (
    SELECT organization_id, model_name,
           count(*) AS requests,
           count(*) FILTER (WHERE http_status < 400) AS billable_requests,
           sum(CAST(round(duration_seconds * 1000) AS BIGINT))
               FILTER (WHERE http_status < 400 AND NOT mip_opt_out) AS millis_opted_in,
           sum(CAST(round(duration_seconds * 1000) AS BIGINT))
               FILTER (WHERE http_status < 400 AND mip_opt_out) AS millis_opted_out,
           sum(list_amount_micros) AS list_amount_micros,
           sum(discount_micros) AS discount_micros,
           sum(amount_micros) AS net_amount_micros,
           coalesce(sum(amount_micros) FILTER (WHERE is_adjustment), 0) AS adjustments_micros,
           count(*) FILTER (WHERE is_adjustment) AS adjustment_requests
    FROM ledger_entries
    WHERE billing_period = '{period}'
    GROUP BY organization_id, model_name
) AS lines
JOIN organizations AS o ON o.id = lines.organization_id
ORDER BY o.name, lines.organization_id, lines.model_name
"""

FIGURES = (
    "requests",
    "billable_requests",
    "minutes_opted_in",
    "minutes_opted_out",
    "list_amount_micros",
    "discount_micros",
    "net_amount_micros",
    "adjustments_micros",
    "adjustment_requests",
)
LineKey = tuple[uuid.UUID, str]
ReportLines = dict[LineKey, tuple[Decimal | int, ...]]


def _sql_lines(rows: list[tuple[Any, ...]]) -> ReportLines:
    """REPORT_SQL rows as report figures (minutes rounded the way build_report rounds them)."""
    lines: ReportLines = {}
    for org_id, _name, _plan, model, requests, billable, ms_in, ms_out, *money in rows:
        key = (org_id if isinstance(org_id, uuid.UUID) else uuid.UUID(str(org_id)), model)
        lines[key] = (
            int(requests),
            int(billable),
            millis_to_minutes(ms_in),
            millis_to_minutes(ms_out),
            *(int(v) for v in money),
        )
    return lines


def _report_lines(report: BillingReport) -> ReportLines:
    return {
        (line.organization_id, line.model_name): tuple(getattr(line, f) for f in FIGURES)
        for line in report.lines
    }


def _totals(lines: ReportLines) -> dict[str, Decimal | int]:
    return {
        name: sum((figures[i] for figures in lines.values()), Decimal(0) if "min" in name else 0)
        for i, name in enumerate(FIGURES)
    }


def timed_runs(work: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    timings: list[float] = []
    result: Any = None
    for _ in range(runs):
        began = time.perf_counter()
        result = work()
        timings.append(time.perf_counter() - began)
    return timings, result


def duckdb_report(db: BenchDb, table: pa.Table, runs: int) -> tuple[list[float], list[Any]]:
    """The same GROUP BY (and join) on the same rows, loaded into an in-memory DuckDB."""
    with psycopg.connect(db.conninfo) as conn:
        orgs = conn.execute("SELECT id::text, name, plan FROM organizations").fetchall()
    org_table = pa.table(
        {"id": [o[0] for o in orgs], "name": [o[1] for o in orgs], "plan": [o[2] for o in orgs]}
    )
    con = duckdb.connect()
    try:
        con.register("arrow_rows", table)
        con.register("arrow_orgs", org_table)
        con.execute(
            "CREATE TABLE ledger_entries AS SELECT * REPLACE (id::UUID AS id, "
            "organization_id::UUID AS organization_id, project_id::UUID AS project_id) "
            "FROM arrow_rows"
        )
        con.execute(
            "CREATE TABLE organizations AS SELECT id::UUID AS id, name, plan FROM arrow_orgs"
        )
        sql = REPORT_SQL.format(period=REPORT_PERIOD)
        return timed_runs(lambda: con.execute(sql).fetchall(), runs)
    finally:
        con.close()


def postgres_sql_report(db: BenchDb, runs: int) -> tuple[list[float], list[Any]]:
    sql = REPORT_SQL.format(period=REPORT_PERIOD)
    with psycopg.connect(db.conninfo) as conn:
        return timed_runs(lambda: conn.execute(sql).fetchall(), runs)


def bench_report(
    db: BenchDb, factory: sessionmaker[Session], rows: int, runs: int, progress: Progress
) -> dict[str, Any]:
    orgs = create_report_orgs(factory, REPORT_ORGS)
    table = report_table(random.Random(4), orgs, rows, progress)
    load_seconds = load_into_postgres(db, table, progress)
    task = progress.add_task("billing report runs", total=3 * runs)
    reports: list[BillingReport] = []

    def service_report() -> None:
        with session_scope(factory) as session:
            reports.append(build_report(session, period=REPORT_PERIOD, organization_id=None))
        progress.advance(task)

    service_s, _ = timed_runs(service_report, runs)
    pg_sql_s, pg_rows = postgres_sql_report(db, runs)
    progress.advance(task, runs)
    duck_s, duck_rows = duckdb_report(db, table, runs)
    progress.advance(task, runs)
    build_median, duck_median = statistics.median(service_s), statistics.median(duck_s)
    return {
        "rows": rows,
        "period": REPORT_PERIOD,
        "organizations": len(orgs),
        "models": len(MODELS),
        "load_seconds": load_seconds,
        "runs": runs,
        "build_report_seconds": round(build_median, 4),
        "build_report_runs": [round(s, 4) for s in service_s],
        "postgres_raw_sql_seconds": round(statistics.median(pg_sql_s), 4),
        "duckdb_seconds": round(duck_median, 4),
        "duckdb_runs": [round(s, 4) for s in duck_s],
        "build_report_over_duckdb": round(build_median / duck_median, 2),
        **compare_reports(reports, _sql_lines(pg_rows), _sql_lines(duck_rows)),
    }


def compare_reports(
    reports: list[BillingReport], raw_sql: ReportLines, duck: ReportLines
) -> dict[str, Any]:
    """Do build_report and DuckDB give the same lines and totals? Every figure exactly."""
    ours = _report_lines(reports[-1])
    ours_totals, duck_totals = _totals(ours), _totals(duck)
    matching = sum(1 for k, v in ours.items() if duck.get(k) == v)
    return {
        "report_lines": len(ours),
        "lines_matching_duckdb": matching,
        "totals_match": ours.keys() == duck.keys()
        and matching == len(ours)
        and ours_totals == duck_totals,
        "totals": {k: _plain(v) for k, v in ours_totals.items()},
        "duckdb_totals": {k: _plain(v) for k, v in duck_totals.items()},
        "raw_sql_equals_build_report": raw_sql == ours,
        # Parallel aggregation must not change a figure between two runs of the same report.
        "build_report_runs_identical": all(_report_lines(r) == ours for r in reports),
    }


def _plain(value: Decimal | int) -> float | int:
    return float(value) if isinstance(value, Decimal) else value
