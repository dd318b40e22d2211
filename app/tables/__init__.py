"""ORM tables, one module per domain. Importing this package registers them all on ``Base``."""

from app.tables.audit import AuditEntry
from app.tables.ledger import BillingPeriod, LedgerEntry
from app.tables.pricing import PriceBookEntry
from app.tables.tenancy import ApiKey, Organization, Project, Reseller

__all__ = [
    "ApiKey",
    "AuditEntry",
    "BillingPeriod",
    "LedgerEntry",
    "Organization",
    "PriceBookEntry",
    "Project",
    "Reseller",
]
