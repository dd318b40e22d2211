"""Training a custom model: queue the job, follow it, and what happens when it ends.

    job = submit_custom_job(session, settings, model, params=CustomJobParams(minutes=20),
                            actor=principal.actor)     # model: "training"; mip worker runs it

The job trains the confirmed data set (frozen while it trains: it cannot be reopened) on top
of the model's base package, tests the new version against the standard model, and registers
it as a candidate (:mod:`app.training.custom_runner`). A job that fails or is cancelled puts
the model back where it was, so its owner can fix the data and train again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.custom.dataset import check_trainable
from app.kit.db import utcnow
from app.kit.errors import Conflict
from app.kit.settings import Settings
from app.tables.custom import CustomModel
from app.tables.training import TrainingJob
from app.training import repository
from app.training.schemas import CustomJobParams
from app.training.service import TrainingJobNotFound, find_base_package

# Statuses from which a model may be trained (again).
TRAINABLE = frozenset({"ready_to_train", "testing", "published", "failed"})


class CustomModelBusy(Conflict):
    pass


def submit_custom_job(
    session: Session,
    settings: Settings,
    model: CustomModel,
    *,
    params: CustomJobParams,
    actor: str,
) -> TrainingJob:
    """Queue a training job for ``model``: 409 unless its confirmed set has enough hours."""
    session.refresh(model, with_for_update=True)
    if model.status in ("collecting", "validating"):
        check_trainable(model, min_hours=settings.custom_min_hours)  # says what to do first
    if model.status not in TRAINABLE:
        raise CustomModelBusy(
            f"Custom model {model.name} is {model.status}; it can be trained when its data set "
            "is confirmed (ready_to_train), after a test, when published or after a failure."
        )
    check_trainable(model, min_hours=settings.custom_min_hours)
    base = find_base_package(settings, model.base_model_uuid)
    now = utcnow()
    job = TrainingJob(
        status="queued",
        base_model=base.manifest.uuid,
        training_set_id=None,
        custom_model_id=model.id,
        hyperparameters=params.model_dump(mode="json"),
        progress=0.0,
        metrics={},
        attempts=0,
        max_attempts=settings.job_max_attempts,
        cancel_requested=False,
        created_by=actor,
        created_at=now,
    )
    session.add(job)
    before = model.status
    model.status = "training"
    model.updated_at = now
    session.flush()
    repository.add_log(
        session,
        job.id,
        level="info",
        message=(
            f"queued by {actor}: custom model {model.name} on base {base.manifest.name} "
            f"{base.manifest.version}, data set {model.data_hash}"
        ),
    )
    record_event(
        session,
        actor=actor,
        action="custom_model.training_submitted",
        target_type="custom_model",
        target_id=str(model.id),
        details={
            "job_id": str(job.id),
            "data_hash": model.data_hash,
            "base_model": base.manifest.uuid,
            "hyperparameters": job.hyperparameters,
            "before": before,
        },
    )
    return job


def list_custom_jobs(
    session: Session, model: CustomModel, *, limit: int, offset: int
) -> tuple[Sequence[TrainingJob], int]:
    return repository.list_jobs(
        session, status=None, limit=limit, offset=offset, custom_model_id=model.id
    )


def get_custom_job(session: Session, model: CustomModel, job_id: uuid.UUID) -> TrainingJob:
    job = repository.get_job(session, job_id)
    if job is None or job.custom_model_id != model.id:
        raise TrainingJobNotFound(f"Training job {job_id} not found.")
    return job
