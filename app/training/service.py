"""Training jobs: submit, read, cancel — the rules; :mod:`app.training.queue` runs them.

    job = submit_job(session, settings, base_model="general", training_set="medical-en:3",
                     hyperparameters=JobParams(minutes=30), actor=principal.actor)

A job names its base model by the uuid of the package it resolved to at submission, so what it
was trained from never depends on which package serves a name later.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.custom import service as custom_service
from app.datasets.service import check_trainable, get_training_set_or_raise
from app.engine.registry import version_order
from app.kit.db import utcnow
from app.kit.errors import BadRequest, Conflict, NotFound
from app.kit.settings import Settings
from app.tables.training import JOB_STATUSES, TrainingJob, TrainingJobLog
from app.training import repository
from app.training.schemas import JobParams
from asr.manifest import ASR_KIND, PackageError, PackageManifest, read_manifest

FINISHED = frozenset({"succeeded", "failed", "cancelled"})


class TrainingJobNotFound(NotFound):
    pass


class InvalidJob(BadRequest):
    """Hyperparameters or filters that cannot be used as given."""


class UnknownBaseModel(BadRequest):
    """The base model names no ASR package in the model folders."""


class JobFinished(Conflict):
    """The job already ended; there is nothing to cancel."""


@dataclass(frozen=True)
class BasePackage:
    path: Path
    manifest: PackageManifest


def model_dirs(settings: Settings) -> list[Path]:
    """Where served packages live: the models folder first, then the bundled one."""
    dirs = [settings.effective_models_dir]
    if settings.bundled_models_dir is not None:
        dirs.append(settings.bundled_models_dir)
    return dirs


def _match_rank(wanted: str, manifest: PackageManifest) -> int | None:
    if wanted in (manifest.uuid, manifest.name, manifest.legacy_name):
        return 0
    if wanted in manifest.aliases:
        return 1
    return None


def find_base_package(settings: Settings, model: str) -> BasePackage:
    """The ASR package ``model`` (name, alias, uuid, legacy name) names; the newest wins.

    Reads manifests only (cheap), with the registry's rules: an exact name or uuid beats an
    alias, and among equals the newest version.
    """
    wanted = model.strip().lower()
    found: list[tuple[int, BasePackage]] = []
    for directory in model_dirs(settings):
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.dg")):
            if path.name.startswith("."):
                continue
            try:
                manifest = read_manifest(path)
            except PackageError:
                continue  # the registry logs unreadable packages; they serve nothing
            rank = _match_rank(wanted, manifest)
            if rank is not None and manifest.kind == ASR_KIND:
                found.append((rank, BasePackage(path, manifest)))
    if not found:
        raise UnknownBaseModel(
            f"Base model {model!r} is not a served ASR model (name, alias or uuid); "
            "see GET /v1/models."
        )
    best = min(rank for rank, _ in found)
    pool = [package for rank, package in found if rank == best]
    return max(pool, key=lambda p: version_order(p.manifest.version))


def parse_params(raw: dict[str, Any]) -> JobParams:
    """:class:`JobParams` from plain values, or :class:`InvalidJob` naming every bad field."""
    try:
        return JobParams.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'hyperparameters'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise InvalidJob(f"Invalid hyperparameters: {'; '.join(problems)}.") from None


def submit_job(
    session: Session,
    settings: Settings,
    *,
    base_model: str,
    training_set: str,
    hyperparameters: JobParams,
    actor: str,
) -> TrainingJob:
    """Queue a fine-tuning job; 400 for an unknown base model, 404/409 for a bad set."""
    base = find_base_package(settings, base_model)
    training = get_training_set_or_raise(session, training_set)
    check_trainable(training)
    if training.sample_count == 0 or training.eval_count == 0:
        raise InvalidJob(
            f"Training set {training.name}:{training.version} has {training.sample_count} "
            f"training and {training.eval_count} evaluation samples; a job needs both (build "
            "it with eval_fraction > 0)."
        )
    job = TrainingJob(
        status="queued",
        base_model=base.manifest.uuid,
        training_set_id=training.id,
        hyperparameters=hyperparameters.model_dump(mode="json"),
        progress=0.0,
        metrics={},
        attempts=0,
        max_attempts=settings.job_max_attempts,
        cancel_requested=False,
        created_by=actor,
        created_at=utcnow(),
    )
    session.add(job)
    session.flush()
    repository.add_log(
        session,
        job.id,
        level="info",
        message=(
            f"queued by {actor}: base {base.manifest.name} {base.manifest.version} "
            f"({base.manifest.uuid}), training set {training.name}:{training.version}"
        ),
    )
    record_event(
        session,
        actor=actor,
        action="training_job.submitted",
        target_type="training_job",
        target_id=str(job.id),
        details={
            "base_model": base.manifest.uuid,
            "base_name": base.manifest.name,
            "base_version": base.manifest.version,
            "training_set_id": str(training.id),
            "training_set": f"{training.name}:{training.version}",
            "hyperparameters": job.hyperparameters,
        },
    )
    return job


def get_job_or_raise(session: Session, job_id: uuid.UUID) -> TrainingJob:
    job = repository.get_job(session, job_id)
    if job is None:
        raise TrainingJobNotFound(f"Training job {job_id} not found.")
    return job


def list_jobs(
    session: Session, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[Sequence[TrainingJob], int]:
    if status is not None and status not in JOB_STATUSES:
        raise InvalidJob(f"Unknown status {status!r}; one of {', '.join(JOB_STATUSES)}.")
    return repository.list_jobs(session, status=status, limit=limit, offset=offset)


def job_logs(
    session: Session, job_id: uuid.UUID, *, after_id: int = 0, limit: int = 1000
) -> Sequence[TrainingJobLog]:
    get_job_or_raise(session, job_id)
    return repository.list_logs(session, job_id, after_id=after_id, limit=limit)


def cancel_job(session: Session, job_id: uuid.UUID, *, actor: str) -> TrainingJob:
    """Queued: cancelled now. Running: asks its executor to stop. Finished: 409."""
    job = get_job_or_raise(session, job_id)
    # Guarded updates, not read-then-write: a worker may be claiming the job right now.
    if repository.set_status_if(
        session, job_id, when="queued", values={"status": "cancelled", "finished_at": utcnow()}
    ):
        action, message = "training_job.cancelled", f"cancelled by {actor} before it started"
        custom_service.training_ended(
            session, job.custom_model_id, job_id=job.id, job_status="cancelled"
        )
    elif repository.set_status_if(
        session, job_id, when="running", values={"cancel_requested": True}
    ):
        action = "training_job.cancel_requested"
        message = f"cancel requested by {actor}; its worker stops at the next check"
    else:
        session.refresh(job)
        raise JobFinished(f"Training job {job_id} already {job.status}; nothing to cancel.")
    session.refresh(job)
    repository.add_log(session, job.id, level="warning", message=message)
    record_event(
        session,
        actor=actor,
        action=action,
        target_type="training_job",
        target_id=str(job.id),
        details={"worker_id": job.worker_id},
    )
    return job
