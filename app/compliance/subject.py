"""A data subject's access export: everything the service holds for an organization or one
of its projects, as one zip archive of CSV and JSON files and a manifest of their hashes::

    manifest = export_subject(session, SubjectScope("project", project_id), Path("p.zip"),
                              actor="cli:ana@host")
    manifest["files"]["ledger.csv"]    # {"rows": 1204311, "bytes": …, "sha256": "…"}

What the archive holds, and what it never holds:

- ``ledger.csv``: every column of the scope's ledger rows (money as integer micro-dollars),
  streamed from the database into the archive batch by batch.
- ``samples.csv``: the sample catalog's metadata (:data:`SAMPLE_COLUMNS`). Never the audio or
  the transcripts, not even where they are kept (blob keys) or the audio's fingerprint.
- ``training_sets.json``: the sets holding any of the scope's samples, with those sample ids
  and their split, and whether the set is tainted. Never the other tenants' samples a set holds,
  its build parameters or its validation report (they name other samples).
- ``models.json``: the model versions trained on those sets, tainted or not.
- ``organization.json`` or ``project.json``: the tenant records, their keys (ids, comments,
  scopes, dates; never a secret, hash or prefix) and the scope's erasure requests.
- ``audit.json``: the organization's audit entries; for a project, the entries that concern it
  or the organization as a whole (:class:`_ProjectEntries`).
- ``manifest.json``: the scope, when, by whom, and each other file's rows, size and SHA-256.

The archive is written to a temporary file renamed over ``output`` (``durable``), so a reader
sees the old file or the whole new one, and a failed export leaves nothing behind. The export
is itself audited (``compliance.subject_exported``: the scope and the counts only), in the
caller's transaction and before the rename: an export whose entry could not be recorded
leaves no file.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import orjson
from sqlalchemy.orm import Session

from app.audit import repository as audit_repository
from app.audit.service import record_event
from app.datasets import repository as datasets_repository
from app.erasure import repository as erasure_repository
from app.kit.db import utcnow
from app.ledger import repository as ledger_repository
from app.samples import repository as samples_repository
from app.tables.audit import AuditEntry
from app.tables.erasure import ErasureRequest
from app.tables.samples import ATTRIBUTES
from app.tables.tenancy import ApiKey, Organization, Project
from app.tables.training import ModelVersion
from app.tenancy import repository as tenancy_repository
from app.training import repository as training_repository
from durable import atomic_path

EXPORT_ACTION = "compliance.subject_exported"
EXPORT_FORMAT = "mip.subject_export/1"
LEDGER_COLUMNS = ledger_repository.LEDGER_COLUMNS
# The catalog's metadata. Left out on purpose: the blob keys (where the encrypted audio and
# transcripts are), the audio's SHA-256 (a fingerprint of the recording), the data key version
# and the stored size (storage internals).
SAMPLE_COLUMNS: tuple[str, ...] = (
    "id",
    "organization_id",
    "project_id",
    "request_id",
    "ledger_entry_id",
    "created_at",
    "retention_until",
    "legal_hold",
    "audio_format",
    "duration_seconds",
    "sample_rate",
    "channels",
    "language",
    "model_name",
    "audio_bytes",
    "transcript_bytes",
    *(column for attribute in ATTRIBUTES for column in (attribute, f"{attribute}_source")),
    "labeled_at",
    "labeled_by",
    "reference_at",
    "reference_by",
)
# Rows per database round trip and per chunk written into the archive.
DEFAULT_BATCH = 5000
_AUDIT_PAGE = 1000

Progress = Callable[[int, int], None]  # (rows written, rows in all) of ledger.csv + samples.csv


@dataclass(frozen=True, slots=True)
class SubjectScope:
    """What to export: an organization, or one project of an organization."""

    kind: Literal["organization", "project"]
    id: uuid.UUID


@dataclass(slots=True)
class _Scope:
    organization: Organization
    project: Project | None

    @property
    def project_id(self) -> uuid.UUID | None:
        return self.project.id if self.project is not None else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": "organization" if self.project is None else "project",
            "organization_id": str(self.organization.id),
            "project_id": str(self.project.id) if self.project is not None else None,
        }


def _resolve_scope(session: Session, scope: SubjectScope) -> _Scope:
    """The tenant records of ``scope``; an unknown id is ``NotFound``."""
    if scope.kind == "project":
        project = tenancy_repository.get_project_or_raise(session, scope.id)
        organization = tenancy_repository.get_organization_or_raise(
            session, project.organization_id
        )
        return _Scope(organization, project)
    return _Scope(tenancy_repository.get_organization_or_raise(session, scope.id), None)


def export_subject(
    session: Session,
    scope: SubjectScope,
    output: Path,
    *,
    actor: str,
    on_progress: Progress | None = None,
    batch: int = DEFAULT_BATCH,
) -> dict[str, Any]:
    """Write the archive of everything held for ``scope`` to ``output``; returns its manifest.

    Raises ``NotFound`` for an unknown organization or project before anything is written.
    """
    resolved = _resolve_scope(session, scope)
    generated_at = utcnow()
    scope_fields = resolved.as_dict()
    files: dict[str, dict[str, Any]] = {}
    with atomic_path(output, mode=0o600) as partial:  # personal data: the caller's eyes only
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            writer = _ArchiveWriter(archive, files, generated_at)
            _write_contents(session, resolved, writer, on_progress=on_progress, batch=batch)
            manifest: dict[str, Any] = {
                "format": EXPORT_FORMAT,
                "scope": scope_fields,
                "generated_at": generated_at.isoformat(),
                "actor": actor,
                "files": dict(files),
            }
            with writer.member("manifest.json") as member:
                member.write(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
        record_event(
            session,
            actor=actor,
            action=EXPORT_ACTION,
            target_type=scope.kind,
            target_id=str(scope.id),
            organization_id=resolved.organization.id,
            details={
                "scope": scope_fields,
                "counts": {name: entry["rows"] for name, entry in files.items()},
            },
        )
    return manifest


def _write_contents(
    session: Session,
    scope: _Scope,
    writer: _ArchiveWriter,
    *,
    on_progress: Progress | None,
    batch: int,
) -> None:
    _write_tables(session, scope, writer, on_progress=on_progress, batch=batch)
    org_id = scope.organization.id
    project_samples = (
        None
        if scope.project is None
        else datasets_repository.project_sample_ids(
            session, organization_id=org_id, project_id=scope.project.id
        )
    )
    sets = _training_sets(session, org_id, project_samples)
    writer.write_json_array("training_sets.json", sets)
    models = training_repository.versions_trained_on(session, [s["id"] for s in sets])
    writer.write_json_array("models.json", [_model_record(m) for m in models])
    erasures = _erasures(session, scope)
    keep: Callable[[AuditEntry], bool] = _everything
    if scope.project is None:
        document = _organization_document(session, scope, erasures)
        writer.write_json_object("organization.json", document)
    else:
        keys = tenancy_repository.list_project_keys(
            session, project_id=scope.project.id, include_revoked=True
        )
        writer.write_json_object("project.json", _project_document(scope, keys, erasures))
        keep = _ProjectEntries.of(scope.project, keys, project_samples or [], erasures).keeps
    writer.write_json_array("audit.json", _audit_records(session, org_id, keep))


def _write_tables(
    session: Session,
    scope: _Scope,
    writer: _ArchiveWriter,
    *,
    on_progress: Progress | None,
    batch: int,
) -> None:
    """ledger.csv and samples.csv, streamed batch by batch (the long part: it reports)."""
    org_id, project_id = scope.organization.id, scope.project_id
    total = ledger_repository.count_in_scope(
        session, organization_id=org_id, project_id=project_id
    ) + samples_repository.count_in_scope(session, organization_id=org_id, project_id=project_id)
    tally = _Tally(total, on_progress)
    tally.report()
    ledger = ledger_repository.row_batches_in_scope(
        session, organization_id=org_id, project_id=project_id, batch=batch
    )
    writer.write_csv("ledger.csv", LEDGER_COLUMNS, ledger, tally)
    samples = samples_repository.batches_in_scope(
        session, organization_id=org_id, project_id=project_id, batch=batch
    )
    writer.write_csv(
        "samples.csv",
        SAMPLE_COLUMNS,
        ([[getattr(s, c) for c in SAMPLE_COLUMNS] for s in chunk] for chunk in samples),
        tally,
    )


# --- the archive ---


@dataclass(slots=True)
class _Tally:
    """Rows written so far, reported to the caller's progress callback."""

    total: int
    on_progress: Progress | None
    done: int = 0

    def add(self, rows: int) -> None:
        self.done += rows
        self.report()

    def report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)


@dataclass(slots=True)
class _Member:
    """One file of the archive, hashed and measured as it is written."""

    stream: IO[bytes]
    rows: int = 0
    size: int = 0
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)

    def write(self, data: bytes) -> None:
        self.stream.write(data)
        self.digest.update(data)
        self.size += len(data)


@dataclass(slots=True)
class _ArchiveWriter:
    archive: zipfile.ZipFile
    files: dict[str, dict[str, Any]]
    generated_at: dt.datetime

    @contextmanager
    def member(self, name: str) -> Iterator[_Member]:
        info = zipfile.ZipInfo(name, date_time=self.generated_at.timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o600 << 16
        # force_zip64: the size is not known before the file is written (a ledger can pass 4 GiB).
        with self.archive.open(info, "w", force_zip64=True) as stream:
            member = _Member(stream)
            yield member
        if name != "manifest.json":
            self.files[name] = {
                "rows": member.rows,
                "bytes": member.size,
                "sha256": member.digest.hexdigest(),
            }

    def write_csv(
        self,
        name: str,
        header: Sequence[str],
        batches: Iterable[Sequence[Sequence[Any]]],
        tally: _Tally,
    ) -> None:
        """A header line, then each batch of rows encoded and written as one chunk."""
        buffer = io.StringIO()
        lines = csv.writer(buffer)
        with self.member(name) as member:
            lines.writerow(header)
            for rows in batches:
                lines.writerows([_cell(value) for value in row] for row in rows)
                member.write(buffer.getvalue().encode())
                buffer.seek(0)
                buffer.truncate()
                member.rows += len(rows)
                tally.add(len(rows))
            member.write(buffer.getvalue().encode())  # the header of an empty file

    def write_json_array(self, name: str, records: Iterable[dict[str, Any]]) -> None:
        """A JSON array written record by record (the audit log of an organization is long)."""
        with self.member(name) as member:
            member.write(b"[")
            for record in records:
                member.write(b",\n" if member.rows else b"\n")
                member.write(orjson.dumps(record))
                member.rows += 1
            member.write(b"\n]\n" if member.rows else b"]\n")

    def write_json_object(self, name: str, document: dict[str, Any]) -> None:
        with self.member(name) as member:
            member.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
            member.rows = 1


def _cell(value: Any) -> str | int | float:
    """A CSV cell: ids and times as text, booleans as true/false, lists as JSON, NULL empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


# --- the records ---


def _training_sets(
    session: Session, organization_id: uuid.UUID, project_samples: Sequence[uuid.UUID] | None
) -> list[dict[str, Any]]:
    """Each set holding a sample of the scope, with those samples only. For an organization,
    membership is by the organization the set recorded, so samples erased since are still
    listed; a project's are found through the catalog, so its erased samples are not."""
    if project_samples is None:
        held = None
        set_ids = datasets_repository.sets_holding_organization(session, organization_id)
    else:
        held = frozenset(project_samples)
        set_ids = datasets_repository.sets_holding_samples(session, project_samples)
    records = []
    for set_id in set_ids:
        training_set = datasets_repository.get_training_set(session, set_id)
        if training_set is None:  # removed since the lookup
            continue
        members = [
            {"sample_id": str(sample), "split": split}
            for sample, org, split in datasets_repository.members(session, set_id)
            if (org == organization_id if held is None else sample in held)
        ]
        records.append(
            {
                "id": training_set.id,
                "name": training_set.name,
                "version": training_set.version,
                "status": training_set.status,
                "tainted": training_set.status == "tainted",
                "tainted_at": training_set.tainted_at,
                "taint_reason": training_set.taint_reason,
                "created_at": training_set.created_at,
                "samples": members,
            }
        )
    return sorted(records, key=lambda r: (r["name"], r["version"]))


def _model_record(version: ModelVersion) -> dict[str, Any]:
    return {
        "id": version.id,
        "uuid": version.uuid,
        "name": version.name,
        "version": version.version,
        "status": version.status,
        "promoted": version.status == "promoted",
        "promoted_at": version.promoted_at,
        "training_set_id": version.training_set_id,
        "base_model": version.base_model,
        "created_at": version.created_at,
        "tainted": version.tainted_at is not None,
        "tainted_at": version.tainted_at,
        "taint_reason": version.taint_reason,
    }


def _organization_terms(org: Organization) -> dict[str, Any]:
    return {
        "id": org.id,
        "name": org.name,
        "plan": org.plan,
        "contract_rates_micros_per_minute": org.contract_rates,
        "contract_opt_out": org.contract_opt_out,
        "consent_withdrawn_at": org.consent_withdrawn_at,
        "retention_days": org.retention_days,
        "created_at": org.created_at,
    }


def _key_record(key: ApiKey) -> dict[str, Any]:
    # Never key_hash, nor key_prefix: the first characters of the secret.
    return {
        "id": key.id,
        "comment": key.comment,
        "scopes": key.scopes,
        "tags": key.tags,
        "created_at": key.created_at,
        "created_by": key.created_by,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
    }


def _project_record(project: Project, keys: Sequence[ApiKey]) -> dict[str, Any]:
    return {
        "id": project.id,
        "organization_id": project.organization_id,
        "name": project.name,
        "created_at": project.created_at,
        "consent_withdrawn_at": project.consent_withdrawn_at,
        "keys": [_key_record(k) for k in keys],
    }


def _erasure_record(erasure: ErasureRequest) -> dict[str, Any]:
    return {
        "id": erasure.id,
        "scope": erasure.scope,
        "organization_id": erasure.organization_id,
        "project_id": erasure.project_id,
        "status": erasure.status,
        "stores": erasure.stores,
        "counts": erasure.counts,
        "reason": erasure.reason,
        "requested_by": erasure.requested_by,
        "created_at": erasure.created_at,
        "updated_at": erasure.updated_at,
        "finished_at": erasure.finished_at,
    }


def _erasures(session: Session, scope: _Scope) -> list[ErasureRequest]:
    """The scope's erasure requests: for a project, its own and the organization's (which
    erased the project's samples too)."""
    rows = erasure_repository.list_erasures(session, organization_id=scope.organization.id)
    if scope.project is None:
        return list(rows)
    return [r for r in rows if r.scope == "organization" or r.project_id == scope.project.id]


def _organization_document(
    session: Session, scope: _Scope, erasures: Sequence[ErasureRequest]
) -> dict[str, Any]:
    org = scope.organization
    projects = tenancy_repository.list_projects(session, organization_id=org.id)
    return {
        **_organization_terms(org),
        "reseller_id": org.reseller_id,
        "prepaid_credit_micros": org.prepaid_credit_micros,
        "projects": [
            _project_record(
                p,
                tenancy_repository.list_project_keys(
                    session, project_id=p.id, include_revoked=True
                ),
            )
            for p in projects
        ],
        "erasure_requests": [_erasure_record(e) for e in erasures],
    }


def _project_document(
    scope: _Scope, keys: Sequence[ApiKey], erasures: Sequence[ErasureRequest]
) -> dict[str, Any]:
    if scope.project is None:
        raise ValueError("a project document needs a project scope")
    return {
        **_project_record(scope.project, keys),
        # The terms the project's requests were priced and opted in or out under.
        "organization": _organization_terms(scope.organization),
        "erasure_requests": [_erasure_record(e) for e in erasures],
    }


# --- the audit log ---


def _everything(_entry: AuditEntry) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class _ProjectEntries:
    """Which of the organization's entries a project's export holds: those about the project,
    its keys, its samples and the erasures that covered it, and those about the organization
    as a whole; never one that names another project (or its key, sample or erasure). An
    entry about a sample no longer in the catalog cannot be placed, and is left out."""

    project_id: str
    targets: dict[str, frozenset[str]]

    @classmethod
    def of(
        cls,
        project: Project,
        keys: Sequence[ApiKey],
        samples: Sequence[uuid.UUID],
        erasures: Sequence[ErasureRequest],
    ) -> _ProjectEntries:
        return cls(
            str(project.id),
            {
                "project": frozenset({str(project.id)}),
                "api_key": frozenset(str(k.id) for k in keys),
                "sample": frozenset(str(s) for s in samples),
                "erasure_request": frozenset(str(e.id) for e in erasures),
            },
        )

    def keeps(self, entry: AuditEntry) -> bool:
        owned = self.targets.get(entry.target_type)
        if owned is not None:
            return entry.target_id in owned
        named_project = entry.details.get("project_id")
        named_erasure = entry.details.get("erasure_id")
        return named_project in (None, self.project_id) and (
            named_erasure is None or named_erasure in self.targets["erasure_request"]
        )


def _audit_records(
    session: Session, organization_id: uuid.UUID, keep: Callable[[AuditEntry], bool]
) -> Iterator[dict[str, Any]]:
    after = 0
    while True:
        page = audit_repository.list_entries(
            session, organization_id=organization_id, after_seq=after, limit=_AUDIT_PAGE
        )
        for entry in page:
            if keep(entry):
                yield {
                    "seq": entry.seq,
                    "created_at": entry.created_at,
                    "actor": entry.actor,
                    "action": entry.action,
                    "target_type": entry.target_type,
                    "target_id": entry.target_id,
                    "organization_id": entry.organization_id,
                    "details": entry.details,
                    "entry_hash": entry.entry_hash,
                }
        if len(page) < _AUDIT_PAGE:
            return
        after = page[-1].seq


__all__ = [
    "EXPORT_ACTION",
    "EXPORT_FORMAT",
    "LEDGER_COLUMNS",
    "SAMPLE_COLUMNS",
    "SubjectScope",
    "export_subject",
]
