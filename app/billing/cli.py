"""``mip billing``: period reports, invoice reconciliation and period close.

Exit status: 0 success; 1 discrepancies found (reconcile) or a refused action (e.g. closing a
closed period); 2 bad input (period, options, malformed invoice CSV).
"""

from __future__ import annotations

import sys
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from app.billing import exports, service
from app.billing.reconciliation import INVOICE_COLUMNS
from app.billing.schemas import (
    BillingPeriodRead,
    BillingReport,
    ExportFormat,
    ReconciliationResult,
)
from app.kit.cli import (
    CLI_ACTOR,
    cli_session,
    console,
    err_console,
    exit_on_error,
    print_json,
    print_table,
)
from app.kit.money import micros_to_usd

billing_app = typer.Typer(help="Billing: period reports, invoice reconciliation, period close.")

PeriodOpt = Annotated[str, typer.Option("--period", help="Billing period, YYYY-MM.")]


class ReportFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    PARQUET = "parquet"


def _print_report(report: BillingReport) -> None:
    columns = [
        "organization",
        "plan",
        "model",
        "requests",
        "billable",
        "min in",
        "min out",
        "list USD",
        "discount USD",
        "net USD",
        "adj. USD",
    ]
    rows: list[list[object]] = [
        [
            line.organization_name,
            line.plan,
            line.model_name,
            line.requests,
            line.billable_requests,
            line.minutes_opted_in,
            line.minutes_opted_out,
            line.list_amount_usd,
            line.discount_usd,
            line.net_amount_usd,
            line.adjustments_usd,
        ]
        for line in report.lines
    ]
    t = report.totals
    rows.append(
        [
            "TOTAL",
            "",
            "",
            t.requests,
            t.billable_requests,
            t.minutes_opted_in,
            t.minutes_opted_out,
            t.list_amount_usd,
            t.discount_usd,
            t.net_amount_usd,
            t.adjustments_usd,
        ]
    )
    print_table(f"Billing report {report.period}", columns, rows)


@billing_app.command("report")
def report(
    period: PeriodOpt,
    org: Annotated[uuid.UUID | None, typer.Option("--org", help="Only this organization.")] = None,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", help="table (default), csv, json or parquet.")
    ] = ReportFormat.TABLE,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Write to FILE instead of stdout (required for parquet)."),
    ] = None,
) -> None:
    """Per organization and model figures of a billing period (audit-logged export).

    CSV and JSON give money as integer micro-dollars and as USD strings with 6 decimals.
    """
    if fmt is ReportFormat.PARQUET and output is None:
        err_console.print("[red]error:[/red] --format parquet needs --output FILE.")
        raise typer.Exit(2)
    if fmt is ReportFormat.TABLE and output is not None:
        err_console.print("[red]error:[/red] --output needs --format csv, json or parquet.")
        raise typer.Exit(2)
    with exit_on_error(), cli_session() as session:
        billing_report = service.export_report(
            session, period=period, organization_id=org, fmt=fmt.value, actor=CLI_ACTOR
        )
        if fmt is ReportFormat.TABLE:
            content = None
        else:
            content = exports.render_report(billing_report, ExportFormat(fmt.value))
            if output is not None:
                output.write_bytes(content)
    if content is None:
        _print_report(billing_report)
    elif output is None:
        sys.stdout.write(content.decode())
    else:
        err_console.print(f"Wrote {len(billing_report.lines)} line(s) to {output}.")


def _print_reconciliation(result: ReconciliationResult) -> None:
    rows = [
        [
            d.kind.value,
            str(d.organization_id),
            d.model,
            d.mip_participation,
            ";".join(d.invoice_ids),
            "" if d.invoiced_net_micros is None else micros_to_usd(d.invoiced_net_micros),
            "" if d.ledger_net_micros is None else micros_to_usd(d.ledger_net_micros),
            "" if d.difference_micros is None else micros_to_usd(d.difference_micros),
        ]
        for d in result.discrepancies
    ]
    columns = ["kind", "organization", "model", "participation", "invoices"]
    columns += ["invoiced net USD", "ledger net USD", "difference USD"]
    print_table(f"Reconciliation {result.period}", columns, rows)
    counts = ", ".join(f"{k.value}={n}" for k, n in result.counts_by_kind.items() if n)
    if result.ok:
        console.print(f"[green]No discrepancy[/green] in {result.invoice_lines} invoice line(s).")
    else:
        console.print(f"[red]{len(result.discrepancies)} discrepancies:[/red] {counts}")


@billing_app.command(
    "reconcile",
    help=(
        "Compare an invoice CSV with the ledger of a billing period.\n\n"
        f"Invoice CSV columns (header on line 1): {', '.join(INVOICE_COLUMNS)}. "
        "organization_id is a UUID; period is YYYY-MM; model is the model name; "
        "mip_participation is opted_in or opted_out; the three amounts are USD with at most "
        "6 decimals.\n\n"
        "Discrepancy kinds: invoice_without_usage, usage_without_invoice, amount_mismatch, "
        "discount_on_opted_out, discount_missing_on_opted_in, period_mismatch.\n\n"
        "Writes the discrepancies as CSV (default reconciliation-YYYY-MM.csv). Exit 0: no "
        "discrepancy; 1: discrepancies; 2: malformed CSV or bad option (nothing written)."
    ),
)
def reconcile(
    period: PeriodOpt,
    invoices: Annotated[
        Path,
        typer.Option(
            "--invoices", exists=True, dir_okay=False, readable=True, help="Invoice CSV file."
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Discrepancies CSV (default reconciliation-YYYY-MM.csv)."),
    ] = None,
    tolerance_micros: Annotated[
        int, typer.Option("--tolerance-micros", min=0, help="Net difference tolerated (µ$).")
    ] = 0,
) -> None:
    with exit_on_error(), cli_session() as session:
        result = service.reconcile(
            session,
            period=period,
            invoice_csv=invoices.read_bytes(),
            actor=CLI_ACTOR,
            tolerance_micros=tolerance_micros,
        )
        target = output or Path(f"reconciliation-{result.period}.csv")
        # Written inside the transaction: if the file cannot be written, the run is not logged.
        target.write_bytes(exports.discrepancies_csv(result.discrepancies))
    _print_reconciliation(result)
    err_console.print(f"Wrote {len(result.discrepancies)} discrepancies to {target}.")
    if not result.ok:
        raise typer.Exit(1)


@billing_app.command("close")
def close(
    period: PeriodOpt,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Close a billing period: later events for it become adjustments in the next open one."""
    with exit_on_error(), cli_session() as session:
        closed = BillingPeriodRead.model_validate(
            service.close(session, period=period, actor=CLI_ACTOR)
        )
    if json_output:
        print_json(closed.model_dump(mode="json"))
    else:
        console.print(f"Billing period {closed.period} closed.")


@billing_app.command("periods")
def periods(json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List closed billing periods."""
    with cli_session() as session:
        rows = [
            BillingPeriodRead.model_validate(p).model_dump(mode="json")
            for p in service.list_closed_periods(session)
        ]
    if json_output:
        print_json(rows)
    else:
        print_table(
            "Closed billing periods",
            ["period", "closed_at", "closed_by"],
            [[r["period"], r["closed_at"], r["closed_by"]] for r in rows],
        )


@billing_app.command("verify-seals")
def verify_seals(json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Recompute every closed period's sealed digest; exit 1 when a period's rows changed."""
    with cli_session() as session:
        checks = [check.as_dict() for check in service.verify_seals(session)]
    ok = all(check["ok"] for check in checks)
    if json_output:
        print_json({"ok": ok, "periods": checks})
    else:
        print_table(
            "Sealed billing periods",
            ["period", "ok", "rows", "amount_micros", "digest"],
            [
                [
                    c["period"],
                    c["ok"],
                    c["actual"]["rows"],
                    c["actual"]["amount_micros"],
                    c["actual"]["digest"][:16],
                ]
                for c in checks
            ],
        )
    if not ok:
        raise typer.Exit(1)
