"""Versions of a custom model: registered by its training job, published, rolled back.

A version is immutable: its number (1, 2, … per model), what it was built from (the
confirmed data set's hash, the vocabulary, the base model, the training settings), its test
against the standard model, and its package. The package is sealed under the model's data key
in the blob store (it is learnt from the customer's data); publishing copies it into the
models directory under the standard package name, where the registry serves it to the
organizations the model is shared with, and takes the previously published version's file
out. Rolling back is publishing an earlier version.

    version = register_version(session, store, model, package=path, ...)   # the job
    publish(session, store, settings, model, version, actor=principal.actor)  # accept
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.custom.schemas import CustomModelRead
from app.custom.service import InvalidCustomModel, archive_model
from app.engine.registry import ModelRegistry
from app.kit.crypto import decrypt_stream, encrypt_stream
from app.kit.db import utcnow
from app.kit.errors import Conflict, NotFound
from app.kit.settings import Settings
from app.kit.text import check_storable
from app.samples.keys import custom_model_key
from app.samples.runtime import SampleStore
from app.tables.custom import CustomModel, CustomModelVersion
from asr.manifest import package_filename, read_manifest
from asr.vocabulary import Vocabulary, VocabularyError
from durable import write_atomic

_CHUNK = 1024 * 1024


class VersionNotFound(NotFound):
    def __init__(self, number: object) -> None:
        super().__init__(f"Version {number} of this custom model not found.")


class VersionConflict(Conflict):
    pass


def _context(model: CustomModel, number: int, kind: str) -> dict[str, str]:
    return {"custom_model": str(model.id), "version": str(number), "kind": kind}


def _key(model: CustomModel, number: int, name: str) -> str:
    return f"custom/{model.reseller_id}/{model.id}/versions/{number}/{name}"


def next_number(session: Session, model: CustomModel) -> int:
    stmt = select(func.max(CustomModelVersion.number)).where(
        CustomModelVersion.model_id == model.id
    )
    return int(session.scalar(stmt) or 0) + 1


def _seal(
    store: SampleStore, model: CustomModel, number: int, name: str, chunks: Iterator[bytes]
) -> tuple[str, str]:
    """Seal ``chunks`` under the model's key at the version's ``name``: (blob key, sha256)."""
    digest = hashlib.sha256()

    def hashed() -> Iterator[bytes]:
        for chunk in chunks:
            digest.update(chunk)
            yield chunk

    key = custom_model_key(model, store.keys, store.cache)
    blob_key = _key(model, number, name)
    store.blobs.put(
        blob_key,
        encrypt_stream(hashed(), key=key, key_version=1, context=_context(model, number, name)),
    )
    return blob_key, digest.hexdigest()


def _open(store: SampleStore, model: CustomModel, number: int, name: str) -> Iterator[bytes]:
    key = custom_model_key(model, store.keys, store.cache)
    return decrypt_stream(
        store.blobs.get(_key(model, number, name)),
        key_for=lambda _version: key,
        context=_context(model, number, name),
    )


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(_CHUNK), b"")


def register_version(
    session: Session,
    store: SampleStore,
    model: CustomModel,
    *,
    number: int,
    package: Path,
    test: dict[str, Any],
    report: dict[str, bytes],
    settings: dict[str, Any],
    vocabulary: list[dict[str, Any]],
    job_id: uuid.UUID | None,
    actor: str,
) -> CustomModelVersion:
    """Seal the package and its test report (``report``: file name -> bytes) and record the
    version as a ``candidate``; the model is then ``testing`` (its owner accepts or retrains)."""
    if model.data_hash is None or model.data_seconds is None or model.data_files is None:
        raise VersionConflict(f"The data set of {model.name} is no longer confirmed.")
    manifest = read_manifest(package)
    blob_key, sha256 = _seal(store, model, number, "package.dg", _file_chunks(package))
    for name, content in report.items():
        _seal(store, model, number, name, iter([content]))
    version = CustomModelVersion(
        model_id=model.id,
        number=number,
        status="candidate",
        package_uuid=manifest.uuid,
        package_name=manifest.name,
        package_version=manifest.version,
        filename=package_filename(manifest),
        blob_key=blob_key,
        package_sha256=sha256,
        data_hash=model.data_hash,
        data_files=model.data_files,
        data_seconds=model.data_seconds,
        vocabulary=vocabulary,
        base_model={
            "name": model.base_model_name,
            "version": model.base_model_version,
            "uuid": model.base_model_uuid,
        },
        settings=settings,
        test=test,
        report_blob_key=_key(model, number, "test.html") if "test.html" in report else None,
        job_id=job_id,
        created_at=utcnow(),
        created_by=actor,
    )
    session.add(version)
    model.status = "testing"
    model.updated_at = utcnow()
    session.flush()
    record_event(
        session,
        actor=actor,
        action="custom_model.version_registered",
        target_type="custom_model",
        target_id=str(model.id),
        details={
            "version": number,
            "package_uuid": manifest.uuid,
            "data_hash": model.data_hash,
            "job_id": str(job_id) if job_id else None,
            "wer": {k: test.get(k) for k in ("wer_custom", "wer_standard")},
        },
    )
    return version


def list_versions(session: Session, model: CustomModel) -> Sequence[CustomModelVersion]:
    stmt = (
        select(CustomModelVersion)
        .where(CustomModelVersion.model_id == model.id)
        .order_by(CustomModelVersion.number.desc())
    )
    return session.scalars(stmt).all()


def get_version(session: Session, model: CustomModel, number: int) -> CustomModelVersion:
    stmt = select(CustomModelVersion).where(
        CustomModelVersion.model_id == model.id, CustomModelVersion.number == number
    )
    version = session.scalars(stmt).first()
    if version is None:
        raise VersionNotFound(number)
    return version


def published_version(session: Session, model: CustomModel) -> CustomModelVersion | None:
    if model.published_version_id is None:
        return None
    return session.get(CustomModelVersion, model.published_version_id)


def read_report(
    store: SampleStore, model: CustomModel, version: CustomModelVersion, name: str
) -> bytes:
    """A sealed file of the version's test (``test.html`` or ``test.json``)."""
    try:
        return b"".join(_open(store, model, version.number, name))
    except FileNotFoundError:
        raise VersionNotFound(f"{version.number} report {name}") from None


def install(
    store: SampleStore, model: CustomModel, version: CustomModelVersion, models_dir: Path
) -> Path:
    """Write the package into the models directory; the poller sees it whole or not at all."""
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / version.filename
    write_atomic(target, _open(store, model, version.number, "package.dg"), mode=0o644)
    return target


def uninstall(version: CustomModelVersion, models_dir: Path) -> None:
    (models_dir / version.filename).unlink(missing_ok=True)


def publish(
    session: Session,
    store: SampleStore,
    settings: Settings,
    model: CustomModel,
    version: CustomModelVersion,
    *,
    actor: str,
) -> CustomModelVersion:
    """Serve ``version`` (a candidate: accepting its test; a retired one: rolling back)."""
    session.refresh(model, with_for_update=True)
    if model.status in ("archived", "training"):
        raise VersionConflict(f"Custom model {model.name} is {model.status}; nothing is published.")
    if version.status not in ("candidate", "retired"):
        raise VersionConflict(
            f"Version {version.number} of {model.name} is {version.status}; only a candidate or "
            "a retired version can be published."
        )
    previous = published_version(session, model)
    if previous is not None:
        previous.status = "retired"
    rollback = version.status == "retired"
    version.status = "published"
    version.published_at = utcnow()
    version.published_by = actor
    model.published_version_id = version.id
    model.status = "published"
    model.updated_at = utcnow()
    session.flush()
    models_dir = settings.effective_models_dir
    install(store, model, version, models_dir)
    if previous is not None:
        uninstall(previous, models_dir)
    record_event(
        session,
        actor=actor,
        action="custom_model.rolled_back" if rollback else "custom_model.published",
        target_type="custom_model",
        target_id=str(model.id),
        details={
            "version": version.number,
            "package_uuid": version.package_uuid,
            "replaced": previous.number if previous is not None else None,
        },
    )
    return version


def reject(
    session: Session, model: CustomModel, version: CustomModelVersion, *, actor: str
) -> CustomModelVersion:
    """Turn down a candidate (the owner retrains with more data or vocabulary)."""
    if version.status != "candidate":
        raise VersionConflict(
            f"Version {version.number} of {model.name} is {version.status}, not a candidate."
        )
    version.status = "rejected"
    if model.status == "testing":
        model.status = "published" if model.published_version_id else "ready_to_train"
        if model.data_hash is None:
            model.status = "collecting"
    model.updated_at = utcnow()
    session.flush()
    record_event(
        session,
        actor=actor,
        action="custom_model.version_rejected",
        target_type="custom_model",
        target_id=str(model.id),
        details={"version": version.number},
    )
    return version


def unpublish_all(session: Session, model: CustomModel, settings: Settings) -> None:
    """Take the published package out of the models directory (archive, erasure)."""
    version = published_version(session, model)
    if version is not None:
        version.status = "retired"
        model.published_version_id = None
        session.flush()
        uninstall(version, settings.effective_models_dir)


def set_vocabulary(
    session: Session,
    model: CustomModel,
    vocabulary: Vocabulary,
    *,
    registry: ModelRegistry,
    actor: str,
) -> CustomModel:
    """Replace the vocabulary the next version is trained with (audited); a term the base
    model cannot spell is a 400."""
    if model.status == "archived":
        raise VersionConflict(f"Custom model {model.name} is archived.")
    for term in vocabulary.terms:
        for text in (term.term, *term.sounds_like):
            check_storable("vocabulary", text)
    base = registry.get(model.base_model_uuid)
    if base is not None:
        try:
            vocabulary.check_spellable(base.package.tokenizer)
        except VocabularyError as error:
            raise InvalidCustomModel(f"Invalid vocabulary: {error}") from None
    before = len(model.vocabulary or [])
    model.vocabulary = vocabulary.to_dicts()
    model.updated_at = utcnow()
    session.flush()
    record_event(
        session,
        actor=actor,
        action="custom_model.vocabulary_set",
        target_type="custom_model",
        target_id=str(model.id),
        details={"terms": len(vocabulary.terms), "before": before},
    )
    return model


def read_model(session: Session, model: CustomModel) -> CustomModelRead:
    """The model as the API and the CLI show it, with its published version's number."""
    published = published_version(session, model)
    return CustomModelRead.of(model, published=published.number if published else None)


def archive(session: Session, settings: Settings, model: CustomModel, *, actor: str) -> CustomModel:
    """Archive the model (:func:`app.custom.service.archive_model`) and take its published
    package out of the models directory: nothing of it is served any more."""
    archive_model(session, model, actor=actor)
    unpublish_all(session, model, settings)
    return model
