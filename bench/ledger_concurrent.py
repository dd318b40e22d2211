"""The concurrent part of bench/ledger.py: several batches in flight at once.

A gateway sends batches in parallel to several ``mip serve`` workers, so one batch's Python work
(parsing, validation, hashing, pricing) overlaps another's COPY on the database. The baseline
is raw COPY of the same rows with as many streams, measured right after in the same run.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from rich.progress import Progress

from app.ledger.repository import LEDGER_COLUMNS
from bench.ledger_common import (
    JSON_COLUMNS,
    BenchDb,
    Target,
    make_events,
    running_server,
)

PREFIX = "conc"


def _in_streams(streams: int, jobs: list[Any], work: Callable[[Any], None]) -> float:
    """Run ``work(job)`` for every job on ``streams`` threads; wall seconds of the whole."""
    pending = list(reversed(jobs))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def stream() -> None:
        while True:
            with lock:
                if not pending or errors:
                    return
                job = pending.pop()
            try:
                work(job)
            except BaseException as exc:  # reported after the join, not swallowed
                with lock:
                    errors.append(exc)
                return

    threads = [threading.Thread(target=stream) for _ in range(streams)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"a stream failed: {errors[0]!r}") from errors[0]
    return elapsed


def _http_phase(
    base_url: str, headers: dict[str, str], bodies: list[tuple[bytes, int]], streams: int
) -> float:
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def post(job: tuple[bytes, int]) -> None:
        body, count = job
        client: httpx.Client | None = getattr(local, "client", None)
        if client is None:
            client = httpx.Client(base_url=base_url, headers=headers, timeout=600)
            local.client = client
            with lock:
                clients.append(client)
        response = client.post("/v1/governance/ledger/events", content=body)
        if response.status_code != 200 or response.json().get("recorded") != count:
            raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:300]}")

    try:
        return _in_streams(streams, bodies, post)
    finally:
        for client in clients:
            client.close()


def _copy_phase(db: BenchDb, batches: list[list[tuple[Any, ...]]], streams: int) -> float:
    columns = ", ".join(LEDGER_COLUMNS)
    json_at = frozenset(i for i, c in enumerate(LEDGER_COLUMNS) if c in JSON_COLUMNS)
    connections = [psycopg.connect(db.conninfo) for _ in range(streams)]
    free = list(connections)
    lock = threading.Lock()

    def copy(rows: list[tuple[Any, ...]]) -> None:
        with lock:
            conn = free.pop()
        try:
            with (
                conn.cursor() as cursor,
                cursor.copy(f"COPY ledger_copy_concurrent ({columns}) FROM STDIN") as sink,
            ):
                for row in rows:
                    sink.write_row(
                        [orjson.dumps(v).decode() if i in json_at else v for i, v in enumerate(row)]
                    )
            conn.commit()
        finally:
            with lock:
                free.append(conn)

    try:
        return _in_streams(streams, batches, copy)
    finally:
        for conn in connections:
            conn.close()


def bench_concurrent(
    db: BenchDb,
    workdir: Path,
    targets: list[Target],
    staff_secret: str,
    sizes: list[int],
    *,
    workers: int,
    streams: int,
    progress: Progress,
) -> dict[str, Any]:
    """HTTP ingest with ``streams`` batches in flight against ``workers`` server processes."""
    rng = random.Random(3)
    bodies: list[tuple[bytes, int]] = []
    start = 0
    for size in sizes:
        events = make_events(rng, targets, prefix=PREFIX, start=start, count=size)
        bodies.append((orjson.dumps({"events": events}), size))
        start += size
    total = sum(sizes)
    task = progress.add_task(f"concurrent ingest ({streams} streams, {workers} workers)", total=2)
    headers = {"Authorization": f"Token {staff_secret}", "Content-Type": "application/json"}
    with running_server(db, workdir, workers=workers) as base_url:
        # Untimed: every worker process answers a first request.
        with httpx.Client(base_url=base_url, timeout=60) as warm:
            for _ in range(workers * 2):
                warm.get("/readyz")
        http_seconds = _http_phase(base_url, headers, bodies, streams)
    progress.advance(task)

    with psycopg.connect(db.conninfo) as raw:
        raw.execute("CREATE TABLE ledger_copy_concurrent (LIKE ledger_entries INCLUDING ALL)")
        raw.execute(
            "ALTER TABLE ledger_copy_concurrent "
            "ADD FOREIGN KEY (organization_id) REFERENCES organizations (id), "
            "ADD FOREIGN KEY (project_id) REFERENCES projects (id)"
        )
        raw.commit()
        rows = raw.execute(
            f"SELECT {', '.join(LEDGER_COLUMNS)} FROM ledger_entries "
            "WHERE request_id LIKE %s ORDER BY request_id",
            (f"{PREFIX}-%",),
        ).fetchall()
        raw.commit()
    if len(rows) != total:
        raise RuntimeError(f"found {len(rows)} of the {total} rows ingested concurrently")
    batches, offset = [], 0
    for size in sizes:
        batches.append(rows[offset : offset + size])
        offset += size
    copy_seconds = _copy_phase(db, batches, streams)
    with psycopg.connect(db.conninfo) as raw:
        raw.execute("DROP TABLE ledger_copy_concurrent")
        raw.commit()
    progress.advance(task)
    http_rate, copy_rate = total / http_seconds, total / copy_seconds
    return {
        "server_workers": workers,
        "streams": streams,
        "events": total,
        "http": {"seconds": round(http_seconds, 3), "events_per_s": round(http_rate)},
        "copy_baseline": {"seconds": round(copy_seconds, 3), "rows_per_s": round(copy_rate)},
        "http_over_copy": round(http_rate / copy_rate, 3),
    }
