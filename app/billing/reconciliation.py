"""Invoice CSV parsing and the comparison of invoice lines with ledger usage (pure functions).

Invoice CSV (UTF-8, comma-separated, header on line 1, other columns ignored)::

    invoice_id        non-empty text
    organization_id   UUID of the organization
    period            billing period YYYY-MM the line bills
    model             model name as recorded in the ledger (e.g. "general")
    mip_participation opted_in | opted_out
    list_amount_usd   USD before the MIP discount   ┐ non-negative decimal strings with at most
    discount_usd      MIP discount in USD           │ 6 decimals ("12.5", "0.002150"); parsed
    net_amount_usd    USD billed                    ┘ as Decimal, never float

Example::

    invoice_id,organization_id,period,model,mip_participation,list_amount_usd,discount_usd,net_amount_usd
    INV-1,7f0c…,2026-03,general,opted_in,0.004300,0.002150,0.002150

Lines with the same (organization_id, model, mip_participation) are summed before comparing.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.billing.schemas import (
    Discrepancy,
    DiscrepancyKind,
    Participation,
)
from app.kit.errors import BadRequest
from app.kit.money import InvalidAmount, micros_to_usd, usd_to_micros

INVOICE_COLUMNS: tuple[str, ...] = (
    "invoice_id",
    "organization_id",
    "period",
    "model",
    "mip_participation",
    "list_amount_usd",
    "discount_usd",
    "net_amount_usd",
)
PARTICIPATIONS: tuple[Participation, ...] = ("opted_in", "opted_out")

UsageKey = tuple[uuid.UUID, str, Participation]


class MalformedInvoiceFile(BadRequest):
    """The invoice CSV cannot be read; the message names the line and the column."""


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    line: int  # line number in the file, the header being line 1
    invoice_id: str
    organization_id: uuid.UUID
    period: str
    model: str
    participation: Participation
    list_micros: int
    discount_micros: int
    net_micros: int

    @property
    def key(self) -> UsageKey:
        return (self.organization_id, self.model, self.participation)


@dataclass(frozen=True, slots=True)
class Usage:
    """Ledger figures of one (organization, model, participation) in the billing period."""

    requests: int
    list_micros: int
    discount_micros: int
    net_micros: int


def _usd_to_micros(value: str, *, line: int, column: str) -> int:
    try:
        return usd_to_micros(value)
    except InvalidAmount as exc:
        raise MalformedInvoiceFile(
            f"Invoice CSV line {line}, column '{column}': '{value}' is not a USD amount "
            "(a non-negative number with at most 6 decimals, e.g. 12.345678)."
        ) from exc


def _parse_record(record: list[str], *, line: int, index: dict[str, int]) -> InvoiceLine:
    values = {name: record[i].strip() for name, i in index.items()}
    for name in ("invoice_id", "period", "model"):
        if not values[name]:
            raise MalformedInvoiceFile(f"Invoice CSV line {line}, column '{name}': empty value.")
    try:
        organization_id = uuid.UUID(values["organization_id"])
    except ValueError as exc:
        raise MalformedInvoiceFile(
            f"Invoice CSV line {line}, column 'organization_id': "
            f"'{values['organization_id']}' is not a UUID."
        ) from exc
    participation = values["mip_participation"].lower()
    if participation not in PARTICIPATIONS:
        raise MalformedInvoiceFile(
            f"Invoice CSV line {line}, column 'mip_participation': "
            f"'{values['mip_participation']}' must be opted_in or opted_out."
        )
    amounts = {
        name: _usd_to_micros(values[name], line=line, column=name)
        for name in ("list_amount_usd", "discount_usd", "net_amount_usd")
    }
    return InvoiceLine(
        line=line,
        invoice_id=values["invoice_id"],
        organization_id=organization_id,
        period=values["period"],
        model=values["model"],
        participation="opted_in" if participation == "opted_in" else "opted_out",
        list_micros=amounts["list_amount_usd"],
        discount_micros=amounts["discount_usd"],
        net_micros=amounts["net_amount_usd"],
    )


def parse_invoice_csv(data: bytes) -> list[InvoiceLine]:
    """Every invoice line, or :class:`MalformedInvoiceFile` naming the first bad line."""
    try:
        text = data.decode("utf-8-sig")  # spreadsheets often write a byte-order mark
    except UnicodeDecodeError as exc:
        raise MalformedInvoiceFile("Invoice CSV is not UTF-8 text.") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader, [])]
        missing = [name for name in INVOICE_COLUMNS if name not in header]
        if missing:
            raise MalformedInvoiceFile(
                f"Invoice CSV line 1 (header): missing column(s) {', '.join(missing)}; "
                f"expected {','.join(INVOICE_COLUMNS)}."
            )
        repeated = sorted({name for name in INVOICE_COLUMNS if header.count(name) > 1})
        if repeated:
            raise MalformedInvoiceFile(
                f"Invoice CSV line 1 (header): column(s) {', '.join(repeated)} appear twice."
            )
        index = {name: header.index(name) for name in INVOICE_COLUMNS}
        lines: list[InvoiceLine] = []
        while True:
            line = reader.line_num + 1
            record = next(reader, None)
            if record is None:
                return lines
            if not any(field.strip() for field in record):
                continue  # blank line
            if len(record) != len(header):
                raise MalformedInvoiceFile(
                    f"Invoice CSV line {line}: {len(record)} fields, the header has {len(header)}."
                )
            lines.append(_parse_record(record, line=line, index=index))
    except csv.Error as exc:
        raise MalformedInvoiceFile(f"Invoice CSV line {reader.line_num}: {exc}.") from exc


def _finding(
    kind: DiscrepancyKind,
    key: UsageKey,
    detail: str,
    *,
    invoice: Sequence[InvoiceLine] = (),
    usage: Usage | None = None,
    compared: bool = True,
) -> Discrepancy:
    invoiced = {
        name: sum(getattr(line, name) for line in invoice) if invoice else None
        for name in ("list_micros", "discount_micros", "net_micros")
    }
    invoiced_net = invoiced["net_micros"]
    ledger_net = usage.net_micros if usage else None
    periods = sorted({line.period for line in invoice})
    return Discrepancy(
        kind=kind,
        organization_id=key[0],
        model=key[1],
        mip_participation=key[2],
        invoice_ids=sorted({line.invoice_id for line in invoice}),
        lines=[line.line for line in invoice],
        invoice_period=",".join(periods) or None,
        invoiced_list_micros=invoiced["list_micros"],
        invoiced_discount_micros=invoiced["discount_micros"],
        invoiced_net_micros=invoiced_net,
        ledger_list_micros=usage.list_micros if usage else None,
        ledger_discount_micros=usage.discount_micros if usage else None,
        ledger_net_micros=ledger_net,
        # A side that is absent counts as zero; a line not compared has no difference.
        difference_micros=(invoiced_net or 0) - (ledger_net or 0) if compared else None,
        detail=detail,
    )


def _compare_group(
    key: UsageKey, invoice: list[InvoiceLine], usage: Usage | None, *, tolerance_micros: int
) -> Iterable[Discrepancy]:
    net = sum(line.net_micros for line in invoice)
    discount = sum(line.discount_micros for line in invoice)
    if usage is None:
        yield _finding(
            DiscrepancyKind.INVOICE_WITHOUT_USAGE,
            key,
            f"Invoiced {micros_to_usd(net)} USD net, but the ledger has no billable usage "
            "for this organization, model and participation in the period.",
            invoice=invoice,
        )
    elif abs(net - usage.net_micros) > tolerance_micros:
        yield _finding(
            DiscrepancyKind.AMOUNT_MISMATCH,
            key,
            f"Invoiced net {micros_to_usd(net)} USD, ledger net {micros_to_usd(usage.net_micros)} "
            f"USD ({net - usage.net_micros:+d} micro-USD; tolerance {tolerance_micros}).",
            invoice=invoice,
            usage=usage,
        )
    if key[2] == "opted_out" and discount > 0:
        yield _finding(
            DiscrepancyKind.DISCOUNT_ON_OPTED_OUT,
            key,
            f"Opted-out usage pays the full rate, but the invoice gives a "
            f"{micros_to_usd(discount)} USD discount.",
            invoice=invoice,
            usage=usage,
        )
    if key[2] == "opted_in" and usage is not None and usage.list_micros > 0 and discount == 0:
        yield _finding(
            DiscrepancyKind.DISCOUNT_MISSING_ON_OPTED_IN,
            key,
            "Opted-in usage earns the MIP discount, but the invoice has none (ledger discount "
            f"{micros_to_usd(usage.discount_micros)} USD).",
            invoice=invoice,
            usage=usage,
        )


def find_discrepancies(
    lines: Sequence[InvoiceLine],
    usage: dict[UsageKey, Usage],
    *,
    period: str,
    tolerance_micros: int,
) -> list[Discrepancy]:
    """Every discrepancy between the invoice lines and the ledger usage of ``period``.

    Lines for another period are reported as ``period_mismatch`` and left out of the
    comparison; the others are summed by key and compared with the ledger.
    """
    found: list[Discrepancy] = []
    groups: dict[UsageKey, list[InvoiceLine]] = {}
    for line in lines:
        if line.period != period:
            found.append(
                _finding(
                    DiscrepancyKind.PERIOD_MISMATCH,
                    line.key,
                    f"Line is for period '{line.period}', not {period}; it was not compared.",
                    invoice=[line],
                    compared=False,
                )
            )
        else:
            groups.setdefault(line.key, []).append(line)
    for key, invoice in groups.items():
        found.extend(
            _compare_group(key, invoice, usage.get(key), tolerance_micros=tolerance_micros)
        )
    for key in sorted(set(usage) - set(groups), key=lambda k: (str(k[0]), k[1], k[2])):
        figures = usage[key]
        found.append(
            _finding(
                DiscrepancyKind.USAGE_WITHOUT_INVOICE,
                key,
                f"{figures.requests} billable request(s), {micros_to_usd(figures.net_micros)} "
                "USD net, on no invoice line.",
                usage=figures,
            )
        )
    return found
