"""``mip store audit-sampling``: recompute every sampling decision from the secret."""

from __future__ import annotations

from typing import Annotated

import typer

from app.kit.cli import cli_session, console, print_json
from app.kit.settings import get_settings
from app.sampling.audit import audit_sampling
from app.sampling.policy import load_sampling_config

sampling_app = typer.Typer(help="Sampling decisions: recompute them for an audit.")

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@sampling_app.command("audit-sampling")
def audit_sampling_command(json_output: JsonOption = False) -> None:
    """Recompute every ledger row's sampling decision from the secret (exit 1 on a mismatch)."""
    with cli_session() as session:
        audit = audit_sampling(session, load_sampling_config(get_settings()))
    payload = {
        "ok": audit.ok,
        "ledger_rows": audit.rows,
        "selected": audit.selected,
        "mismatches": audit.mismatches[:100],
        "kept_without_selection": audit.kept_without_selection[:100],
    }
    if json_output:
        print_json(payload)
    else:
        state = "[green]all decisions recompute[/green]" if audit.ok else "[red]MISMATCH[/red]"
        console.print(f"{state}: {audit.rows} ledger rows, {audit.selected} selected.")
    if not audit.ok:
        raise typer.Exit(1)
