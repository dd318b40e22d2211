"""ORM tables, one module per domain. Importing this package registers them all on ``Base``."""

from app.tables.audit import AuditEntry
from app.tables.custom import CustomDataFile, CustomModel, CustomUpload
from app.tables.datasets import TrainingSet, TrainingSetSample
from app.tables.erasure import ErasureRequest
from app.tables.ledger import BillingPeriod, LedgerEntry
from app.tables.pricing import PriceBookEntry
from app.tables.samples import DataKey, Sample
from app.tables.sampling import SamplingRate
from app.tables.tenancy import ApiKey, Organization, Project, Reseller
from app.tables.training import ModelVersion, TrainingJob, TrainingJobLog

__all__ = [
    "ApiKey",
    "AuditEntry",
    "BillingPeriod",
    "CustomDataFile",
    "CustomModel",
    "CustomUpload",
    "DataKey",
    "ErasureRequest",
    "LedgerEntry",
    "ModelVersion",
    "Organization",
    "PriceBookEntry",
    "Project",
    "Reseller",
    "Sample",
    "SamplingRate",
    "TrainingJob",
    "TrainingJobLog",
    "TrainingSet",
    "TrainingSetSample",
]
