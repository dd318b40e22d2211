"""Compliance at scale: the period report over a month of ledger rows, and the audit log's
signed checkpoint, export and offline verification over many entries (PostgreSQL).

Prints one JSON object of figures on stdout; progress goes to stderr::

    .venv/bin/python -m bench.compliance [--pg-url URL] [--rows 1000000] [--entries 100000]

Baselines measured in the same run: the billing report of the same month (the report the
compliance report's opt-out section is compared with) and the database's own chain walk
(``verify_chain``) for the offline verifier. Each report is generated in a fresh process so
its peak memory (``VmHWM``) is its own. It creates ``mip_bench_<pid>`` and drops it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.progress import Progress
from sqlalchemy import insert

from app.audit.chain import GENESIS_HASH, entry_hash
from app.audit.service import verify_chain
from app.billing.service import build_report as build_billing_report
from app.compliance.bundle import verify_bundle
from app.compliance.checkpoints import create_checkpoint, export_audit_log, open_signing_key
from app.compliance.render import render
from app.compliance.report import ReportPeriod, generate_report
from app.kit.db import create_db_engine, make_sessionmaker, session_scope
from app.kit.settings import Settings
from app.samples.runtime import open_sample_store
from app.sampling.policy import load_sampling_config
from app.tables.audit import AuditEntry
from bench.ledger_common import DEFAULT_PG, REPORT_PERIOD, BenchDb, bench_database
from bench.ledger_report import create_report_orgs, load_into_postgres, report_table

FIRST, END = "2026-10-01", "2026-11-01"


def settings_for(db: BenchDb, data_dir: Path) -> Settings:
    return Settings(
        env="test", data_dir=data_dir, database_url=db.sqlalchemy_url, bundled_models_dir=None
    )


def seed_audit(db: BenchDb, entries: int, progress: Progress) -> None:
    """``entries`` chained entries after those the seeding wrote, inserted in bulk."""
    engine = create_db_engine(db.sqlalchemy_url)
    factory = make_sessionmaker(engine)
    task = progress.add_task("append audit entries", total=entries)
    with session_scope(factory) as session:
        report = verify_chain(session)
    seq, prev = report.entries, report.head_hash or GENESIS_HASH
    created = dt.datetime(2026, 10, 15, tzinfo=dt.UTC)
    batch: list[dict[str, Any]] = []
    for index in range(entries):
        seq += 1
        fields: dict[str, Any] = {
            "seq": seq,
            "created_at": created.isoformat(),
            "actor": "staff:dataops:bench",
            "action": "sample.audio_read",
            "target_type": "sample",
            "target_id": f"bench-{index}",
            "organization_id": None,
            "details": {"bytes": 1000 + index % 7},
            "prev_hash": prev,
        }
        prev = entry_hash(fields)
        batch.append({**fields, "created_at": created, "entry_hash": prev})
        if len(batch) == 5000 or index == entries - 1:
            with session_scope(factory) as session:
                session.execute(insert(AuditEntry), batch)
            progress.advance(task, len(batch))
            batch = []
    engine.dispose()


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the
    parent across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status")


def _report_child(db_url: str, data_dir: str, fmt: str, out: Any) -> None:
    settings = Settings(
        env="test", data_dir=Path(data_dir), database_url=db_url, bundled_models_dir=None
    )
    engine = create_db_engine(db_url)
    began = time.perf_counter()
    with session_scope(make_sessionmaker(engine)) as session:
        bundle = generate_report(
            session,
            open_sample_store(settings),
            load_sampling_config(settings),
            open_signing_key(settings),
            period=ReportPeriod.parse(FIRST, END),
            actor="bench",
            fmt=fmt,
        )
        body = render(bundle, fmt)
    seconds = time.perf_counter() - began
    engine.dispose()
    out.put(
        {
            "seconds": round(seconds, 3),
            "bytes": len(body),
            "peak_rss_mib": peak_rss_mib(),
            "ok": bundle["report"]["ok"],
        }
    )


def timed_report(db: BenchDb, data_dir: Path, fmt: str) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(
        target=_report_child, args=(db.sqlalchemy_url, str(data_dir), fmt, queue)
    )
    child.start()
    result: dict[str, Any] = queue.get()
    child.join()
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"rows": args.rows, "audit_entries": args.entries}
    with (
        bench_database(args.pg_url) as db,
        tempfile.TemporaryDirectory(prefix="mip-bench-") as tmp,
        Progress(transient=True) as progress,
    ):
        data_dir = Path(tmp)
        settings = settings_for(db, data_dir)
        engine = create_db_engine(db.sqlalchemy_url)
        factory = make_sessionmaker(engine)
        orgs = create_report_orgs(factory, 50)
        load_into_postgres(db, report_table(random.Random(7), orgs, args.rows, progress), progress)
        seed_audit(db, args.entries, progress)

        began = time.perf_counter()
        with session_scope(factory) as session:
            build_billing_report(session, period=REPORT_PERIOD)
        billing = time.perf_counter() - began
        report = {fmt: timed_report(db, data_dir, fmt) for fmt in ("json", "pdf")}
        figures["compliance_report"] = {
            **report,
            "billing_report_seconds": round(billing, 3),
            "json_vs_billing_report": round(report["json"]["seconds"] / billing, 2),
        }

        store, signer = open_sample_store(settings), open_signing_key(settings)
        with session_scope(factory) as session:
            began = time.perf_counter()
            chain = verify_chain(session)
            walk = time.perf_counter() - began
        with session_scope(factory) as session:
            began = time.perf_counter()
            create_checkpoint(session, store, signer, actor="bench")
            checkpoint = time.perf_counter() - began
        bundle = data_dir / "audit.tar.gz"
        began = time.perf_counter()
        manifest = export_audit_log(factory, store, signer, bundle, actor="bench")
        export = time.perf_counter() - began
        began = time.perf_counter()
        verified = verify_bundle(bundle, [signer.public_key])
        offline = time.perf_counter() - began
        engine.dispose()
        figures["audit"] = {
            "entries": chain.entries,
            "verify_chain_seconds": round(walk, 3),
            "checkpoint_seconds": round(checkpoint, 3),
            "export_seconds": round(export, 3),
            "export_bytes": bundle.stat().st_size,
            "export_entries": manifest["entries"],
            "offline_verify_seconds": round(offline, 3),
            "offline_verify_entries_per_second": round(verified.entries / offline),
            "offline_vs_database_walk": round(offline / walk, 2),
            "verified": verified.ok,
        }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="PostgreSQL server (admin) URL")
    parser.add_argument("--rows", type=int, default=1_000_000, help="ledger rows in the month")
    parser.add_argument("--entries", type=int, default=100_000, help="audit entries to add")
    figures = run(parser.parse_args(argv))
    json.dump(figures, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
