"""``mip audit list``: read the hash-chained audit log (verification, checkpoints and exports
need the store and the signing key: app/compliance/audit_cli.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.audit import repository
from app.kit.cli import cli_session, print_json, print_table

audit_app = typer.Typer(help="The hash-chained audit log.")


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
