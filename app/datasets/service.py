"""Training sets: build (catalog → validate → balance → versioned set), lineage and tainting.

A training set is immutable once built: its version, parameters, manifest hash, validation
result and the exact sample ids it holds. What can change is its status: an erasure or a
retention purge that removes samples it holds marks it ``tainted``, and a tainted set can no
longer feed a training job. Reports (validation page, quarantine, distribution and deficit
plots) are sealed under the set's own report key (:mod:`app.datasets.reports`); they hold sample
ids, organization ids and attributes, never audio or text, and go with the erasure or purge
that taints the set.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.datasets import reports, repository
from app.datasets.catalog import CatalogFilter, load_catalog
from app.kit.errors import BadRequest, Conflict, NotFound
from app.kit.text import ascii_number
from app.samples.runtime import SampleStore
from app.tables.datasets import TrainingSet
from asr.tokenizer import CharTokenizer
from curation.balance import BalanceError, BalanceSpec, balance
from curation.schema import content_hash

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
# Labelers write "Hello, world." — training text is lower-case words; digits and other
# characters are left for validation to refuse (dropping them would corrupt the label).
_PUNCTUATION = re.compile('[.,!?;:"()\\[\\]{}\u2026\u2013\u2014]')
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
DIMENSION_ALIASES = {"noise": "noise_type", "age": "age_group", "env": "environment"}


class InvalidTrainingSet(BadRequest):
    pass


class TrainingSetNotFound(NotFound):
    pass


class TrainingSetTainted(Conflict):
    """The set held samples that were erased or purged: it cannot feed new training."""


class EmptyTrainingSet(Conflict):
    """Nothing passed validation and balancing: there is no set to build."""


@dataclass(frozen=True)
class BuildRequest:
    name: str
    dimensions: tuple[str, ...]
    hours: float
    target: dict[str, Any] | None = None  # a BalanceSpec JSON document (targets, caps, floors)
    where: CatalogFilter = field(default_factory=CatalogFilter)
    min_duration: float = 0.5
    max_duration: float = 30.0
    eval_fraction: float = 0.1  # held out (by a stable hash of the sample id) for evaluation
    seed: int = 0


def training_text(text: str | None) -> str | None:
    if text is None:
        return None
    cleaned = _PUNCTUATION.sub(" ", text.translate(_APOSTROPHES).lower())
    return " ".join(cleaned.split())


def balance_spec(
    dimensions: Sequence[str], *, hours: float, target: dict[str, Any] | None, seed: int
) -> BalanceSpec:
    """The spec of ``--balance``/``--hours``/``--target``: the options win over the file."""
    document: dict[str, Any] = dict(target or {})
    aliased = [DIMENSION_ALIASES.get(d, d) for d in dimensions]
    document["dimensions"] = aliased or document.get("dimensions", [])
    document["hours"] = hours
    document.setdefault("seed", seed)
    try:
        return BalanceSpec.from_json(document)
    except BalanceError as exc:
        raise InvalidTrainingSet(str(exc)) from None


def check_request(request: BuildRequest) -> BalanceSpec:
    if not _NAME.match(request.name):
        raise InvalidTrainingSet(
            "name must be 1-100 lowercase letters, digits, '.', '_' or '-', starting with a "
            "letter or digit."
        )
    if not 0.0 <= request.eval_fraction < 0.5:
        raise InvalidTrainingSet("eval_fraction must be at least 0 and below 0.5.")
    if not 0 < request.min_duration < request.max_duration:
        raise InvalidTrainingSet("min_duration must be positive and below max_duration.")
    return balance_spec(
        request.dimensions, hours=request.hours, target=request.target, seed=request.seed
    )


def eval_split(sample_ids: pd.Series, fraction: float, *, salt: str) -> pd.Series:
    """True for a stable ~``fraction`` of ids (sha256 of salt + id), independent of order."""
    if fraction <= 0:
        return pd.Series(False, index=sample_ids.index)
    draws = sample_ids.map(
        lambda s: int.from_bytes(hashlib.sha256(f"{salt}:{s}".encode()).digest()[:8], "big")
    )
    return (draws / 2**64) < fraction


def build_training_set(
    session: Session, store: SampleStore, request: BuildRequest, *, actor: str
) -> TrainingSet:
    """Catalog → validate → balance → a new version of ``request.name``, with its reports."""
    # great-expectations takes ~1.5 s to import: only a build pays it, not every `mip` command.
    from curation.validation import ValidationRules, validate

    spec = check_request(request)
    manifest = load_catalog(session, store, request.where)
    # Missing transcripts (not decrypted: no consent) stay missing; validation quarantines them.
    manifest["transcript"] = (
        manifest["transcript"].map(training_text, na_action="ignore").astype("str")
    )
    rules = ValidationRules(
        min_duration=request.min_duration,
        max_duration=request.max_duration,
        charset="".join(sorted(CharTokenizer.english().charset)),
    )
    validation = validate(manifest, rules, name=request.name)
    try:
        balanced = balance(validation.valid, spec)
    except BalanceError as exc:
        raise InvalidTrainingSet(str(exc)) from None
    selected = balanced.selected
    if selected.empty:
        raise EmptyTrainingSet(
            f"No sample passed validation and balancing ({len(manifest)} in the catalog, "
            f"{len(validation.valid)} valid); nothing to build."
        )
    held_out = eval_split(selected["sample_id"], request.eval_fraction, salt=request.name)
    version = repository.next_version(session, name=request.name)
    row = TrainingSet(
        id=uuid.uuid4(),
        name=request.name,
        version=version,
        status="ready",
        params=_params(request, spec),
        manifest_hash=content_hash(selected),
        validation=validation.to_dict(),
        balance=balanced.to_dict(),
        sample_count=int((~held_out).sum()),
        eval_count=int(held_out.sum()),
        duration_seconds=float(selected["duration"].sum()),
        created_by=actor,
    )
    session.add(row)
    session.flush()
    repository.add_members(
        session,
        set_id=row.id,
        members=zip(
            (uuid.UUID(s) for s in selected["sample_id"]),
            (uuid.UUID(o) for o in selected["organization_id"]),
            ("eval" if h else "train" for h in held_out),
            strict=True,
        ),
    )
    reports.seal_reports(store, row, reports.render_reports(validation, balanced))
    session.flush()
    record_event(
        session,
        actor=actor,
        action="training_set.built",
        target_type="training_set",
        target_id=str(row.id),
        details={
            "name": row.name,
            "version": row.version,
            "manifest_hash": row.manifest_hash,
            "samples": row.sample_count,
            "eval_samples": row.eval_count,
            "quarantined": len(validation.quarantine),
            "organizations": sorted(set(selected["organization_id"])),
        },
    )
    return row


def _params(request: BuildRequest, spec: BalanceSpec) -> dict[str, Any]:
    return {
        "balance": json.loads(spec.to_json()),
        "filter": {
            "organization_ids": (
                None
                if request.where.organization_ids is None
                else [str(o) for o in request.where.organization_ids]
            ),
            "domain": request.where.domain,
            "language": request.where.language,
            "reference_only": request.where.reference_only,
        },
        "validation": {"min_duration": request.min_duration, "max_duration": request.max_duration},
        "eval_fraction": request.eval_fraction,
        "seed": request.seed,
    }


def get_training_set_or_raise(session: Session, ref: str) -> TrainingSet:
    """By id, by ``name`` (latest version) or by ``name:version``."""
    row: TrainingSet | None = None
    try:
        row = repository.get_training_set(session, uuid.UUID(ref))
    except ValueError:
        name, _, version = ref.partition(":")
        number = ascii_number(version, max_digits=9) if version else None
        if version and number is None:
            raise InvalidTrainingSet("A training set is NAME, NAME:VERSION or its id.") from None
        row = repository.get_training_set_by_name(session, name=name, version=number)
    if row is None:
        raise TrainingSetNotFound(f"Training set {ref} not found.")
    return row


def check_trainable(training_set: TrainingSet) -> None:
    if training_set.status == "tainted":
        raise TrainingSetTainted(
            f"Training set {training_set.name}:{training_set.version} is tainted "
            f"({training_set.taint_reason}); build a new version."
        )


def taint_sets(
    session: Session,
    set_ids: Sequence[uuid.UUID],
    *,
    reason: str,
    actor: str,
    organization_id: uuid.UUID | None,
    details: dict[str, Any],
    store: SampleStore | None = None,
) -> list[uuid.UUID]:
    """Mark the sets tainted (once), remove their reports, and say which in the audit log.

    The report keys are destroyed in this unit of work and, with a ``store``, the report
    objects deleted too; a caller without one leaves the deletions to
    :func:`app.datasets.reports.delete_removed_reports` (an erasure's run does it). A set
    tainted before reports went with erasures loses its reports now.
    """
    changed = repository.mark_tainted(session, set_ids, reason=reason)
    removed = reports.remove_reports(session, store, set_ids, reason=reason)
    if changed or removed.training_sets:
        record_event(
            session,
            actor=actor,
            action="training_sets.tainted",
            target_type="training_sets",
            target_id=f"{len(changed)} sets",
            organization_id=organization_id,
            details={
                "training_sets": [str(s) for s in changed],
                "reason": reason,
                "reports_removed": [str(s) for s in removed.training_sets],
                "report_objects_deleted": removed.objects,
                **details,
            },
        )
    return changed


def sets_holding(
    session: Session,
    *,
    organization_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
    sample_ids: Sequence[uuid.UUID] | None = None,
) -> list[uuid.UUID]:
    """The training sets holding any of ``sample_ids``, or any sample of the organization
    (or of this project of it): what an erasure or a purge must taint."""
    if sample_ids is not None:
        return repository.sets_holding_samples(session, sample_ids)
    if organization_id is None:
        raise ValueError("Name sample_ids or an organization_id.")
    if project_id is None:
        return repository.sets_holding_organization(session, organization_id)
    held = repository.project_sample_ids(
        session, organization_id=organization_id, project_id=project_id
    )
    return repository.sets_holding_samples(session, held)
