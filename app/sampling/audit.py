"""``mip store audit-sampling``: every ledger row's sampling decision, recomputed.

Anyone holding the secret can recompute each decision from the request id and the rate the
row recorded; a row whose decision differs, or a sample kept without a selection, fails it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.sampling.policy import SamplingConfig, sampling_score
from app.tables.ledger import LedgerEntry


@dataclass
class SamplingAudit:
    rows: int = 0
    selected: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    kept_without_selection: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.mismatches or self.kept_without_selection)


def audit_sampling(session: Session, config: SamplingConfig, *, batch: int = 5000) -> SamplingAudit:
    """Recompute each ledger row's decision with the recorded rate and compare."""
    audit = SamplingAudit()
    secret = config.secret
    stmt = select(
        LedgerEntry.project_id,
        LedgerEntry.request_id,
        LedgerEntry.mip_opt_out,
        LedgerEntry.http_status,
        LedgerEntry.sampling_rate,
        LedgerEntry.sample_selected,
        LedgerEntry.sample_kept,
    ).execution_options(yield_per=batch)
    for project_id, request_id, opted_out, status, rate, selected, kept in session.execute(stmt):
        audit.rows += 1
        audit.selected += bool(selected)
        expected = False
        if not opted_out and status < 400 and rate is not None:
            expected = sampling_score(secret, request_id) < rate
        if expected != selected:
            audit.mismatches.append(
                {"project_id": str(project_id), "request_id": request_id, "recorded": selected}
            )
        if kept and (opted_out or not selected):
            audit.kept_without_selection.append(f"{project_id}/{request_id}")
    return audit
