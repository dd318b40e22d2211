"""Model versions: candidates a job produced, the promotion policy, promote / demote / reject.

    version = register_candidate(session, store, package=path, job=job, training_set_id=set_id,
                                 base_model=job.base_model, metrics=metrics)
    promote(session, store, settings, f"{version.name}:{version.version}", actor="cli")

A candidate's package is kept in the blob store (``models/candidates/<file>``); promotion
copies it into the models folder, where the registry's poller serves it, and demotion removes
it again and puts back the version it replaced. Files appear by ``os.replace`` of a dot-named
temporary file, so the poller never reads half a package.

The policy and the metrics it reads: :mod:`app.training.policy`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.kit.db import utcnow
from app.kit.errors import BadRequest, Conflict, NotFound
from app.kit.settings import Settings
from app.kit.text import ascii_number
from app.samples.runtime import SampleStore
from app.tables.training import VERSION_STATUSES, ModelVersion, TrainingJob
from app.training import repository
from app.training.policy import policy_verdict as policy_verdict  # re-exported
from asr.manifest import PackageError, read_manifest
from durable import write_atomic

CANDIDATES_PREFIX = "models/candidates/"
_TARGET = "model_version"
_CHUNK = 1 << 20


class ModelVersionNotFound(NotFound):
    pass


class InvalidCandidate(BadRequest):
    """A package that cannot become a model version (unreadable, or already registered)."""


class PromotionRefused(Conflict):
    """The candidate fails the promotion policy (promote with force to override)."""


class VersionStateConflict(Conflict):
    """The version's status does not allow this (e.g. demoting a candidate)."""


class TaintedVersion(Conflict):
    """Trained on a training set that held erased or purged samples: never served again."""


# --- versions ---


def get_version_or_raise(session: Session, ref: str) -> ModelVersion:
    """By row id, by package uuid, or by ``NAME:VERSION``."""
    ref = ref.strip()
    row: ModelVersion | None = None
    try:
        wanted = uuid.UUID(ref)
    except ValueError:
        name, _, version = ref.partition(":")
        if name and version:
            row = repository.get_version_by_name(session, name=name, version=version)
    else:
        row = repository.get_version(session, wanted) or repository.get_version_by_uuid(
            session, wanted
        )
    if row is None:
        raise ModelVersionNotFound(f"Model version {ref} not found (an id or NAME:VERSION).")
    return row


def list_versions(
    session: Session,
    *,
    name: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[Sequence[ModelVersion], int]:
    if status is not None and status not in VERSION_STATUSES:
        raise InvalidCandidate(f"Unknown status {status!r}; one of {', '.join(VERSION_STATUSES)}.")
    return repository.list_versions(session, name=name, status=status, limit=limit, offset=offset)


def next_version(session: Session, name: str, base_version: str | None) -> str:
    """``YYYY-MM-DD.N`` for today (UTC), N one above any version of ``name`` of that date.

    >>> next_version(session, "ctcconformer-general", "2026-11-21.1")   # on 2026-11-21
    '2026-11-21.2'
    """
    today = utcnow().date().isoformat()
    taken = [*repository.version_strings(session, name=name)]
    if base_version is not None:
        taken.append(base_version)
    numbers = [0]
    for version in taken:
        date, _, number = version.partition(".")
        parsed = ascii_number(number)
        if date == today and parsed is not None:
            numbers.append(parsed)
    return f"{today}.{max(numbers) + 1}"


def register_candidate(
    session: Session,
    store: SampleStore,
    *,
    package: Path,
    job: TrainingJob | None,
    training_set_id: uuid.UUID | None,
    base_model: str | None,
    metrics: dict[str, Any],
) -> ModelVersion:
    """Keep the package in the blob store and record it as a ``candidate``."""
    try:
        manifest = read_manifest(package)
    except PackageError as exc:
        raise InvalidCandidate(f"Not a model package: {exc}") from None
    package_uuid = uuid.UUID(manifest.uuid)
    if repository.get_version_by_uuid(session, package_uuid) is not None:
        raise InvalidCandidate(f"A model version with uuid {manifest.uuid} already exists.")
    if repository.get_version_by_name(session, name=manifest.name, version=manifest.version):
        raise InvalidCandidate(f"{manifest.name} {manifest.version} is already registered.")
    blob_key = f"{CANDIDATES_PREFIX}{package.name}"
    with package.open("rb") as handle:
        store.blobs.put(blob_key, iter(lambda: handle.read(_CHUNK), b""))
    version = ModelVersion(
        uuid=package_uuid,
        name=manifest.name,
        version=manifest.version,
        status="candidate",
        filename=package.name,
        blob_key=blob_key,
        job_id=job.id if job is not None else None,
        training_set_id=training_set_id,
        base_model=base_model,
        metrics=metrics,
        created_at=utcnow(),
    )
    session.add(version)
    session.flush()
    record_event(
        session,
        actor=f"job:{job.id}" if job is not None else "system",
        action="model_version.registered",
        target_type=_TARGET,
        target_id=str(version.id),
        details={
            "name": version.name,
            "version": version.version,
            "uuid": manifest.uuid,
            "job_id": str(job.id) if job is not None else None,
            "training_set_id": str(training_set_id) if training_set_id else None,
            "base_model": base_model,
        },
    )
    return version


# --- the promotion policy ---


def verdict_for(version: ModelVersion, settings: Settings) -> dict[str, Any]:
    return policy_verdict(
        version.metrics or {},
        max_group_regression=settings.promotion_max_group_regression,
        min_group_utterances=settings.promotion_min_group_utterances,
    )


def policy_of(version: ModelVersion, settings: Settings) -> dict[str, Any]:
    """The verdict kept at the last promotion attempt, else the one under today's thresholds."""
    return version.policy if version.policy is not None else verdict_for(version, settings)


# --- promote, demote, reject ---


def _install(store: SampleStore, version: ModelVersion, models_dir: Path) -> Path:
    """Copy the package into the models folder; the poller sees it whole or not at all."""
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / version.filename
    # The temporary file's dot-name has no ".dg": the registry ignores it until the rename.
    write_atomic(target, store.blobs.get(version.blob_key), mode=0o644)
    return target


def _uninstall(version: ModelVersion, models_dir: Path) -> None:
    (models_dir / version.filename).unlink(missing_ok=True)


def _mark_promoted(version: ModelVersion, actor: str) -> None:
    version.status = "promoted"
    version.promoted_at = utcnow()
    version.promoted_by = actor


def promote(
    session: Session,
    store: SampleStore,
    settings: Settings,
    ref: str,
    *,
    actor: str,
    force: bool = False,
) -> ModelVersion:
    """Serve the version; the promoted version of the same name is demoted (and restorable)."""
    version = get_version_or_raise(session, ref)
    if version.status not in ("candidate", "demoted"):
        raise VersionStateConflict(
            f"{version.name} {version.version} is {version.status}; only a candidate or a "
            "demoted version can be promoted."
        )
    taint = version.taint_reason or repository.training_set_taint(session, version.training_set_id)
    if taint is not None:
        # Not even with force: what an erasure removed must not be served again.
        raise TaintedVersion(f"{version.name} {version.version} cannot be promoted: {taint}.")
    verdict = verdict_for(version, settings)
    if not verdict["passed"] and not force:
        raise PromotionRefused(
            f"{version.name} {version.version} fails the promotion policy: "
            f"{'; '.join(verdict['reasons'])}. Promote with force to override.",
            details={"policy": verdict},
        )
    version.policy = {**verdict, "forced": not verdict["passed"]}
    previous = repository.promoted_version(session, name=version.name)
    if previous is not None:
        previous.status = "demoted"
        version.replaced_id = previous.id
        session.flush()  # before the new one is marked: one promoted version per name
    _mark_promoted(version, actor)
    _flush_or_conflict(session, version)
    # Files only once the database agrees (a racing promotion fails above, touching none).
    models_dir = settings.effective_models_dir
    _install(store, version, models_dir)
    if previous is not None:
        _uninstall(previous, models_dir)
    record_event(
        session,
        actor=actor,
        action="model_version.promoted",
        target_type=_TARGET,
        target_id=str(version.id),
        details={
            "name": version.name,
            "version": version.version,
            "uuid": str(version.uuid),
            "forced": not verdict["passed"],
            "reasons": verdict["reasons"],
            "replaced": str(previous.id) if previous is not None else None,
        },
    )
    return version


def _flush_or_conflict(session: Session, version: ModelVersion) -> None:
    name = version.name  # read now: after a failed flush the session cannot load anything
    try:
        session.flush()
    except IntegrityError:
        raise VersionStateConflict(
            f"Another version of {name} was promoted at the same time; try again."
        ) from None


def demote(
    session: Session, store: SampleStore, settings: Settings, ref: str, *, actor: str
) -> ModelVersion:
    """Stop serving the version and put back the one it replaced (else the base serves)."""
    version = get_version_or_raise(session, ref)
    if version.status != "promoted":
        raise VersionStateConflict(
            f"{version.name} {version.version} is {version.status}, not promoted."
        )
    models_dir = settings.effective_models_dir
    restored = repository.get_version(session, version.replaced_id) if version.replaced_id else None
    if restored is not None and (
        restored.status != "demoted"  # rejected since: it must not come back
        or restored.tainted_at is not None
        or repository.training_set_taint(session, restored.training_set_id) is not None
    ):
        restored = None
    version.status = "demoted"
    session.flush()
    if restored is not None:
        _mark_promoted(restored, actor)
        _flush_or_conflict(session, restored)
        _install(store, restored, models_dir)
    _uninstall(version, models_dir)
    record_event(
        session,
        actor=actor,
        action="model_version.demoted",
        target_type=_TARGET,
        target_id=str(version.id),
        details={
            "name": version.name,
            "version": version.version,
            "restored": str(restored.id) if restored is not None else None,
        },
    )
    return version


def reject(session: Session, ref: str, *, actor: str, reason: str | None = None) -> ModelVersion:
    """A candidate (or demoted version) that must never be served; its package is kept."""
    version = get_version_or_raise(session, ref)
    if version.status not in ("candidate", "demoted"):
        raise VersionStateConflict(
            f"{version.name} {version.version} is {version.status}; demote it before rejecting."
            if version.status == "promoted"
            else f"{version.name} {version.version} is already rejected."
        )
    version.status = "rejected"
    session.flush()
    record_event(
        session,
        actor=actor,
        action="model_version.rejected",
        target_type=_TARGET,
        target_id=str(version.id),
        details={"name": version.name, "version": version.version, "reason": reason},
    )
    return version


def flag_tainted_versions(
    session: Session, store: SampleStore, settings: Settings, *, actor: str
) -> list[ModelVersion]:
    """Flag every version trained on a tainted set (audited); the flagged ones return.

    A served (promoted) one is also demoted when ``MIP_TAINTED_MODEL_POLICY`` is ``demote``:
    the version it replaced comes back if that one is clean, else the base model serves.
    Idempotent: a flagged version is not flagged again.
    """
    flagged = []
    for version, training_set in repository.unflagged_versions_on_tainted_sets(session):
        version.tainted_at = utcnow()
        version.taint_reason = (
            f"trained on training set {training_set.name}:{training_set.version}, tainted "
            f"({training_set.taint_reason})"
        )[:1000]
        served = version.status == "promoted"
        session.flush()
        record_event(
            session,
            actor=actor,
            action="model_version.tainted",
            target_type=_TARGET,
            target_id=str(version.id),
            details={
                "name": version.name,
                "version": version.version,
                "training_set_id": str(training_set.id),
                "reason": version.taint_reason,
                "served": served,
                "policy": settings.tainted_model_policy,
            },
        )
        if served and settings.tainted_model_policy == "demote":
            demote(session, store, settings, str(version.id), actor=actor)
        flagged.append(version)
    return flagged


def maybe_auto_promote(
    session: Session,
    store: SampleStore,
    settings: Settings,
    version: ModelVersion,
    *,
    actor: str,
) -> dict[str, Any]:
    """Promote a job's candidate if it passes the policy (never forced); the verdict either way.

    The verdict is kept on the version, so a candidate left behind says why.
    """
    verdict = verdict_for(version, settings)
    if verdict["passed"]:
        promote(session, store, settings, str(version.id), actor=actor)
    else:
        version.policy = {**verdict, "forced": False}
        session.flush()
    return {**verdict, "promoted": verdict["passed"]}
