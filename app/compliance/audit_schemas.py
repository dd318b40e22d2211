"""Output shapes of the audit log's verification, signed checkpoints and exports."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field


class CheckpointStatusRead(BaseModel):
    ok: bool = Field(description="Every checkpoint and anchor verifies against the log as it is")
    checkpoints: int = Field(description="Checkpoint entries in the log")
    anchors: int = Field(description="Checkpoint copies in the blob store (audit/checkpoints/)")
    latest: dict[str, Any] | None = Field(
        description="The newest checkpoint: seq, created_at, head_seq, key_id"
    )
    problems: list[str] = Field(
        description="Each checkpoint or anchor that does not verify, and why"
    )


class AuditVerificationRead(BaseModel):
    ok: bool = Field(description="The chain and every signed checkpoint verify")
    entries: int = Field(description="Entries read (up to and including the first bad one)")
    first_bad_seq: int | None = Field(description="The first entry that does not verify")
    reason: str | None = Field(description="Why that entry does not verify")
    head_hash: str | None = Field(
        description="entry_hash of the last entry when the chain verifies (null otherwise)"
    )
    checkpoints: CheckpointStatusRead


class CheckpointRead(BaseModel):
    seq: int = Field(description="The checkpoint's own entry in the log")
    created_at: dt.datetime
    actor: str
    head_seq: int = Field(description="The last entry it signs")
    head_hash: str
    key_id: str = Field(description="'ed25519:' and 16 hex digits of the public key's SHA-256")
    payload: dict[str, Any] = Field(
        description="What is signed: the head, the sealed months' digests, the store inventory"
    )
    signature: str = Field(description="Ed25519 over the payload's sorted compact JSON (base64)")


class CheckpointsRead(BaseModel):
    checkpoints: list[CheckpointRead] = Field(description="Oldest first")
    next_after_seq: int | None = Field(
        description="Pass as after_seq for the next page; null when this page is not full"
    )
