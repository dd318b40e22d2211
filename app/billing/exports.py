"""Render billing reports (CSV, JSON, Parquet) and reconciliation discrepancies (CSV) as bytes.

Report CSV / Parquet columns, one row per organization and model (totals only in JSON)::

    period, organization_id, organization_name, plan, model_name, requests, billable_requests,
    minutes_opted_in, minutes_opted_out,
    list_amount_micros, list_amount_usd, discount_micros, discount_usd,
    net_amount_micros, net_amount_usd, adjustments_micros, adjustments_usd, adjustment_requests

``*_micros`` are integers, ``*_usd`` decimal strings with 6 places, minutes 4 decimals
(Parquet: ``decimal128(18, 4)``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import orjson

from app.billing.schemas import BillingReport, Discrepancy, ExportFormat
from app.kit.money import micros_to_usd

MEDIA_TYPES: dict[ExportFormat, str] = {
    ExportFormat.JSON: "application/json",
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}
_MONEY_COLUMNS = (
    "list_amount_micros",
    "list_amount_usd",
    "discount_micros",
    "discount_usd",
    "net_amount_micros",
    "net_amount_usd",
    "adjustments_micros",
    "adjustments_usd",
)
REPORT_COLUMNS: tuple[str, ...] = (
    "period",
    "organization_id",
    "organization_name",
    "plan",
    "model_name",
    "requests",
    "billable_requests",
    "minutes_opted_in",
    "minutes_opted_out",
    *_MONEY_COLUMNS,
    "adjustment_requests",
)
DISCREPANCY_COLUMNS: tuple[str, ...] = (
    "kind",
    "organization_id",
    "model",
    "mip_participation",
    "invoice_ids",
    "lines",
    "invoice_period",
    "invoiced_list_micros",
    "invoiced_discount_micros",
    "invoiced_net_micros",
    "ledger_list_micros",
    "ledger_discount_micros",
    "ledger_net_micros",
    "difference_micros",
    "invoiced_net_usd",
    "ledger_net_usd",
    "difference_usd",
    "detail",
)


def report_records(report: BillingReport) -> list[dict[str, Any]]:
    """The report lines as flat records with :data:`REPORT_COLUMNS` (Python values)."""
    records = []
    for line in report.lines:
        record: dict[str, Any] = {
            "period": report.period,
            "organization_id": str(line.organization_id),
            "organization_name": line.organization_name,
            "plan": line.plan,
            "model_name": line.model_name,
            "requests": line.requests,
            "billable_requests": line.billable_requests,
            "minutes_opted_in": line.minutes_opted_in,
            "minutes_opted_out": line.minutes_opted_out,
            "adjustment_requests": line.adjustment_requests,
        }
        for column in _MONEY_COLUMNS:
            record[column] = getattr(line, column)
        records.append({column: record[column] for column in REPORT_COLUMNS})
    return records


def _csv_bytes(columns: Sequence[str], records: Sequence[dict[str, Any]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue().encode()


def report_csv(report: BillingReport) -> bytes:
    return _csv_bytes(REPORT_COLUMNS, report_records(report))


def report_json(report: BillingReport) -> bytes:
    return orjson.dumps(report.model_dump(mode="json"), option=orjson.OPT_INDENT_2) + b"\n"


def _arrow_type(column: str) -> Any:
    import pyarrow as pa

    if column.endswith(("_micros", "requests")):
        return pa.int64()
    if column.startswith("minutes_"):
        return pa.decimal128(18, 4)  # exact, like the Decimal it comes from
    return pa.string()


def report_parquet(report: BillingReport) -> bytes:
    # Imported here: pyarrow (and numpy under it) is a tenth of the command line's start-up,
    # and only a Parquet export needs it.
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = report_records(report)
    schema = pa.schema(
        [pa.field(column, _arrow_type(column)) for column in REPORT_COLUMNS],
        metadata={"period": report.period, "generated_at": report.generated_at.isoformat()},
    )
    table = pa.Table.from_pylist(records, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def render_report(report: BillingReport, fmt: ExportFormat) -> bytes:
    if fmt is ExportFormat.CSV:
        return report_csv(report)
    if fmt is ExportFormat.PARQUET:
        return report_parquet(report)
    return report_json(report)


def _usd_or_blank(micros: int | None) -> str:
    return "" if micros is None else micros_to_usd(micros)


def discrepancies_csv(discrepancies: Sequence[Discrepancy]) -> bytes:
    records = []
    for found in discrepancies:
        record = found.model_dump(mode="json")
        record["invoice_ids"] = ";".join(found.invoice_ids)
        record["lines"] = ";".join(str(n) for n in found.lines)
        record["invoiced_net_usd"] = _usd_or_blank(found.invoiced_net_micros)
        record["ledger_net_usd"] = _usd_or_blank(found.ledger_net_micros)
        record["difference_usd"] = _usd_or_blank(found.difference_micros)
        records.append({column: record[column] for column in DISCREPANCY_COLUMNS})
    return _csv_bytes(DISCREPANCY_COLUMNS, records)
