"""``mip audit``: verify and read the hash-chained audit log."""

from __future__ import annotations

from typing import Annotated

import typer

from app.audit import repository
from app.audit.service import verify_chain
from app.kit.cli import cli_session, console, err_console, print_json, print_table

audit_app = typer.Typer(help="The hash-chained audit log.")


@audit_app.command("verify")
def verify(json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Recompute the chain; name the first entry that does not verify (exit 1)."""
    with cli_session() as session:
        report = verify_chain(session)
    if json_output:
        print_json(
            {
                "ok": report.ok,
                "entries": report.entries,
                "first_bad_seq": report.first_bad_seq,
                "reason": report.reason,
                "head_hash": report.head_hash,
            }
        )
    elif report.ok:
        console.print(f"[green]Audit log verified:[/green] {report.entries} entries.")
        console.print(f"Head hash: {report.head_hash or '(empty log)'}", soft_wrap=True)
    else:
        err_console.print(
            f"[red]Audit log broken at entry {report.first_bad_seq}:[/red] {report.reason}."
        )
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("list")
def list_entries(
    limit: Annotated[int, typer.Option(min=1, help="Newest N entries.")] = 50,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show the newest entries."""
    with cli_session() as session:
        rows = [
            {
                "seq": e.seq,
                "created_at": e.created_at.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "target": f"{e.target_type}:{e.target_id}",
            }
            for e in repository.newest_entries(session, limit=limit)
        ]
    if json_output:
        print_json(rows)
    else:
        print_table(
            "Audit log",
            ["seq", "created_at", "actor", "action", "target"],
            [list(r.values()) for r in rows],
        )
