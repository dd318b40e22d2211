"""Every query of the training domain: jobs, their log lines, model versions.

The guarded updates (``claim``, ``beat``, ``finish``, ``release``) return whether they
changed the row: ``WHERE status = … AND worker_id = …`` is what keeps two workers from ever
owning one job, on PostgreSQL and on SQLite (which has no row locks).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import CursorResult, insert, or_, select, update
from sqlalchemy.orm import Session

from app.kit.db import paged
from app.tables.datasets import TrainingSet
from app.tables.training import ModelVersion, TrainingJob, TrainingJobLog


def _changed(result: Any) -> bool:
    # update() through Session.execute returns a CursorResult; rowcount is the guard's answer.
    if not isinstance(result, CursorResult):
        raise TypeError("a guarded UPDATE must return a cursor result")
    return result.rowcount == 1


# --- jobs ---


def get_job(session: Session, job_id: uuid.UUID) -> TrainingJob | None:
    return session.get(TrainingJob, job_id)


def list_jobs(
    session: Session,
    *,
    status: str | None,
    limit: int,
    offset: int,
    custom_model_id: uuid.UUID | None = None,
) -> tuple[Sequence[TrainingJob], int]:
    stmt = select(TrainingJob)
    if custom_model_id is not None:
        stmt = stmt.where(TrainingJob.custom_model_id == custom_model_id)
    if status is not None:
        stmt = stmt.where(TrainingJob.status == status)
    order = (TrainingJob.created_at.desc(), TrainingJob.id)
    return paged(session, stmt, *order, limit=limit, offset=offset)


def oldest_queued_id(session: Session, *, skip_locked: bool) -> uuid.UUID | None:
    """The next job to claim; on PostgreSQL the row stays locked until the transaction ends."""
    stmt = (
        select(TrainingJob.id)
        .where(TrainingJob.status == "queued")
        .order_by(TrainingJob.created_at, TrainingJob.id)
        .limit(1)
    )
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True)
    return session.scalar(stmt)


def claim(session: Session, job_id: uuid.UUID, *, worker_id: str, now: dt.datetime) -> bool:
    """queued → running for ``worker_id``; False when someone else got there first."""
    result = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == "queued")
        .values(
            status="running",
            worker_id=worker_id,
            attempts=TrainingJob.attempts + 1,
            started_at=now,
            heartbeat_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return _changed(result)


def _owned(job_id: uuid.UUID, worker_id: str) -> Any:
    return (
        TrainingJob.id == job_id,
        TrainingJob.worker_id == worker_id,
        TrainingJob.status == "running",
    )


def beat(session: Session, job_id: uuid.UUID, *, worker_id: str, now: dt.datetime) -> bool:
    """Refresh the heartbeat, only while ``worker_id`` still owns the running job."""
    result = session.execute(
        update(TrainingJob)
        .where(*_owned(job_id, worker_id))
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    return _changed(result)


def update_owned(
    session: Session, job_id: uuid.UUID, *, worker_id: str, values: dict[str, Any]
) -> bool:
    """Progress, metrics or the final status, written only by the job's current owner."""
    result = session.execute(
        update(TrainingJob)
        .where(*_owned(job_id, worker_id))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return _changed(result)


def stale_jobs(
    session: Session, *, cutoff: dt.datetime, skip_locked: bool
) -> Sequence[TrainingJob]:
    """Running jobs whose worker has not heart-beaten since ``cutoff``."""
    stmt = (
        select(TrainingJob)
        .where(
            TrainingJob.status == "running",
            or_(TrainingJob.heartbeat_at < cutoff, TrainingJob.heartbeat_at.is_(None)),
        )
        .order_by(TrainingJob.created_at, TrainingJob.id)
    )
    if skip_locked:
        stmt = stmt.with_for_update(skip_locked=True)
    return session.scalars(stmt).all()


def release(
    session: Session,
    job: TrainingJob,
    *,
    cutoff: dt.datetime,
    values: dict[str, Any],
) -> bool:
    """Take a stale job from its dead worker, unless it heart-beat or changed meanwhile."""
    heartbeat = (
        TrainingJob.heartbeat_at.is_(None)
        if job.heartbeat_at is None
        else TrainingJob.heartbeat_at < cutoff
    )
    owner = (
        TrainingJob.worker_id.is_(None)
        if job.worker_id is None
        else TrainingJob.worker_id == job.worker_id
    )
    result = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job.id, TrainingJob.status == "running", owner, heartbeat)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return _changed(result)


def set_status_if(
    session: Session, job_id: uuid.UUID, *, when: str, values: dict[str, Any]
) -> bool:
    """Write ``values`` only while the job's status is ``when``."""
    result = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == when)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return _changed(result)


def cancel_requested(session: Session, job_id: uuid.UUID) -> bool:
    return bool(
        session.scalar(select(TrainingJob.cancel_requested).where(TrainingJob.id == job_id))
    )


# --- log lines ---


def add_log(session: Session, job_id: uuid.UUID, *, level: str, message: str) -> None:
    session.execute(
        insert(TrainingJobLog).values(job_id=job_id, level=level, message=message[:20_000])
    )


def list_logs(
    session: Session, job_id: uuid.UUID, *, after_id: int, limit: int
) -> Sequence[TrainingJobLog]:
    return session.scalars(
        select(TrainingJobLog)
        .where(TrainingJobLog.job_id == job_id, TrainingJobLog.id > after_id)
        .order_by(TrainingJobLog.id)
        .limit(limit)
    ).all()


# --- model versions ---


def get_version(session: Session, version_id: uuid.UUID) -> ModelVersion | None:
    return session.get(ModelVersion, version_id)


def get_version_by_uuid(session: Session, package_uuid: uuid.UUID) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).where(ModelVersion.uuid == package_uuid)).first()


def get_version_by_name(session: Session, *, name: str, version: str) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)
    ).first()


def list_versions(
    session: Session, *, name: str | None, status: str | None, limit: int, offset: int
) -> tuple[Sequence[ModelVersion], int]:
    stmt = select(ModelVersion)
    if name is not None:
        stmt = stmt.where(ModelVersion.name == name)
    if status is not None:
        stmt = stmt.where(ModelVersion.status == status)
    order = (ModelVersion.created_at.desc(), ModelVersion.id)
    return paged(session, stmt, *order, limit=limit, offset=offset)


def version_strings(session: Session, *, name: str) -> Sequence[str]:
    return session.scalars(select(ModelVersion.version).where(ModelVersion.name == name)).all()


def promoted_version(session: Session, *, name: str) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion)
        .where(ModelVersion.name == name, ModelVersion.status == "promoted")
        .order_by(ModelVersion.promoted_at.desc())
        .with_for_update()
    ).first()


def unflagged_versions_on_tainted_sets(
    session: Session,
) -> list[tuple[ModelVersion, TrainingSet]]:
    """Versions (not rejected) trained on a tainted set and not flagged yet, with the set."""
    stmt = (
        select(ModelVersion, TrainingSet)
        .join(TrainingSet, TrainingSet.id == ModelVersion.training_set_id)
        .where(
            TrainingSet.status == "tainted",
            ModelVersion.tainted_at.is_(None),
            ModelVersion.status != "rejected",
        )
        .order_by(ModelVersion.created_at)
    )
    return [(version, training_set) for version, training_set in session.execute(stmt)]


def training_set_taint(session: Session, training_set_id: uuid.UUID | None) -> str | None:
    """Why the set is tainted, or None (also for no set)."""
    if training_set_id is None:
        return None
    row = session.get(TrainingSet, training_set_id)
    if row is None or row.status != "tainted":
        return None
    return f"trained on training set {row.name}:{row.version}, tainted ({row.taint_reason})"


def versions_trained_on(
    session: Session, training_set_ids: Collection[uuid.UUID]
) -> Sequence[ModelVersion]:
    if not training_set_ids:
        return []
    stmt = select(ModelVersion).where(ModelVersion.training_set_id.in_(set(training_set_ids)))
    return session.scalars(stmt.order_by(ModelVersion.created_at, ModelVersion.id)).all()
