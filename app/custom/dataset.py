"""A custom model's data set: confirmed (frozen by its content hash), reopened, checked.

The owner uploads, reads the validation report, removes or replaces flagged files, then
confirms: the accepted files are frozen under a SHA-256 over each file's id, audio hash and
transcript, and nothing can be added or removed until the set is reopened. Training reads
only a confirmed set, and checks the hash again before it starts.

    confirm(session, store, model, actor=principal.actor)   # -> "ready_to_train"
    check_trainable(model, min_hours=settings.custom_min_hours)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.custom import repository
from app.custom.data import DataNotAccepted, clear_confirmation, list_files, read_transcript
from app.kit.db import utcnow
from app.kit.errors import Conflict
from app.samples.runtime import SampleStore
from app.tables.custom import CustomDataFile, CustomModel

# Statuses from which a set may be confirmed or reopened (not while it trains or is archived).
CONFIRMABLE = frozenset({"collecting", "failed", "published", "testing"})


class DataSetNotReady(Conflict):
    """The set is not confirmed, changed since, or holds too few hours to train."""


def accepted_files(session: Session, model: CustomModel) -> Sequence[CustomDataFile]:
    return list_files(session, model, status="accepted")


def content_hash(
    session: Session, store: SampleStore, model: CustomModel, files: Sequence[CustomDataFile]
) -> str:
    """SHA-256 over the accepted files in id order: id, audio hash, speaker, transcript."""
    digest = hashlib.sha256(b"mip-custom-data-set-v1\n")
    for record in sorted(files, key=lambda f: str(f.id)):
        transcript = read_transcript(session, store, model, record).encode()
        for part in (
            str(record.id).encode(),
            (record.audio_sha256 or "").encode(),
            (record.speaker or "").encode(),
            hashlib.sha256(transcript).hexdigest().encode(),
        ):
            digest.update(len(part).to_bytes(4, "big") + part)
    return digest.hexdigest()


def confirm(session: Session, store: SampleStore, model: CustomModel, *, actor: str) -> CustomModel:
    """Freeze the accepted files: status ``ready_to_train`` (409 when empty or already so)."""
    session.refresh(model, with_for_update=True)
    if model.data_hash is not None:
        raise DataSetNotReady(
            f"The data set of {model.name} is already confirmed ({model.data_hash[:12]}); "
            "reopen it to change it."
        )
    if repository.has_validating_upload(session, model.id):
        raise DataSetNotReady(
            f"An upload of {model.name} is still being read (validating); confirm the data set "
            "once it is complete."
        )
    if model.status not in CONFIRMABLE:
        raise DataNotAccepted(
            f"Custom model {model.name} is {model.status}: its data set cannot be confirmed."
        )
    files = accepted_files(session, model)
    if not files:
        raise DataSetNotReady(f"Custom model {model.name} has no accepted training files.")
    seconds = sum(f.duration_seconds or 0.0 for f in files)
    model.data_hash = content_hash(session, store, model, files)
    model.data_files = len(files)
    model.data_seconds = round(seconds, 3)
    model.data_confirmed_at = model.updated_at = utcnow()
    model.data_confirmed_by = actor
    before = model.status
    model.status = "ready_to_train"
    session.flush()
    record_event(
        session,
        actor=actor,
        action="custom_data.confirmed",
        target_type="custom_model",
        target_id=str(model.id),
        details={
            "data_hash": model.data_hash,
            "files": model.data_files,
            "hours": round(seconds / 3600, 6),
            "before": before,
        },
    )
    return model


def reopen(session: Session, model: CustomModel, *, actor: str) -> CustomModel:
    """Unfreeze a confirmed set so that files can be added or removed (status collecting)."""
    session.refresh(model, with_for_update=True)
    if model.data_hash is None:
        raise DataSetNotReady(f"The data set of {model.name} is not confirmed.")
    if model.status not in CONFIRMABLE | {"ready_to_train"}:
        raise DataNotAccepted(
            f"Custom model {model.name} is {model.status}: it cannot be reopened."
        )
    previous = model.data_hash
    before = model.status
    clear_confirmation(model)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="custom_data.reopened",
        target_type="custom_model",
        target_id=str(model.id),
        details={"previous_hash": previous, "before": before, "after": model.status},
    )
    return model


def check_trainable(model: CustomModel, *, min_hours: float) -> None:
    """409 unless the set is confirmed and holds at least ``min_hours`` of accepted audio."""
    if model.data_hash is None or model.data_seconds is None:
        raise DataSetNotReady(
            f"Confirm the data set of {model.name} before training it "
            f"(POST /v1/governance/custom-models/{model.id}/data/confirm)."
        )
    hours = model.data_seconds / 3600
    if hours < min_hours:
        missing = min_hours - hours
        raise DataSetNotReady(
            f"The confirmed data set of {model.name} holds {hours:.2f} hours of accepted audio; "
            f"training needs at least {min_hours:g} (MIP_CUSTOM_MIN_HOURS): {missing:.2f} hours "
            "are missing."
        )
