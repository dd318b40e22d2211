"""Billing: period reports, invoice reconciliation and period close for the billing team."""
