"""Sealed months: a digest over a closed billing period's rows, kept in the audit log.

When a period closes, :func:`seal_period` hashes every ledger row billed in it and the close's
audit entry records the digest, the row count and the amount. Nothing can be added to a closed
period afterwards (late events are billed in the next open month), and the rows are
append-only in the database, so the digest stays valid for ever; :func:`verify_seals`
recomputes every recorded one. An edit made around the triggers (by the database's owner, or
on a restored backup) shows as a mismatch, and the audit chain shows an edited seal.

    seal = seal_period(session, "2026-11")   # PeriodSeal(rows=..., amount_micros=..., digest=...)
    [check for check in verify_seals(session) if not check.ok]
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import repository as audit_repository
from app.tables.ledger import LedgerEntry

SEAL_ACTION = "billing_period.closed"
# Every column but sample_kept, the one a row may still change (false to true, when a sample
# is kept later); the order of the digest's rows: (project_id, request_id), unique.
SEALED_COLUMNS: tuple[str, ...] = tuple(
    column.name for column in LedgerEntry.__table__.columns if column.name != "sample_kept"
)
DIGEST_OF = (
    "sha256 over the period's rows ordered by (project_id, request_id), each the JSON array of "
    "its columns but sample_kept, one per line"
)
_BATCH = 5000


@dataclass(frozen=True, slots=True)
class PeriodSeal:
    period: str
    rows: int
    amount_micros: int
    digest: str

    def as_details(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "amount_micros": self.amount_micros,
            "digest": self.digest,
            "digest_of": DIGEST_OF,
        }


def seal_period(session: Session, period: str) -> PeriodSeal:
    """The digest of every row billed in ``period``, as it stands."""
    digest = hashlib.sha256()
    rows = amount = 0
    columns = [getattr(LedgerEntry, name) for name in SEALED_COLUMNS]
    amount_at = SEALED_COLUMNS.index("amount_micros")
    stmt = (
        select(*columns)
        .where(LedgerEntry.billing_period == period)
        .order_by(LedgerEntry.project_id, LedgerEntry.request_id)
        .execution_options(yield_per=_BATCH)
    )
    result = session.execute(stmt)
    try:
        for values in result:
            digest.update(orjson.dumps(list(values), default=str))
            digest.update(b"\n")
            rows += 1
            amount += values[amount_at]
    finally:
        result.close()
    return PeriodSeal(period, rows, amount, digest.hexdigest())


@dataclass(frozen=True, slots=True)
class SealCheck:
    period: str
    recorded: PeriodSeal
    actual: PeriodSeal

    @property
    def ok(self) -> bool:
        return self.recorded == self.actual

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "ok": self.ok,
            "recorded": self.recorded.as_details(),
            "actual": self.actual.as_details(),
        }


def recorded_seals(session: Session) -> Iterator[PeriodSeal]:
    """The seals the audit log holds, oldest close first (periods closed before sealing
    existed carry none and are skipped)."""
    after = 0
    while True:
        entries = audit_repository.list_entries(
            session, action=SEAL_ACTION, after_seq=after, limit=500
        )
        for entry in entries:
            rows, amount, digest = (
                entry.details.get(k) for k in ("rows", "amount_micros", "digest")
            )
            if isinstance(rows, int) and isinstance(amount, int) and isinstance(digest, str):
                yield PeriodSeal(entry.target_id, rows, amount, digest)
        if len(entries) < 500:
            return
        after = entries[-1].seq


def verify_seals(session: Session) -> list[SealCheck]:
    """Every recorded seal against the rows as they are now."""
    return [
        SealCheck(seal.period, seal, seal_period(session, seal.period))
        for seal in recorded_seals(session)
    ]
