"""ORM tables, one module per domain. Importing this package registers them all on ``Base``."""

from app.tables.audit import AuditEntry
from app.tables.ledger import BillingPeriod, LedgerEntry
from app.tables.pricing import PriceBookEntry
from app.tables.samples import DataKey, ErasureRequest, Sample, SamplingRate
from app.tables.tenancy import ApiKey, Organization, Project, Reseller

__all__ = [
    "ApiKey",
    "AuditEntry",
    "BillingPeriod",
    "DataKey",
    "ErasureRequest",
    "LedgerEntry",
    "Organization",
    "PriceBookEntry",
    "Project",
    "Reseller",
    "Sample",
    "SamplingRate",
]
