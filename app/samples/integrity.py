"""``mip store verify`` and ``mip store audit-sampling``: proofs an auditor can rerun.

verify authenticates every object (every GCM tag, the segment order and the final flag)
without keeping plaintext, and matches the catalog against the blob store both ways.
audit-sampling recomputes every ledger row's sampling decision from the secret.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.kit.crypto import authenticate_stream
from app.kit.errors import MIPError
from app.samples.keys import key_resolver
from app.samples.runtime import SampleStore
from app.samples.sampling import sampling_score
from app.samples.service import crypto_context
from app.tables.ledger import LedgerEntry
from app.tables.samples import Sample


@dataclass
class VerifyReport:
    samples: int = 0
    objects: int = 0
    verified: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    missing_blobs: list[dict[str, str]] = field(default_factory=list)
    orphan_blobs: list[str] = field(default_factory=list)
    stale_temp_files: int = 0

    @property
    def ok(self) -> bool:
        return not (self.failed or self.missing_blobs or self.orphan_blobs)

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "samples": self.samples,
            "objects": self.objects,
            "verified": self.verified,
            "failed": len(self.failed),
            "missing_blobs": len(self.missing_blobs),
            "orphans": len(self.orphan_blobs),
            "stale_temp_files": self.stale_temp_files,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "failures": self.failed,
            "missing": self.missing_blobs,
            "orphan_keys": self.orphan_blobs,
        }


def verify_store(
    session: Session,
    store: SampleStore,
    *,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    report = VerifyReport()
    stored = {info.key for info in store.blobs.list("orgs/")}
    report.objects = len(stored)
    referenced: set[str] = set()
    resolvers: dict[uuid.UUID, Callable[[int], bytes]] = {}
    for sample in session.scalars(select(Sample).order_by(Sample.id)):
        report.samples += 1
        key_for = resolvers.setdefault(
            sample.organization_id,
            key_resolver(session, store.keys, store.cache, sample.organization_id),
        )
        objects = [("audio", sample.audio_blob_key), ("transcript", sample.transcript_blob_key)]
        if sample.reference_blob_key is not None:
            objects.append(("reference", sample.reference_blob_key))
        for kind, name in objects:
            referenced.add(name)
            if name not in stored:
                report.missing_blobs.append({"sample_id": str(sample.id), "key": name})
                continue
            try:
                authenticate_stream(
                    store.blobs.get(name), key_for=key_for, context=crypto_context(sample, kind)
                )
            except MIPError as exc:
                report.failed.append(
                    {"sample_id": str(sample.id), "key": name, "error": exc.message}
                )
            else:
                report.verified += 1
        if progress is not None:
            progress(1)
    report.orphan_blobs = sorted(stored - referenced)
    stale = getattr(store.blobs, "stale_temp_files", None)
    if callable(stale):
        report.stale_temp_files = len(stale())
    return report


@dataclass
class SamplingAudit:
    rows: int = 0
    selected: int = 0
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    kept_without_selection: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.mismatches or self.kept_without_selection)


def audit_sampling(session: Session, store: SampleStore, *, batch: int = 5000) -> SamplingAudit:
    """Recompute each ledger row's decision with the recorded rate and compare."""
    audit = SamplingAudit()
    secret = store.sampling.secret
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
