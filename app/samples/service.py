"""Keep, read, label and delete samples: the rules of the encrypted sample store.

:func:`keep_for` is the only way a sample is kept, for ``/v1/listen`` and for a gateway's
intake alike, and it runs every guard first (:data:`GUARDS`): the request took part in the
program (its recorded opt-out; its organization's contract and consent as they stand now),
succeeded, was selected by the sampler, has no sample yet, and no erasure of its organization
or project is under way. Intake runs the same guards once more before it reads the upload, so
a refused request's audio is never even parsed. Audio and transcript are encrypted
(AES-256-GCM, the organization's data key) before they reach the blob store; the catalog row
and the ledger's ``sample_kept`` are written in the caller's transaction. A crash between the
blob write and the commit leaves an orphan blob that nobody can see and ``mip store verify``
reports.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.kit.auth import Principal, Role
from app.kit.crypto import decrypt_stream, encrypt_stream
from app.kit.db import utcnow
from app.kit.errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge
from app.samples import repository
from app.samples.attributes import check_attributes
from app.samples.keys import active_data_key, key_resolver
from app.samples.runtime import SampleStore
from app.tables.ledger import LedgerEntry
from app.tables.samples import Sample
from app.tenancy import repository as tenancy_repository

log = logging.getLogger("mip.samples")

MAX_TRANSCRIPT_BYTES = 8 * 1024 * 1024
CONTENT_READERS = frozenset({Role.ADMIN, Role.DATAOPS})


class SampleRefused(Conflict):
    """The request may not have a sample: opted out, failed, not selected, or under erasure."""


class InvalidSample(BadRequest):
    """Audio or transcript that cannot be stored as given."""


@dataclass(frozen=True, slots=True)
class SampleContent:
    audio: bytes
    transcript: bytes


def blob_prefix(organization_id: uuid.UUID) -> str:
    return f"orgs/{organization_id}/"


def blob_key(organization_id: uuid.UUID, sample_id: uuid.UUID, kind: str) -> str:
    # One folder per organization, not per sample: a new folder costs a directory fsync.
    return f"orgs/{organization_id}/samples/{sample_id}.{kind}"


def crypto_context(sample: Sample, kind: str) -> dict[str, str]:
    return {"org": str(sample.organization_id), "sample": str(sample.id), "kind": kind}


# --- guards: each raises when the request may not have a sample ----------------------------


def _opted_in(session: Session, entry: LedgerEntry) -> None:
    if entry.mip_opt_out:
        raise SampleRefused(
            f"Request {entry.request_id} opted out of the Model Improvement Program "
            f"(source: {entry.opt_out_source}); nothing of it is stored."
        )


def _consent_still_given(session: Session, entry: LedgerEntry) -> None:
    # Intake may come long after the request: a contract that opted out since then, or an
    # erasure that withdrew the organization's or the project's consent, wins.
    organization = tenancy_repository.get_organization_or_raise(session, entry.organization_id)
    if organization.contract_opt_out:
        raise SampleRefused(
            f"The organization's contract now opts out of the Model Improvement Program; "
            f"request {entry.request_id} is not stored."
        )
    project = tenancy_repository.get_project(session, entry.project_id)
    if organization.consent_withdrawn_at is not None or (
        project is not None and project.consent_withdrawn_at is not None
    ):
        raise SampleRefused(
            f"Consent was withdrawn by an erasure; request {entry.request_id} is not stored."
        )


def _succeeded(session: Session, entry: LedgerEntry) -> None:
    if entry.http_status >= 400:
        raise SampleRefused(f"Request {entry.request_id} failed (status {entry.http_status}).")


def _selected(session: Session, entry: LedgerEntry) -> None:
    if not entry.sample_selected:
        raise SampleRefused(
            f"Request {entry.request_id} was not selected by the sampler "
            f"(rate {entry.sampling_rate})."
        )


def _not_kept_yet(session: Session, entry: LedgerEntry) -> None:
    if entry.sample_kept or repository.get_sample_for_request(
        session, project_id=entry.project_id, request_id=entry.request_id
    ):
        raise Conflict(f"A sample of request {entry.request_id} is already stored.")


def _no_erasure_under_way(session: Session, entry: LedgerEntry) -> None:
    if repository.erasure_in_progress(
        session, organization_id=entry.organization_id, project_id=entry.project_id
    ):
        raise SampleRefused(
            "An erasure of this organization's or project's data is in progress; "
            f"{entry.request_id} is not stored."
        )


GUARDS: tuple[Callable[[Session, LedgerEntry], None], ...] = (
    _opted_in,
    _succeeded,
    _selected,
    _consent_still_given,
    _no_erasure_under_way,
    _not_kept_yet,
)


def check_keepable(session: Session, entry: LedgerEntry) -> None:
    """Run every guard; the first that fails raises (409, or 404 for a vanished tenant)."""
    for guard in GUARDS:
        guard(session, entry)


def candidate_for(session: Session, *, project_id: uuid.UUID, request_id: str) -> LedgerEntry:
    """The ledger row of a request that may have a sample, or the 4xx that says why not."""
    entry = repository.get_ledger_entry(session, project_id=project_id, request_id=request_id)
    if entry is None:
        raise NotFound(f"No ledger record for request {request_id} in project {project_id}.")
    check_keepable(session, entry)
    return entry


def _check_transcript(transcript: bytes) -> None:
    if len(transcript) > MAX_TRANSCRIPT_BYTES:
        raise PayloadTooLarge(f"Transcript over {MAX_TRANSCRIPT_BYTES} bytes.")
    try:
        parsed = orjson.loads(transcript)
    except orjson.JSONDecodeError:
        raise InvalidSample("The transcript is not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise InvalidSample("The transcript must be a JSON object (a transcription response).")


def keep_for(
    session: Session,
    store: SampleStore,
    entry: LedgerEntry,
    *,
    audio: bytes,
    response: bytes,
    attributes: dict[str, Any] | None = None,
    audio_sha256: str | None = None,
) -> Sample:
    """Encrypt and keep one request's audio and its transcription response (JSON bytes).

    Every guard runs first (:func:`check_keepable`): nothing is decoded, encrypted or
    written for a request that may not have a sample. ``audio_sha256``: the audio's digest
    when the caller has it already (``/v1/listen`` computes it for its response), so large
    audio is not hashed twice.
    """
    # Imported here: they load scipy (about a second), which no other store command needs.
    from asr.audio import AudioError, decode
    from asr.snr import estimate_snr_db

    check_keepable(session, entry)
    project_id, request_id = entry.project_id, entry.request_id
    if len(audio) > store.max_bytes:
        raise PayloadTooLarge(f"Audio over {store.max_bytes} bytes.")
    _check_transcript(response)
    client_values = check_attributes(attributes or {})
    try:
        decoded = decode(audio, max_seconds=store.max_seconds)
    except AudioError as exc:
        raise InvalidSample(str(exc)) from None
    organization = tenancy_repository.get_organization_or_raise(session, entry.organization_id)
    key = active_data_key(session, store.keys, store.cache, entry.organization_id)
    now = utcnow()
    sample = Sample(
        id=uuid.uuid4(),
        organization_id=entry.organization_id,
        project_id=project_id,
        request_id=request_id,
        ledger_entry_id=entry.id,
        created_at=now,
        retention_until=now + dt.timedelta(days=organization.retention_days),
        legal_hold=False,
        key_version=key.version,
        audio_bytes=len(audio),
        transcript_bytes=len(response),
        audio_format=decoded.source.format,
        duration_seconds=decoded.source.duration,
        sample_rate=decoded.source.sample_rate,
        channels=decoded.source.channels,
        audio_sha256=audio_sha256 or hashlib.sha256(audio).hexdigest(),
        language=entry.language,
        model_name=entry.model_name,
    )
    sample.audio_blob_key = blob_key(sample.organization_id, sample.id, "audio")
    sample.transcript_blob_key = blob_key(sample.organization_id, sample.id, "transcript")
    for name, value in client_values.items():
        _set_attribute(sample, name, value, "client")
    snr = estimate_snr_db(decoded.samples, decoded.sample_rate)
    if snr is not None:
        _set_attribute(sample, "snr_db", round(snr, 2), "measured")
    written: list[str] = []
    try:
        stored = 0
        for kind, payload in (("audio", audio), ("transcript", response)):
            name = sample.audio_blob_key if kind == "audio" else sample.transcript_blob_key
            chunks = encrypt_stream(
                [payload],
                key=key.key,
                key_version=key.version,
                context=crypto_context(sample, kind),
            )
            stored += store.blobs.put(name, chunks)
            written.append(name)
        sample.stored_bytes = stored
        session.add(sample)
        entry.sample_kept = True
        session.flush()
    except BaseException as exc:
        for name in written:
            _delete_quietly(store, name)
        if isinstance(exc, IntegrityError):
            # Another writer kept this request between our check and our insert.
            raise Conflict(f"A sample of request {request_id} is already stored.") from None
        raise
    return sample


def _set_attribute(sample: Sample, name: str, value: str | float | None, source: str) -> None:
    setattr(sample, name, value)
    setattr(sample, f"{name}_source", None if value is None else source)


def _delete_quietly(store: SampleStore, name: str) -> None:
    try:
        store.blobs.delete(name)
    except Exception:
        # verify reports the orphan; the original error matters more to the caller.
        log.exception(
            "could not remove a blob after a failed store", extra={"fields": {"key": name}}
        )


# --- access -------------------------------------------------------------------------------


def get_visible_sample(session: Session, principal: Principal, sample_id: uuid.UUID) -> Sample:
    """The sample if ``principal`` may see it: staff, or a key of the owning organization."""
    sample = repository.get_sample(session, sample_id)
    if sample is None or (
        not principal.is_staff and sample.organization_id != principal.organization_id
    ):
        raise NotFound(f"Sample {sample_id} not found.")
    return sample


def _blob_name(sample: Sample, kind: str) -> str:
    if kind == "audio":
        return sample.audio_blob_key
    if kind == "transcript":
        return sample.transcript_blob_key
    if kind == "reference" and sample.reference_blob_key is not None:
        return sample.reference_blob_key
    raise NotFound(f"Sample {sample.id} has no {kind}.")


def decrypt_object(session: Session, store: SampleStore, sample: Sample, kind: str) -> bytes:
    """The whole plaintext, authenticated end to end before any of it is returned."""
    name = _blob_name(sample, kind)
    key_for = key_resolver(session, store.keys, store.cache, sample.organization_id)
    return b"".join(
        decrypt_stream(store.blobs.get(name), key_for=key_for, context=crypto_context(sample, kind))
    )


def read_content(
    session: Session, store: SampleStore, principal: Principal, sample_id: uuid.UUID, kind: str
) -> bytes:
    """Decrypted audio or transcript, for dataops and admin only; every read is audited."""
    if principal.role not in CONTENT_READERS:
        raise Forbidden("Only staff keys with role dataops or admin can read sample content.")
    sample = get_visible_sample(session, principal, sample_id)
    content = decrypt_object(session, store, sample, kind)
    record_event(
        session,
        actor=principal.actor,
        action=f"sample.{kind}_read",
        target_type="sample",
        target_id=str(sample.id),
        organization_id=sample.organization_id,
        details={"bytes": len(content)},
    )
    return content


def delete_sample(
    session: Session, store: SampleStore, sample: Sample, *, actor: str, reason: str
) -> None:
    """Remove the catalog row, then the blobs (a failure rolls the row back)."""
    session.delete(sample)
    session.flush()
    for name in iter_blob_names(sample):
        store.blobs.delete(name)
    record_event(
        session,
        actor=actor,
        action="sample.deleted",
        target_type="sample",
        target_id=str(sample.id),
        organization_id=sample.organization_id,
        details={"reason": reason, "request_id": sample.request_id},
    )


def label_sample(
    session: Session,
    sample: Sample,
    *,
    attributes: dict[str, Any],
    actor: str,
    legal_hold: bool | None = None,
) -> Sample:
    """Set attributes as ``labeled`` (None clears one); optionally set the legal hold.

    Both are audited: a label decides which training sets a sample balances into.
    """
    changed: dict[str, dict[str, Any]] = {}
    for name, value in check_attributes(attributes).items():
        before = getattr(sample, name)
        if before != value:
            changed[name] = {"from": before, "to": value}
        _set_attribute(sample, name, value, "labeled")
    if attributes:
        sample.labeled_at = utcnow()
        sample.labeled_by = actor
    if changed:
        record_event(
            session,
            actor=actor,
            action="sample.labeled",
            target_type="sample",
            target_id=str(sample.id),
            organization_id=sample.organization_id,
            details={"attributes": changed},
        )
    if legal_hold is not None and legal_hold != sample.legal_hold:
        sample.legal_hold = legal_hold
        record_event(
            session,
            actor=actor,
            action="sample.legal_hold_set" if legal_hold else "sample.legal_hold_released",
            target_type="sample",
            target_id=str(sample.id),
            organization_id=sample.organization_id,
        )
    session.flush()
    return sample


def iter_blob_names(sample: Sample) -> Iterator[str]:
    yield sample.audio_blob_key
    yield sample.transcript_blob_key
    if sample.reference_blob_key is not None:
        yield sample.reference_blob_key


MAX_REFERENCE_CHARS = 20_000


def set_reference(
    session: Session, store: SampleStore, sample: Sample, *, text: str, actor: str
) -> Sample:
    """Keep a labeler's corrected transcript, encrypted like the sample's other objects.

    Training prefers it to the served transcript (which is the model's own output). Setting
    it again replaces it; the text itself is never logged or audited, only that it changed.
    """
    cleaned = " ".join(text.split())
    if not cleaned:
        raise InvalidSample("The reference transcript is empty.")
    if len(cleaned) > MAX_REFERENCE_CHARS:
        raise InvalidSample(f"The reference transcript is over {MAX_REFERENCE_CHARS} characters.")
    key = active_data_key(session, store.keys, store.cache, sample.organization_id)
    name = blob_key(sample.organization_id, sample.id, "reference")
    chunks = encrypt_stream(
        [cleaned.encode("utf-8")],
        key=key.key,
        key_version=key.version,
        context=crypto_context(sample, "reference"),
    )
    replaced = sample.reference_blob_key is not None
    previous = (store.blobs.size(name) or 0) if replaced else 0
    written = store.blobs.put(name, chunks)
    sample.reference_blob_key = name
    sample.reference_at = utcnow()
    sample.reference_by = actor
    sample.stored_bytes = sample.stored_bytes - previous + written
    record_event(
        session,
        actor=actor,
        action="sample.reference_set",
        target_type="sample",
        target_id=str(sample.id),
        organization_id=sample.organization_id,
        details={"characters": len(cleaned), "replaced": replaced},
    )
    session.flush()
    return sample
