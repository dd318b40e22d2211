"""``mip compliance``: the period report for auditors and a data subject's access export."""

from __future__ import annotations

import sys
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from app.kit.cli import CLI_ACTOR, cli_session, err_console, exit_on_error, print_json, print_table
from durable import write_atomic

compliance_app = typer.Typer(
    help="Compliance: the period report for auditors, a data subject's access export."
)


@compliance_app.command("export")
def export(
    output: Annotated[
        Path, typer.Option("--output", help="The zip archive to write (replaced atomically).")
    ],
    org: Annotated[uuid.UUID | None, typer.Option("--org", help="Organization id.")] = None,
    project: Annotated[
        uuid.UUID | None, typer.Option("--project", help="Project id: only its rows.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the manifest.")] = False,
) -> None:
    """A data subject's access export: everything held for an organization or a project.

    A zip of CSV and JSON files with a manifest of their SHA-256 hashes; the export is
    audit-logged. Exit status 2: an unknown id, not exactly one of --org and --project, or an
    unwritable file.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from app.compliance.subject import SubjectScope, export_subject
    from app.kit.errors import BadRequest, NotFound

    if org is not None and project is None:
        scope = SubjectScope("organization", org)
    elif project is not None and org is None:
        scope = SubjectScope("project", project)
    else:
        err_console.print("[red]error:[/red] name one of --org or --project.")
        raise typer.Exit(2)
    columns = (TextColumn("exporting rows"), BarColumn(), MofNCompleteColumn())
    with (
        exit_on_error(),
        cli_session() as session,
        Progress(*columns, console=err_console, transient=True) as progress,
    ):
        task = progress.add_task("export", total=None)
        try:
            manifest = export_subject(
                session,
                scope,
                output,
                actor=CLI_ACTOR,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        except NotFound as exc:
            raise BadRequest(exc.message) from None
    if json_output:
        print_json(manifest)
        return
    files = manifest["files"]
    print_table(
        f"Wrote {output}",
        ["file", "rows", "bytes", "sha256"],
        [(name, f["rows"], f["bytes"], f["sha256"]) for name, f in files.items()],
    )


class ReportFormat(StrEnum):
    JSON = "json"
    HTML = "html"
    PDF = "pdf"


@compliance_app.command("report")
def report(
    first: Annotated[
        str, typer.Option("--from", help="First day of the period, YYYY-MM-DD (UTC).")
    ],
    end: Annotated[
        str, typer.Option("--to", help="The day after the last, YYYY-MM-DD (excluded).")
    ],
    fmt: Annotated[
        ReportFormat, typer.Option("--format", help="json (default: the signed bundle), html, pdf.")
    ] = ReportFormat.JSON,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Write to FILE instead of stdout (required for pdf)."),
    ] = None,
) -> None:
    """The compliance report of a period [from, to), signed and audit-logged.

    Opt-out and sampling, consent, retention, erasures, access, key management, model lineage
    and the audit log, computed from the database and the store. JSON is the evidence bundle
    (an Ed25519 signature over the report); HTML is one self-contained page; PDF a paginated
    document with charts. Exit status: 0 every check passes, 1 a check fails (the report is
    written all the same), 2 bad dates or options.
    """
    from app.compliance.checkpoints import open_signing_key
    from app.compliance.render import render
    from app.compliance.report import ReportPeriod, generate_report
    from app.kit.settings import get_settings
    from app.samples.runtime import open_sample_store
    from app.sampling.policy import load_sampling_config

    if fmt is ReportFormat.PDF and output is None:
        err_console.print("[red]error:[/red] --format pdf needs --output FILE.")
        raise typer.Exit(2)
    settings = get_settings()
    with exit_on_error():
        period = ReportPeriod.parse(first, end)
        with cli_session() as session:
            bundle = generate_report(
                session,
                open_sample_store(settings),
                load_sampling_config(settings),
                open_signing_key(settings),
                period=period,
                actor=CLI_ACTOR,
                fmt=fmt.value,
            )
            # Inside the transaction: a report that cannot be written is not audited.
            content = render(bundle, fmt.value)
            if output is not None:
                write_atomic(output, content)
    if output is None:
        sys.stdout.write(content.decode())
        sys.stdout.write("\n")
    checks = bundle["report"]["checks"]
    failed = [c["title"] for c in checks if not c["ok"]]
    where = f" to {output}" if output is not None else ""
    err_console.print(
        f"Compliance report {period.first} to {period.end}{where}: "
        + (
            f"[green]all {len(checks)} checks pass[/green]."
            if not failed
            else f"[red]{len(failed)} of {len(checks)} checks fail[/red]: " + "; ".join(failed)
        ),
        soft_wrap=True,
    )
    if failed:
        raise typer.Exit(1)
