"""A training set's reports: rendered, sealed under the set's report key, read, removed.

The reports (validation page and results, quarantine, balance, distribution and deficit plots)
hold sample and organization ids, accents, ages and sexes: never audio or text, but personal
data all the same. Each set has a report key of its own (wrapped by the KEK on the set's row,
:mod:`app.samples.keys`), and each report is one object in the segmented AES-256-GCM format,
its associated data naming the set and the report::

    datasets/<set id>/<name>.enc    sealed: {"training_set": <set id>, "report": <name>}
    datasets/<set id>/<name>        a set built before reports were encrypted (plaintext)

When an erasure or a purge taints the set, :func:`remove_reports` destroys the key and
deletes every object under ``datasets/<set id>/``; reading a report then is a 410.
:func:`encrypt_legacy_reports` (``mip curate encrypt-reports``) seals the plaintext reports
of sets built before, and removes those of sets already tainted.
"""

from __future__ import annotations

import io
import logging
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.orm import Session, sessionmaker

from app.audit.service import record_event
from app.datasets import repository
from app.kit.crypto import ObjectIntegrityError, decrypt_bytes, encrypt_stream
from app.kit.db import session_scope
from app.kit.errors import MIPError, NotFound
from app.samples.keys import new_report_key, report_key
from app.samples.runtime import SampleStore
from app.tables.datasets import TrainingSet

log = logging.getLogger("mip.datasets")

REPORT_FILES = {
    "validation.json": "application/json",
    "validation.html": "text/html; charset=utf-8",
    "balance.json": "application/json",
    "distributions.png": "image/png",
    "deficit.png": "image/png",
    "quarantine.csv": "text/csv; charset=utf-8",
}
# The quarantine as DataOps needs it to fix labels: ids, attributes and what failed; no text.
QUARANTINE_COLUMNS = (
    "sample_id",
    "organization_id",
    "consent",
    "duration",
    "accent",
    "age_group",
    "sex",
    "noise_type",
    "environment",
    "failed_expectations",
)
SEALED_SUFFIX = ".enc"
# A set has one report key, written once: every report's header names version 1.
REPORT_KEY_VERSION = 1


class ReportNotFound(NotFound):
    pass


class ReportsRemoved(MIPError):
    """The set's reports went with the erasure or purge that tainted it (crypto-shredded)."""

    status_code = 410
    err_code = "GONE"


class ReportIntegrityError(ObjectIntegrityError):
    """A sealed report failed authentication: tampered, truncated, or another report's object."""


def report_prefix(set_id: uuid.UUID) -> str:
    return f"datasets/{set_id}/"


def sealed_blob_key(set_id: uuid.UUID, name: str) -> str:
    return f"datasets/{set_id}/{name}{SEALED_SUFFIX}"


def plaintext_blob_key(set_id: uuid.UUID, name: str) -> str:
    return f"datasets/{set_id}/{name}"


def report_context(set_id: uuid.UUID, name: str) -> dict[str, str]:
    return {"training_set": str(set_id), "report": name}


def render_reports(validation: Any, balanced: Any) -> dict[str, bytes]:
    """Every report's bytes, by file name (a ``ValidationResult`` and a ``BalanceResult``).

    Rendered in memory; only the plots pass through a private temp dir (matplotlib writes
    files), removed at once.
    """
    from curation.plots import plot_deficit, plot_distributions
    from curation.validation import render_html

    quarantine = io.StringIO()
    validation.quarantine.loc[:, list(QUARANTINE_COLUMNS)].to_csv(quarantine, index=False)
    rendered = {
        "validation.json": orjson.dumps(validation.to_dict()),
        "validation.html": render_html(validation).encode(),
        "balance.json": orjson.dumps(balanced.to_dict()),
        "quarantine.csv": quarantine.getvalue().encode(),
    }
    with tempfile.TemporaryDirectory(prefix="mip-report-") as tmp:
        folder = Path(tmp)
        rendered["distributions.png"] = plot_distributions(
            balanced, folder / "distributions.png"
        ).read_bytes()
        rendered["deficit.png"] = plot_deficit(balanced, folder / "deficit.png").read_bytes()
    return {name: rendered[name] for name in REPORT_FILES}


def seal_reports(
    store: SampleStore, training_set: TrainingSet, reports: Mapping[str, bytes]
) -> None:
    """Encrypt the reports under a new report key of the set and store them; the key goes on
    the row (wrapped), in the caller's transaction."""
    unknown = set(reports) - set(REPORT_FILES)
    if unknown:
        raise ValueError(f"not report names: {sorted(unknown)}")
    key, wrapped = new_report_key(store.keys, training_set.id)
    for name, content in reports.items():
        store.blobs.put(
            sealed_blob_key(training_set.id, name),
            encrypt_stream(
                (content,),
                key=key,
                key_version=REPORT_KEY_VERSION,
                context=report_context(training_set.id, name),
            ),
        )
    training_set.report_key_wrapped = wrapped.ciphertext
    training_set.report_kek_version = wrapped.kek_version


def read_report(store: SampleStore, training_set: TrainingSet, name: str) -> bytes:
    """The report's bytes, authenticated end to end before any of it is returned."""
    if name not in REPORT_FILES:
        raise ReportNotFound(f"No report named {name!r}; reports: {', '.join(REPORT_FILES)}.")
    if training_set.reports_removed_at is not None:
        raise ReportsRemoved(
            f"The reports of training set {training_set.name}:{training_set.version} were "
            f"removed on {training_set.reports_removed_at:%Y-%m-%d} by the erasure or purge "
            f"that tainted it ({training_set.reports_removed_reason}); its lineage remains."
        )
    if training_set.report_key_wrapped is None:
        # Built before reports were encrypted; `mip curate encrypt-reports` seals it.
        return b"".join(store.blobs.get(plaintext_blob_key(training_set.id, name)))
    key = report_key(training_set, store.keys, store.cache)
    # Read whole (reports are kilobytes): the stream is closed even when a check fails.
    sealed = b"".join(store.blobs.get(sealed_blob_key(training_set.id, name)))
    try:
        return decrypt_bytes(
            sealed, key_for=_only_version(key), context=report_context(training_set.id, name)
        )
    except ObjectIntegrityError as exc:
        raise ReportIntegrityError(
            f"Report {name} of training set {training_set.id} failed authentication: {exc.message}"
        ) from None


def _only_version(key: bytes) -> Callable[[int], bytes]:
    def key_for(version: int) -> bytes:
        if version != REPORT_KEY_VERSION:
            raise ObjectIntegrityError(f"unknown report key version {version} in the header")
        return key

    return key_for


@dataclass(frozen=True, slots=True)
class RemovedReports:
    training_sets: list[uuid.UUID]
    objects: int | None  # None: the caller holds no blob store (see delete_removed_reports)


def remove_reports(
    session: Session,
    store: SampleStore | None,
    set_ids: Sequence[uuid.UUID],
    *,
    reason: str,
) -> RemovedReports:
    """Destroy the sets' report keys, then delete their report objects (plaintext ones too).

    Keys first (flushed in the caller's transaction), then the objects: a failed deletion
    fails the caller's unit of work, which is retried whole. Sets whose reports were removed
    before are left alone.
    """
    removed = repository.remove_reports(session, set_ids, reason=reason)
    if store is None:
        return RemovedReports(removed, None)
    return RemovedReports(removed, sum(_delete_objects(store, s) for s in removed))


def delete_removed_reports(session: Session, store: SampleStore, *, reason: str) -> int:
    """Delete the objects of the reports removed for ``reason`` by a caller without the
    store (an erasure recorded that way, then run); returns how many."""
    return sum(
        _delete_objects(store, s)
        for s in repository.sets_with_removed_reports(session, reason=reason)
    )


def _delete_objects(store: SampleStore, set_id: uuid.UUID) -> int:
    return store.blobs.delete_prefix(report_prefix(set_id))


@dataclass
class LegacyReports:
    """What ``mip curate encrypt-reports`` did."""

    encrypted_sets: list[str] = field(default_factory=list)
    removed_sets: list[str] = field(default_factory=list)  # tainted before: removed, not sealed
    reports: int = 0  # report objects sealed
    missing: int = 0  # plaintext reports that were not in the store
    deleted: int = 0  # plaintext (or removed) objects deleted

    def as_dict(self) -> dict[str, Any]:
        return {
            "encrypted_sets": self.encrypted_sets,
            "removed_sets": self.removed_sets,
            "reports": self.reports,
            "missing": self.missing,
            "deleted": self.deleted,
        }


def encrypt_legacy_reports(
    factory: sessionmaker[Session], store: SampleStore, *, actor: str
) -> LegacyReports:
    """Seal the plaintext reports of every set built before reports were encrypted.

    One committed unit per set: the sealed objects are written and the key committed (with an
    audit entry) before the plaintext is deleted, so a crash loses nothing; a second run
    finishes the deletions and skips the sets done. A set already tainted has its reports
    removed instead, as a taint does now.
    """
    done = LegacyReports()
    with session_scope(factory) as session:
        legacy = repository.sets_with_plaintext_reports(session)
    for set_id in legacy:
        _seal_legacy_set(factory, store, set_id, actor=actor, done=done)
    done.deleted += _delete_leftovers(factory, store)
    return done


def _seal_legacy_set(
    factory: sessionmaker[Session],
    store: SampleStore,
    set_id: uuid.UUID,
    *,
    actor: str,
    done: LegacyReports,
) -> None:
    with session_scope(factory) as session:
        row = repository.lock_training_set(session, set_id)
        if row is None or row.report_key_wrapped is not None or row.reports_removed_at is not None:
            return  # built, erased or sealed since it was listed
        if row.status == "tainted":
            reason = f"tainted before reports went with erasures: {row.taint_reason}"
            removed = remove_reports(session, store, [set_id], reason=reason)
            done.removed_sets.append(str(set_id))
            done.deleted += removed.objects or 0
            _audit(session, row, actor, "training_set.reports_removed", {"reason": reason})
            return
        key, wrapped = new_report_key(store.keys, set_id)
        sealed: list[str] = []
        for name in REPORT_FILES:
            plaintext = plaintext_blob_key(set_id, name)
            if not store.blobs.exists(plaintext):
                done.missing += 1
                continue
            store.blobs.put(
                sealed_blob_key(set_id, name),
                encrypt_stream(
                    store.blobs.get(plaintext),
                    key=key,
                    key_version=REPORT_KEY_VERSION,
                    context=report_context(set_id, name),
                ),
            )
            sealed.append(name)
        row.report_key_wrapped = wrapped.ciphertext
        row.report_kek_version = wrapped.kek_version
        _audit(session, row, actor, "training_set.reports_encrypted", {"reports": sealed})
    done.encrypted_sets.append(str(set_id))
    done.reports += len(sealed)
    # Only now that the key is committed: a crash before this line leaves the plaintext,
    # which the next run deletes (_delete_leftovers).
    for name in sealed:
        store.blobs.delete(plaintext_blob_key(set_id, name))
        done.deleted += 1


def _audit(
    session: Session, row: TrainingSet, actor: str, action: str, details: dict[str, Any]
) -> None:
    record_event(
        session,
        actor=actor,
        action=action,
        target_type="training_set",
        target_id=str(row.id),
        details={"name": row.name, "version": row.version, **details},
    )


def _delete_leftovers(factory: sessionmaker[Session], store: SampleStore) -> int:
    """Plaintext left beside sealed reports (an interrupted run), and objects of removed
    reports (a removal by a caller without the store)."""
    with session_scope(factory) as session:
        sealed_sets = repository.sets_with_report_keys(session)
        removed_sets = repository.sets_with_removed_reports(session)
    deleted = sum(_delete_objects(store, s) for s in removed_sets)
    for set_id in sealed_sets:
        for info in _listed(store, set_id):
            if not info.endswith(SEALED_SUFFIX):
                store.blobs.delete(info)
                deleted += 1
    if deleted:
        log.info("report leftovers deleted", extra={"fields": {"objects": deleted}})
    return deleted


def _listed(store: SampleStore, set_id: uuid.UUID) -> Iterator[str]:
    # Listed in full first: deleting while a listing runs is unspecified on the local store.
    return iter([info.key for info in store.blobs.list(report_prefix(set_id))])
