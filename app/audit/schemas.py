"""Audit-log output shapes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AuditEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int = Field(description="Position in the chain, from 1, without gaps")
    created_at: dt.datetime
    actor: str = Field(description="'staff:<role>:<key id>', 'key:<key id>', 'cli', …")
    action: str = Field(description="e.g. 'organization.created', 'price_book.changed'")
    target_type: str
    target_id: str
    organization_id: uuid.UUID | None
    details: dict[str, Any]
    prev_hash: str = Field(description="entry_hash of the entry before (64 zeros for the first)")
    entry_hash: str = Field(description="sha256(prev_hash || canonical JSON of the entry)")


class AuditEntriesRead(BaseModel):
    entries: list[AuditEntryRead] = Field(description="Ordered by seq")
    next_after_seq: int | None = Field(
        description="Pass as after_seq for the next page; null when this page is not full"
    )
