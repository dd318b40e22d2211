"""``mip store erase``, ``mip store erasures`` and ``mip store purge-expired``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer

from app.erasure import repository, service
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
from app.samples.runtime import SampleStore, open_sample_store

erasure_app = typer.Typer(help="Erasure requests and retention purges of the sample store.")

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _store() -> SampleStore:
    return open_sample_store(get_settings())


@erasure_app.command("purge-expired")
def purge_expired(json_output: JsonOption = False) -> None:
    """Delete samples past their retention deadline (blob and row), skipping legal holds."""
    with cli_sessionmaker() as factory:
        report = service.purge_expired(factory, _store(), actor=CLI_ACTOR)
    if json_output:
        print_json({"purged": report.purged, "batches": report.batches})
    else:
        console.print(f"Purged {report.purged} expired samples.")


def _erasure_payload(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "scope": row.scope,
        "organization_id": str(row.organization_id),
        "project_id": str(row.project_id) if row.project_id else None,
        "status": row.status,
        "stores": row.stores,
        "counts": row.counts,
        "reason": row.reason,
    }


@erasure_app.command("erase")
def erase(
    org: Annotated[uuid.UUID | None, typer.Option("--org", help="Organization to erase.")] = None,
    project: Annotated[
        uuid.UUID | None, typer.Option("--project", help="Only this project of --org.")
    ] = None,
    resume: Annotated[
        uuid.UUID | None, typer.Option("--resume", help="Resume this erasure request.")
    ] = None,
    withdraw_consent: Annotated[
        bool,
        typer.Option(
            "--withdraw-consent",
            help="Also opt the organization (or project) out of the program from now on.",
        ),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Erase an organization's samples (keys destroyed first) or one project's; or resume."""
    if (org is None) == (resume is None):
        raise BadRequest("Give --org (and optionally --project), or --resume ID.")
    store = _store()
    with cli_sessionmaker() as factory:
        if resume is None:
            assert org is not None
            with session_scope(factory) as session:
                erasure_id = service.request_erasure(
                    session,
                    organization_id=org,
                    project_id=project,
                    actor=CLI_ACTOR,
                    withdraw_consent=withdraw_consent,
                    store=store,
                ).id
        else:
            erasure_id = resume
        row = service.run_erasure(factory, store, erasure_id, actor=CLI_ACTOR)
    payload = _erasure_payload(row)
    if json_output:
        print_json(payload)
    else:
        console.print(f"Erasure {row.id}: {row.status} {row.stores} {row.counts}")
        if row.reason:
            err_console.print(f"[red]{row.reason}[/red] — resume with --resume {row.id}")
    if row.status != "done":
        raise typer.Exit(1)


@erasure_app.command("erasures")
def erasures(json_output: JsonOption = False) -> None:
    """Erasure requests and their tombstones (counts per store)."""
    with cli_session() as session:
        rows = [
            _erasure_payload(r) for r in repository.list_erasures(session, organization_id=None)
        ]
    if json_output:
        print_json(rows)
        return
    print_table(
        "Erasure requests",
        ["id", "scope", "organization", "status", "stores", "counts"],
        [
            [r["id"], r["scope"], r["organization_id"], r["status"], r["stores"], r["counts"]]
            for r in rows
        ],
    )
