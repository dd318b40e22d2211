"""Append entries to the hash-chained audit log and verify the chain.

Each entry commits to the previous entry's hash, so changing, removing or reordering any entry
makes :func:`verify_chain` fail at that entry. Entries are written in the caller's transaction:
an audited change and its audit entry land together or not at all.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Generator
from contextlib import closing
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.audit.chain import GENESIS_HASH, ChainReport, entry_hash, walk
from app.kit.db import utcnow
from app.tables.audit import AuditEntry

__all__ = [
    "GENESIS_HASH",
    "ChainReport",
    "entry_fields",
    "entry_hash_of",
    "iter_entries",
    "record_event",
    "verify_chain",
]

# Any constant works; it names the PostgreSQL advisory lock that serialises appends.
_CHAIN_LOCK_KEY = 0x4D4950_41554454


def entry_fields(entry: AuditEntry) -> dict[str, Any]:
    """The entry as the plain values its hash covers, plus ``entry_hash`` (an export's line)."""
    return {
        "seq": entry.seq,
        "created_at": entry.created_at.astimezone(dt.UTC).isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "organization_id": str(entry.organization_id) if entry.organization_id else None,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
    }


def entry_hash_of(entry: AuditEntry) -> str:
    return entry_hash(entry_fields(entry))


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    organization_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the current transaction."""
    if session.get_bind().dialect.name == "postgresql":
        # Held until the transaction ends, so two writers never chain onto the same entry.
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK_KEY})
    else:
        # SQLite: a no-op write takes the database write lock now, before reading the last
        # entry; otherwise two writers both read seq N and one fails on seq N + 1.
        session.execute(text("UPDATE audit_entries SET seq = seq WHERE 0"))
    last = session.execute(
        select(AuditEntry.seq, AuditEntry.entry_hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    # Round-trip through JSON so the hash is computed over exactly what the database returns.
    clean_details: dict[str, Any] = orjson.loads(orjson.dumps(details or {}, default=str))
    entry = AuditEntry(
        seq=seq,
        created_at=utcnow(),
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        organization_id=organization_id,
        details=clean_details,
        prev_hash=prev_hash,
        entry_hash="",
    )
    entry.entry_hash = entry_hash_of(entry)
    session.add(entry)
    session.flush()
    return entry


def iter_entries(session: Session, *, batch: int = 1000) -> Generator[AuditEntry]:
    stmt = select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=batch)
    result = session.scalars(stmt)
    try:
        yield from result
    finally:
        # yield_per streams through a server-side cursor on PostgreSQL: a caller that stops
        # early (verify_chain at the first bad entry) must not leave it open.
        result.close()


def verify_chain(session: Session) -> ChainReport:
    """Walk the whole log; report the first entry that does not verify and why."""
    with closing(iter_entries(session)) as entries:
        return walk(entry_fields(entry) for entry in entries)
