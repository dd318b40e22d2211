"""``mip store`` (samples: verify, label) and ``mip crypto`` (envelope keys).

The ``store`` group also holds the erasure domain's commands (erase, erasures,
purge-expired) and the sampling domain's audit-sampling: ``app.cli`` puts them together.
"""

from __future__ import annotations

import csv
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress
from sqlalchemy import func, select

from app.audit.service import record_event
from app.kit.cli import (
    CLI_ACTOR,
    cli_session,
    cli_sessionmaker,
    console,
    err_console,
    print_json,
    print_table,
)
from app.kit.db import session_scope
from app.kit.errors import BadRequest
from app.kit.settings import get_settings
from app.samples import keys, repository
from app.samples.attributes import check_attributes
from app.samples.integrity import verify_store
from app.samples.runtime import SampleStore, open_sample_store
from app.samples.service import label_sample
from app.tables.samples import ATTRIBUTES, DataKey, Sample

store_app = typer.Typer(help="The encrypted sample store: verify, label.")
crypto_app = typer.Typer(help="Envelope keys: rotate the key-encryption key or a data key.")

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _store() -> SampleStore:
    return open_sample_store(get_settings())


@store_app.command("verify")
def verify(json_output: JsonOption = False) -> None:
    """Authenticate every object; find catalog rows without blobs and blobs without rows.

    Exits 1 on any failure or orphan.
    """
    store = _store()
    with cli_session() as session:
        total = session.scalar(select(func.count()).select_from(Sample)) or 0
        with Progress(console=err_console, transient=True) as progress:
            task = progress.add_task("verifying samples", total=total)
            report = verify_store(session, store, progress=lambda n: progress.advance(task, n))
    if json_output:
        print_json(report.as_dict())
    else:
        print_table("Sample store", ["check", "count"], list(report.summary().items()))
        for failure in report.failed:
            err_console.print(f"[red]integrity[/red] {failure['key']}: {failure['error']}")
        for missing in report.missing_blobs:
            err_console.print(f"[red]missing blob[/red] {missing['key']}")
        for orphan in report.orphan_blobs:
            err_console.print(f"[yellow]orphan blob[/yellow] {orphan}")
    if not report.ok:
        raise typer.Exit(1)


def _read_label_csv(path: Path) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    """Every row checked before anything changes; errors name the line."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise BadRequest(f"Cannot read {path}: {exc.strerror}.") from None
    with handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        if "sample_id" not in columns:
            raise BadRequest(f"{path}: the header must have a sample_id column.")
        unknown = [c for c in columns if c != "sample_id" and c not in ATTRIBUTES]
        if unknown:
            raise BadRequest(
                f"{path}: unknown column(s) {', '.join(unknown)}; "
                f"attributes are {', '.join(ATTRIBUTES)}."
            )
        rows: list[tuple[uuid.UUID, dict[str, Any]]] = []
        for line, record in enumerate(reader, start=2):
            try:
                sample_id = uuid.UUID((record.get("sample_id") or "").strip())
                # An empty cell leaves the attribute as it is.
                values = {
                    k: v for k, v in record.items() if k != "sample_id" and v not in ("", None)
                }
                rows.append((sample_id, dict(check_attributes(values))))
            except (ValueError, BadRequest) as exc:
                message = exc.message if isinstance(exc, BadRequest) else "sample_id is not a UUID"
                raise BadRequest(f"{path}, line {line}: {message}") from None
    return rows


@store_app.command("label")
def label(
    csv_file: Annotated[
        Path, typer.Option("--csv", help="CSV: sample_id plus attribute columns to set.")
    ],
    json_output: JsonOption = False,
) -> None:
    """Label attributes in bulk (source `labeled`); all rows or none are applied."""
    rows = _read_label_csv(csv_file)
    with cli_session() as session:
        missing = [str(i) for i, _ in rows if repository.get_sample(session, i) is None]
        if missing:
            raise BadRequest(f"Unknown sample id(s): {', '.join(missing[:20])}.")
        for sample_id, values in rows:
            sample = repository.get_sample(session, sample_id)
            assert sample is not None  # checked above
            label_sample(session, sample, attributes=values, actor=CLI_ACTOR)
    if json_output:
        print_json({"labeled": len(rows)})
    else:
        console.print(f"Labeled {len(rows)} samples.")


@crypto_app.command("rotate-kek")
def rotate_kek(
    batch: Annotated[int, typer.Option(min=1, help="Data keys re-wrapped per commit.")] = 100,
    json_output: JsonOption = False,
) -> None:
    """Re-wrap every data key and training-set report key under a new key-encryption-key
    version (objects untouched).

    Resumable and idempotent: when data keys are still wrapped by an older version (an
    interrupted rotation), it finishes that rotation instead of starting another.
    """
    store = _store()
    with cli_sessionmaker() as factory:
        with session_scope(factory) as session:
            pending = keys.keys_to_rewrap(session, store.keys)
        resumed = pending > 0
        if not resumed:
            store.keys.rotate()
        version = store.keys.current_version()
        rewrapped = 0
        while True:
            with session_scope(factory) as session:
                done = keys.rewrap_batch(session, store.keys, limit=batch)
            rewrapped += done
            if done == 0:
                break
        with session_scope(factory) as session:
            record_event(
                session,
                actor=CLI_ACTOR,
                action="crypto.kek_rotated",
                target_type="key_encryption_key",
                target_id=version,
                details={"rewrapped": rewrapped, "resumed": resumed},
            )
    payload = {"kek_version": version, "rewrapped": rewrapped, "resumed": resumed}
    if json_output:
        print_json(payload)
    else:
        verb = "Resumed the rotation to" if resumed else "Rotated to"
        console.print(f"{verb} {version}: {rewrapped} keys re-wrapped (data and report keys).")


@crypto_app.command("rotate-dek")
def rotate_dek(
    org: Annotated[uuid.UUID, typer.Option("--org", help="Organization id.")],
    json_output: JsonOption = False,
) -> None:
    """Start a new data key for the organization's new objects; older ones stay readable."""
    store = _store()
    with cli_session() as session:
        version = keys.rotate_data_key(session, store.keys, org)
        record_event(
            session,
            actor=CLI_ACTOR,
            action="crypto.dek_rotated",
            target_type="organization",
            target_id=str(org),
            organization_id=org,
            details={"version": version},
        )
    if json_output:
        print_json({"organization_id": str(org), "data_key_version": version})
    else:
        console.print(f"Organization {org}: new objects use data key v{version}.")


@crypto_app.command("status")
def status(json_output: JsonOption = False) -> None:
    """Data keys per key-encryption-key version and status."""
    store = _store()
    with cli_session() as session:
        rows = [
            {"kek_version": v, "status": s, "data_keys": n}
            for v, s, n in session.execute(
                select(DataKey.kek_version, DataKey.status, func.count()).group_by(
                    DataKey.kek_version, DataKey.status
                )
            )
        ]
    payload = {
        "provider": store.keys.name,
        "current_kek_version": store.keys.current_version(),
        "keys": rows,
    }
    if json_output:
        print_json(payload)
        return
    console.print(f"Provider {payload['provider']}, current KEK {payload['current_kek_version']}")
    print_table(
        "Data keys", ["kek_version", "status", "data_keys"], [list(r.values()) for r in rows]
    )
