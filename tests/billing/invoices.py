"""Invoice CSVs matching (or deliberately not matching) the ``ledger`` fixture of March 2026."""

from __future__ import annotations

from app.billing.reconciliation import INVOICE_COLUMNS
from tests.billing.conftest import PERIOD, Ledger

HEADER = ",".join(INVOICE_COLUMNS)


def line(
    invoice: str,
    org: object,
    model: str,
    participation: str,
    list_usd: str,
    discount_usd: str,
    net_usd: str,
    period: str = PERIOD,
) -> str:
    return ",".join(
        [invoice, str(org), period, model, participation, list_usd, discount_usd, net_usd]
    )


def clean_invoice(ledger: Ledger) -> str:
    """Exactly the ledger's billable usage of the period, per organization, model, participation."""
    lines = [
        line("INV-A", ledger.alpha, "general", "opted_in", "0.0043", "0.00215", "0.00215"),
        line("INV-A", ledger.alpha, "general", "opted_out", "0.00645", "0", "0.00645"),
        line("INV-A", ledger.alpha, "nova", "opted_in", "0.0086", "0.0043", "0.0043"),
        line("INV-B", ledger.beta, "general", "opted_in", "0.0018", "0.0009", "0.0009"),
        line("INV-B", ledger.beta, "general", "opted_out", "0.0027", "0.000000", "0.0027"),
        line("INV-G", ledger.gamma, "general", "opted_in", "0.004", "0.002", "0.002"),
        line("INV-G", ledger.gamma, "general", "opted_out", "0.001", "0", "0.001"),
    ]
    return "\n".join([HEADER, *lines]) + "\n"


def invoice_with_one_of_each(ledger: Ledger) -> str:
    """One discrepancy of every kind; the CSV line of each is given in the comment."""
    lines = [
        # line 2, correct
        line("INV-A", ledger.alpha, "general", "opted_in", "0.0043", "0.00215", "0.00215"),
        # line 3, amount_mismatch: net 6500 invoiced, 6450 in the ledger
        line("INV-A", ledger.alpha, "general", "opted_out", "0.0065", "0", "0.0065"),
        # line 4, discount_missing_on_opted_in (net right, discount absent)
        line("INV-A", ledger.alpha, "nova", "opted_in", "0.0086", "0", "0.0043"),
        # line 5, correct
        line("INV-B", ledger.beta, "general", "opted_in", "0.0018", "0.0009", "0.0009"),
        # Beta general opted_out is missing: usage_without_invoice
        # line 6, period_mismatch (left out of the comparison)
        line("INV-OLD", ledger.beta, "general", "opted_in", "1", "0.5", "0.5", period="2026-02"),
        # line 7, correct
        line("INV-G", ledger.gamma, "general", "opted_in", "0.004", "0.002", "0.002"),
        # line 8, discount_on_opted_out (net right)
        line("INV-G", ledger.gamma, "general", "opted_out", "0.0015", "0.0005", "0.001"),
        # line 9, invoice_without_usage: Gamma never used nova
        line("INV-G", ledger.gamma, "nova", "opted_in", "0.002", "0.001", "0.001"),
    ]
    return "\n".join([HEADER, *lines]) + "\n"
