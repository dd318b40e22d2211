"""Retention purges and erasure requests: removing exactly what must go, provably.

This domain sits above the sample store and the training sets: it deletes samples, destroys
data keys, and taints every training set that held what it removed.

Both commit step by step through a session factory (not the caller's transaction): a purge
of thousands of samples or an erasure that fails half-way keeps what it finished, records
where it stopped, and resumes from there.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from app.audit.service import record_event
from app.datasets import reports
from app.datasets import service as datasets_service
from app.erasure import repository
from app.kit.db import session_scope, utcnow
from app.kit.errors import BadRequest, Conflict, MIPError, NotFound
from app.samples import repository as samples_repository
from app.samples.keys import destroy_organization_keys
from app.samples.runtime import SampleStore
from app.samples.service import blob_prefix, iter_blob_names
from app.tables.erasure import ErasureRequest
from app.tables.tenancy import Organization, Project
from app.tenancy import repository as tenancy_repository

log = logging.getLogger("mip.erasure")

PURGE_BATCH = 200
# Per store, in order: destroy the keys first, so whatever happens next nothing is readable.
ORGANIZATION_STORES = ("keys", "blobs", "catalog")
PROJECT_STORES = ("blobs", "catalog")


@dataclass(frozen=True, slots=True)
class PurgeReport:
    purged: int
    batches: int


def purge_expired(
    factory: sessionmaker[Session], store: SampleStore, *, actor: str = "worker"
) -> PurgeReport:
    """Delete every sample past its retention deadline (blob, then row), skipping legal holds.

    One transaction and one audit entry (naming the sample ids) per batch.
    """
    purged = batches = 0
    while True:
        with session_scope(factory) as session:
            expired = samples_repository.expired_samples(session, now=utcnow(), limit=PURGE_BATCH)
            if not expired:
                break
            for sample in expired:
                for name in iter_blob_names(sample):
                    store.blobs.delete(name)
                session.delete(sample)
            session.flush()
            record_event(
                session,
                actor=actor,
                action="samples.purged_expired",
                target_type="samples",
                target_id=f"batch-{batches + 1}",
                details={
                    "count": len(expired),
                    "samples": [str(s.id) for s in expired],
                    "organizations": sorted({str(s.organization_id) for s in expired}),
                },
            )
            datasets_service.taint_sets(
                session,
                datasets_service.sets_holding(session, sample_ids=[s.id for s in expired]),
                reason="samples purged at their retention deadline",
                actor=actor,
                organization_id=None,
                details={"purged_samples": len(expired)},
                store=store,
            )
            purged += len(expired)
            batches += 1
    return PurgeReport(purged=purged, batches=batches)


def request_erasure(
    session: Session,
    *,
    organization_id: uuid.UUID | None,
    project_id: uuid.UUID | None,
    actor: str,
    withdraw_consent: bool = False,
    store: SampleStore | None = None,
) -> ErasureRequest:
    """Record an erasure request (``pending``); :func:`run_erasure` carries it out.

    A project's erasure may leave ``organization_id`` out: it is the project's. With
    ``withdraw_consent`` the scope is opted out from now on (no later request of it takes
    part in the program); otherwise requests after the erasure take part as before. Every
    training set holding the scope is tainted here and its reports removed: the report keys
    destroyed and, with the ``store``, the report objects deleted (else :func:`run_erasure`
    deletes them).
    """
    if project_id is not None:
        project = tenancy_repository.get_project(session, project_id)
        if project is None or organization_id not in (None, project.organization_id):
            within = f" in organization {organization_id}" if organization_id else ""
            raise NotFound(f"Project {project_id} not found{within}.")
        organization_id = project.organization_id
    elif organization_id is None:
        raise BadRequest("Name the organization_id or the project_id to erase.")
    tenancy_repository.get_organization_or_raise(session, organization_id)
    existing = repository.open_erasure(
        session, organization_id=organization_id, project_id=project_id
    )
    if existing is not None and (existing.project_id == project_id):
        raise Conflict(
            f"Erasure request {existing.id} for this scope is {existing.status}; resume it instead."
        )
    scope = "organization" if project_id is None else "project"
    stores = ORGANIZATION_STORES if project_id is None else PROJECT_STORES
    row = ErasureRequest(
        scope=scope,
        organization_id=organization_id,
        project_id=project_id,
        status="pending",
        stores=dict.fromkeys(stores, "pending"),
        counts={},
        requested_by=actor,
    )
    session.add(row)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="erasure.requested",
        target_type="erasure_request",
        target_id=str(row.id),
        organization_id=organization_id,
        details={
            "scope": scope,
            "project_id": str(project_id) if project_id else None,
            "withdraw_consent": withdraw_consent,
        },
    )
    if withdraw_consent:
        _withdraw_consent(session, organization_id, project_id, actor=actor, erasure_id=row.id)
    # At request time, not when done: from now on nothing of this scope may feed training.
    datasets_service.taint_sets(
        session,
        datasets_service.sets_holding(
            session, organization_id=organization_id, project_id=project_id
        ),
        reason=_taint_reason(row.id),
        actor=actor,
        organization_id=organization_id,
        details={"erasure_id": str(row.id)},
        store=store,
    )
    return row


def _taint_reason(erasure_id: uuid.UUID) -> str:
    return f"erasure {erasure_id}"


def _withdraw_consent(
    session: Session,
    organization_id: uuid.UUID,
    project_id: uuid.UUID | None,
    *,
    actor: str,
    erasure_id: uuid.UUID,
) -> None:
    now = utcnow()
    if project_id is None:
        target: Organization | Project = tenancy_repository.get_organization_or_raise(
            session, organization_id
        )
    else:
        target = tenancy_repository.get_project_or_raise(session, project_id)
    if target.consent_withdrawn_at is None:
        target.consent_withdrawn_at = now
    session.flush()
    record_event(
        session,
        actor=actor,
        action="consent.withdrawn",
        target_type="organization" if project_id is None else "project",
        target_id=str(target.id),
        organization_id=organization_id,
        details={"erasure_id": str(erasure_id)},
    )


def run_erasure(
    factory: sessionmaker[Session], store: SampleStore, erasure_id: uuid.UUID, *, actor: str
) -> ErasureRequest:
    """Carry out (or resume) an erasure, one committed step per store; returns its final row.

    A step that fails marks the request ``failed`` with the reason; running it again resumes
    at the first store not ``done``. It is ``done`` only when nothing of the scope remains.
    """
    with session_scope(factory) as session:
        row = get_erasure(session, erasure_id)
        if row.status == "done":
            return row
        row.status = "in_progress"
        row.reason = None
        row.updated_at = utcnow()
    try:
        for step in _pending_steps(factory, erasure_id):
            with session_scope(factory) as session:
                row = get_erasure(session, erasure_id)
                count = _ERASURE_STEPS[step](session, store, row)
                row.stores = {**row.stores, step: "done"}
                row.counts = {**row.counts, step: count}
                row.updated_at = utcnow()
        with session_scope(factory) as session:
            row = get_erasure(session, erasure_id)
            # Reports removed when the erasure was requested by a caller without the store.
            reports.delete_removed_reports(session, store, reason=_taint_reason(row.id))
            _check_nothing_remains(session, store, row)
            row.status = "done"
            row.finished_at = row.updated_at = utcnow()
            record_event(
                session,
                actor=actor,
                action="erasure.completed",
                target_type="erasure_request",
                target_id=str(row.id),
                organization_id=row.organization_id,
                details={"scope": row.scope, "counts": row.counts},
            )
    except Exception as exc:
        log.exception("erasure failed", extra={"fields": {"erasure_id": str(erasure_id)}})
        with session_scope(factory) as session:
            row = get_erasure(session, erasure_id)
            row.status = "failed"
            row.reason = f"{type(exc).__name__}: {exc}"[:1000]
            row.updated_at = utcnow()
    with session_scope(factory) as session:
        final = get_erasure(session, erasure_id)
        session.expunge(final)
        return final


class ErasureNotFound(NotFound):
    pass


def get_erasure(session: Session, erasure_id: uuid.UUID) -> ErasureRequest:
    row = repository.get_erasure(session, erasure_id)
    if row is None:
        raise ErasureNotFound(f"Erasure request {erasure_id} not found.")
    return row


def _pending_steps(factory: sessionmaker[Session], erasure_id: uuid.UUID) -> list[str]:
    with session_scope(factory) as session:
        row = get_erasure(session, erasure_id)
        return [name for name, state in row.stores.items() if state != "done"]


def _erase_keys(session: Session, store: SampleStore, row: ErasureRequest) -> int:
    store.cache.clear()
    return destroy_organization_keys(session, row.organization_id)


def _erase_blobs(session: Session, store: SampleStore, row: ErasureRequest) -> int:
    if row.scope == "organization":
        return store.blobs.delete_prefix(blob_prefix(row.organization_id))
    deleted = 0
    for sample in samples_repository.samples_in_scope(
        session, organization_id=row.organization_id, project_id=row.project_id
    ):
        for name in iter_blob_names(sample):
            if store.blobs.exists(name):
                store.blobs.delete(name)
                deleted += 1
    return deleted


def _erase_catalog(session: Session, _store: SampleStore, row: ErasureRequest) -> int:
    removed = samples_repository.delete_in_scope(
        session, organization_id=row.organization_id, project_id=row.project_id
    )
    if row.scope == "organization":  # training data it contributed to shared custom models
        # Imported here: the custom data module loads torch, which `mip store` never needs.
        from app.custom import data as custom_data

        removed += custom_data.erase_contributions(
            session, row.organization_id, actor=f"erasure:{row.id}"
        )
    return removed


_ERASURE_STEPS = {"keys": _erase_keys, "blobs": _erase_blobs, "catalog": _erase_catalog}


def _check_nothing_remains(session: Session, store: SampleStore, row: ErasureRequest) -> None:
    left = samples_repository.count_in_scope(
        session, organization_id=row.organization_id, project_id=row.project_id
    )
    if left:
        raise RemainingData(f"{left} catalog rows remain in scope.")
    if row.scope == "organization":
        objects = sum(1 for _ in store.blobs.list(blob_prefix(row.organization_id)))
        if objects:
            raise RemainingData(f"{objects} objects remain under the organization's prefix.")


class RemainingData(MIPError):
    """An erasure step finished but data of its scope is still there."""
