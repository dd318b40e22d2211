"""The audit chain's hash, on plain values: what the service writes and what an offline
verifier recomputes from an export, with no database.

    entry_hash(fields) == sha256(prev_hash || canonical JSON of the entry's fields)

``fields`` holds ``seq``, ``created_at`` (the UTC ISO 8601 text), ``actor``, ``action``,
``target_type``, ``target_id``, ``organization_id`` (text or None), ``details`` and
``prev_hash`` — exactly the keys of :data:`HASHED_FIELDS`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "seq",
    "created_at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "organization_id",
    "details",
    "prev_hash",
)


def canonical(fields: Mapping[str, Any]) -> bytes:
    return orjson.dumps({name: fields[name] for name in HASHED_FIELDS}, option=orjson.OPT_SORT_KEYS)


def entry_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(str(fields["prev_hash"]).encode() + canonical(fields)).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainReport:
    entries: int
    ok: bool
    first_bad_seq: int | None = None
    reason: str | None = None
    # The last entry's hash when the whole chain verifies: an auditor who keeps it can later
    # prove that nothing before it was changed, removed or truncated.
    head_hash: str | None = None


def walk(entries: Iterable[Mapping[str, Any]]) -> ChainReport:
    """Check seq continuity, links and hashes in order; stop at the first bad entry."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    for fields in entries:
        count += 1
        seq = fields["seq"]
        if seq != expected_seq:
            return ChainReport(count, False, seq, f"expected seq {expected_seq}")
        if fields["prev_hash"] != expected_prev:
            return ChainReport(count, False, seq, "prev_hash does not match entry before")
        if entry_hash(fields) != fields["entry_hash"]:
            return ChainReport(count, False, seq, "content does not match its hash")
        expected_prev = fields["entry_hash"]
        expected_seq += 1
    return ChainReport(count, True, head_hash=expected_prev if count else None)
