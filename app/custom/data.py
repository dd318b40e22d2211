"""A custom model's training data: (audio, transcript) pairs, validated, sealed, removable.

Each upload is checked by :mod:`asr.pairs` (decodes, length, duplicates within the model,
normalisable text, speaking rate, and the base model's CTC loss per character to flag a likely
wrong transcript) and recorded with its verdict. A pair whose audio decodes is sealed under the
model's data key (AES-256-GCM segments, :mod:`app.kit.crypto`), the audio and the transcript
each bound to the model, the file and its kind; nothing is written in the clear, not even a
temporary file. The data is the customer's own: it never enters the MIP sample catalog, is
never sampled and never trains the base model.

    record = upload_pair(session, store, model, name="call-01.wav", audio=wav,
                         transcript="please call stella", speaker=None, scorer=scorer,
                         actor=principal.actor)
    record.status, record.reasons   # "rejected", [{"code": "transcript_mismatch", ...}]
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.kit.crypto import decrypt_stream, encrypt_stream
from app.kit.db import utcnow
from app.kit.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from app.kit.text import check_storable
from app.samples.keys import active_data_key, custom_model_key, key_resolver
from app.samples.runtime import SampleStore
from app.samples.service import blob_prefix
from app.tables.custom import CustomDataFile, CustomModel
from asr.pairs import PairReport, TranscriptScorer, check_pair
from curation.archives import (
    ArchiveError,
    ArchiveLimits,
    ArchiveTooLarge,
    open_training_archive,
)

# Statuses in which the data set may change, unless it is confirmed (frozen: reopen it first).
OPEN_FOR_DATA = frozenset({"collecting", "validating", "failed", "published", "testing"})
MAX_TRANSCRIPT_BYTES = 64 * 1024
MAX_NAME = 255


class DataNotAccepted(Conflict):
    pass


class ArchiveRefusedTooLarge(PayloadTooLarge):
    pass


class DataFileNotFound(NotFound):
    def __init__(self, file_id: object) -> None:
        super().__init__(f"Training file {file_id} not found.")


def _context(
    model: CustomModel, file_id: uuid.UUID, kind: str, organization_id: uuid.UUID | None = None
) -> dict[str, str]:
    context = {"custom_model": str(model.id), "file": str(file_id), "kind": kind}
    if organization_id is not None:  # a contribution: bound to its organization too
        context["organization"] = str(organization_id)
    return context


def _blob_key(
    model: CustomModel, file_id: uuid.UUID, kind: str, organization_id: uuid.UUID | None = None
) -> str:
    if organization_id is not None:
        # Under the organization's prefix: its erasure deletes the prefix, contributions too.
        return f"{blob_prefix(organization_id)}custom/{model.id}/{file_id}.{kind}"
    return f"custom/{model.reseller_id}/{model.id}/{file_id}.{kind}"


def _sealing_key(
    session: Session, store: SampleStore, model: CustomModel, organization_id: uuid.UUID | None
) -> tuple[bytes, int]:
    """(key, version) a new file is sealed with: the model's own key, or for an
    organization's contribution that organization's current data key."""
    if organization_id is None:
        return custom_model_key(model, store.keys, store.cache), 1
    active = active_data_key(session, store.keys, store.cache, organization_id)
    return active.key, active.version


def _opening_key(
    session: Session, store: SampleStore, model: CustomModel, record: CustomDataFile
) -> Callable[[int], bytes]:
    if record.organization_id is None:
        key = custom_model_key(model, store.keys, store.cache)
        return lambda _version: key
    return key_resolver(session, store.keys, store.cache, record.organization_id)


def check_open(model: CustomModel) -> None:
    if model.data_hash is not None:
        raise DataNotAccepted(
            f"The data set of {model.name} is confirmed and frozen; reopen it "
            f"(POST /v1/governance/custom-models/{model.id}/data/reopen) to change it."
        )
    if model.status not in OPEN_FOR_DATA:
        raise DataNotAccepted(
            f"Custom model {model.name} is {model.status}: it takes no training data now."
        )


def decode_transcript(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    if len(raw) > MAX_TRANSCRIPT_BYTES:
        raise BadRequest(f"A transcript is at most {MAX_TRANSCRIPT_BYTES} bytes.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The transcript is not UTF-8 text.") from None


def accepted_hashes(session: Session, model_id: uuid.UUID) -> frozenset[str]:
    stmt = select(CustomDataFile.audio_sha256).where(
        CustomDataFile.model_id == model_id,
        CustomDataFile.status == "accepted",
        CustomDataFile.audio_sha256.is_not(None),
    )
    return frozenset(digest for digest in session.scalars(stmt) if digest)


def upload_pair(
    session: Session,
    store: SampleStore,
    model: CustomModel,
    *,
    name: str,
    audio: bytes,
    transcript: str | None,
    speaker: str | None,
    scorer: TranscriptScorer | None,
    actor: str,
    organization_id: uuid.UUID | None = None,
) -> CustomDataFile:
    """Validate one pair, seal it if its audio decodes, record the verdict (audited).

    ``organization_id``: an organization the model is shared with contributes the pair; it is
    sealed under that organization's data key and goes with the organization's erasure.
    """
    check_open(model)
    # One writer of the model's key and of its duplicate set at a time.
    session.refresh(model, with_for_update=True)
    record = _add_pair(
        session,
        store,
        model,
        name=name,
        audio=audio,
        transcript=transcript,
        speaker=speaker,
        scorer=scorer,
        actor=actor,
        seen=set(accepted_hashes(session, model.id)),
        organization_id=organization_id,
    )
    try:
        session.flush()
    except BaseException:
        _delete_objects(store, record)
        raise
    record_event(
        session,
        actor=actor,
        action="custom_data.uploaded",
        target_type="custom_model",
        target_id=str(model.id),
        details={
            "file_id": str(record.id),
            "name": name,
            "status": record.status,
            "reasons": [reason["code"] for reason in record.reasons],
            "seconds": record.duration_seconds,
            "organization_id": str(organization_id) if organization_id else None,
        },
    )
    return record


@dataclass
class ArchiveUpload:
    files: list[CustomDataFile]
    problems: list[dict[str, Any]]
    format: str
    mode: str


def upload_archive(
    session: Session,
    store: SampleStore,
    model: CustomModel,
    archive: bytes,
    *,
    scorer: TranscriptScorer | None,
    actor: str,
    limits: ArchiveLimits | None = None,
) -> ArchiveUpload:
    """Every pair of a zip, tar or tar.gz, each checked and sealed as :func:`upload_pair`
    does; the entries that cannot be used are reported, the rest accepted. An archive that
    cannot be read safely is refused whole (400 or 413) before anything is written, and a
    failure half-way deletes the objects written so far (the records roll back with the
    transaction). One audit entry for the archive."""
    check_open(model)
    session.refresh(model, with_for_update=True)
    seen = set(accepted_hashes(session, model.id))
    records: list[CustomDataFile] = []
    try:
        with open_training_archive(io.BytesIO(archive), limits=limits or ArchiveLimits()) as opened:
            problems: list[dict[str, Any]] = [
                {"name": p.name, "code": p.code, "message": p.message, "line": p.line}
                for p in opened.problems
            ]
            for pair in opened.pairs():
                try:
                    records.append(
                        _add_pair(
                            session,
                            store,
                            model,
                            name=pair.name[-MAX_NAME:],
                            audio=pair.audio,
                            transcript=pair.transcript,
                            speaker=(pair.speaker or None) and pair.speaker[:128],
                            scorer=scorer,
                            actor=actor,
                            seen=seen,
                        )
                    )
                except BadRequest as refused:  # text PostgreSQL cannot store (NUL), say
                    problems.append(
                        {
                            "name": pair.name,
                            "code": "unstorable_text",
                            "message": refused.message,
                            "line": None,
                        }
                    )
            fmt, mode = opened.format, opened.mode
        session.flush()
    except ArchiveTooLarge as error:
        _delete_all(store, records)
        raise ArchiveRefusedTooLarge(f"The archive is refused: {error}") from None
    except ArchiveError as error:
        _delete_all(store, records)
        raise BadRequest(f"The archive is refused ({error.code}): {error}") from None
    except BaseException:
        _delete_all(store, records)
        raise
    accepted = sum(1 for r in records if r.status == "accepted")
    record_event(
        session,
        actor=actor,
        action="custom_data.archive_uploaded",
        target_type="custom_model",
        target_id=str(model.id),
        details={
            "format": fmt,
            "mode": mode,
            "files": len(records),
            "accepted": accepted,
            "rejected": len(records) - accepted,
            "problems": len(problems),
            "seconds": round(sum(r.duration_seconds or 0.0 for r in records), 3),
        },
    )
    return ArchiveUpload(records, problems, fmt, mode)


def _delete_all(store: SampleStore, records: list[CustomDataFile]) -> None:
    for record in records:
        _delete_objects(store, record)


def _add_pair(
    session: Session,
    store: SampleStore,
    model: CustomModel,
    *,
    name: str,
    audio: bytes,
    transcript: str | None,
    speaker: str | None,
    scorer: TranscriptScorer | None,
    actor: str,
    seen: set[str],
    organization_id: uuid.UUID | None = None,
) -> CustomDataFile:
    """Check one pair against ``seen`` (accepted audio hashes, updated), seal it, add it."""
    if not name or len(name) > MAX_NAME:
        raise BadRequest(f"A file name is 1 to {MAX_NAME} characters.")
    if speaker is not None and not 0 < len(speaker) <= 128:
        raise BadRequest("A speaker id is 1 to 128 characters.")
    check_storable("name", name)
    if speaker is not None:
        check_storable("speaker", speaker)
    if transcript is not None:
        check_storable("transcript", transcript)
    report = check_pair(audio, transcript, scorer=scorer, seen_hashes=frozenset(seen))
    if report.accepted and report.audio_sha256 is not None:
        seen.add(report.audio_sha256)
    file_id = uuid.uuid4()
    record = CustomDataFile(
        id=file_id,
        model_id=model.id,
        name=name,
        speaker=speaker,
        organization_id=organization_id,
        uploaded_by=actor,
        audio_bytes=len(audio),
        **_measures(report),
    )
    if report.audio_sha256 is not None:  # the audio decoded: it is kept, sealed
        key, version = _sealing_key(session, store, model, organization_id)
        for kind, content in (("audio", audio), ("transcript", (transcript or "").encode())):
            blob_key = _blob_key(model, file_id, kind, organization_id)
            context = _context(model, file_id, kind, organization_id)
            store.blobs.put(
                blob_key, encrypt_stream([content], key=key, key_version=version, context=context)
            )
            if kind == "audio":
                record.audio_blob_key = blob_key
            else:
                record.transcript_blob_key = blob_key
    session.add(record)
    model.updated_at = utcnow()
    return record


def _measures(report: PairReport) -> dict[str, Any]:
    return {
        "status": "accepted" if report.accepted else "rejected",
        "reasons": [{"code": r.code.value, "message": r.message} for r in report.reasons],
        "audio_format": report.format,
        "duration_seconds": report.duration,
        "sample_rate": report.sample_rate,
        "channels": report.channels,
        "snr_db": report.snr_db,
        "chars_per_second": report.chars_per_second,
        "loss_per_char": report.ctc_loss_per_char,
        "audio_sha256": report.audio_sha256,
    }


def list_files(
    session: Session, model: CustomModel, *, status: str | None = None
) -> Sequence[CustomDataFile]:
    stmt = select(CustomDataFile).where(CustomDataFile.model_id == model.id)
    if status is not None:
        stmt = stmt.where(CustomDataFile.status == status)
    return session.scalars(stmt.order_by(CustomDataFile.created_at, CustomDataFile.id)).all()


def get_file(session: Session, model: CustomModel, file_id: uuid.UUID) -> CustomDataFile:
    record = session.get(CustomDataFile, file_id)
    if record is None or record.model_id != model.id:
        raise DataFileNotFound(file_id)
    return record


def remove_file(
    session: Session, store: SampleStore, model: CustomModel, record: CustomDataFile, *, actor: str
) -> CustomDataFile:
    """Delete the sealed objects; the record stays, ``removed`` (the report shows it went)."""
    check_open(model)
    if record.status == "removed":
        raise DataNotAccepted(f"Training file {record.id} is already removed.")
    _delete_objects(store, record)
    before = record.status
    record.status = "removed"
    record.removed_at = model.updated_at = utcnow()
    record.audio_blob_key = record.transcript_blob_key = None
    session.flush()
    record_event(
        session,
        actor=actor,
        action="custom_data.removed",
        target_type="custom_model",
        target_id=str(model.id),
        details={"file_id": str(record.id), "name": record.name, "before": before},
    )
    return record


def _open(
    session: Session, store: SampleStore, model: CustomModel, record: CustomDataFile, kind: str
) -> bytes:
    blob_key = record.audio_blob_key if kind == "audio" else record.transcript_blob_key
    if blob_key is None:
        raise DataFileNotFound(record.id)
    return b"".join(
        decrypt_stream(
            store.blobs.get(blob_key),
            key_for=_opening_key(session, store, model, record),
            context=_context(model, record.id, kind, record.organization_id),
        )
    )


def read_transcript(
    session: Session, store: SampleStore, model: CustomModel, record: CustomDataFile
) -> str:
    return _open(session, store, model, record, "transcript").decode()


def read_audio(
    session: Session, store: SampleStore, model: CustomModel, record: CustomDataFile
) -> bytes:
    """The file's audio as uploaded (for a training job's scratch space only)."""
    return _open(session, store, model, record, "audio")


def data_report(session: Session, model: CustomModel) -> dict[str, Any]:
    """The model's whole data set: hours accepted and rejected, by reason (removed files are
    left out)."""
    files = [f for f in list_files(session, model) if f.status != "removed"]
    seconds = {
        "accepted": sum(f.duration_seconds or 0.0 for f in files if f.status == "accepted"),
        "rejected": sum(f.duration_seconds or 0.0 for f in files if f.status == "rejected"),
    }
    by_reason: dict[str, dict[str, float]] = {}
    for record in files:
        for reason in record.reasons:
            entry = by_reason.setdefault(reason["code"], {"files": 0, "hours": 0.0})
            entry["files"] += 1
            entry["hours"] += (record.duration_seconds or 0.0) / 3600
    return {
        "files": len(files),
        "accepted": {
            "files": sum(1 for f in files if f.status == "accepted"),
            "hours": round(seconds["accepted"] / 3600, 6),
        },
        "rejected": {
            "files": sum(1 for f in files if f.status == "rejected"),
            "hours": round(seconds["rejected"] / 3600, 6),
        },
        "by_reason": {
            code: {"files": int(v["files"]), "hours": round(v["hours"], 6)}
            for code, v in sorted(by_reason.items())
        },
    }


def erase_contributions(session: Session, organization_id: uuid.UUID, *, actor: str) -> int:
    """An organization's erasure: its contributed pairs are ``removed`` (their objects went
    with its blob prefix, their key with its data keys), and a confirmed data set that held
    one is reopened, so no new version can be trained on what was erased. Returns how many."""
    records = session.scalars(
        select(CustomDataFile).where(
            CustomDataFile.organization_id == organization_id,
            CustomDataFile.status != "removed",
        )
    ).all()
    now = utcnow()
    models: set[uuid.UUID] = set()
    for record in records:
        if record.status == "accepted":
            models.add(record.model_id)
        record.status = "removed"
        record.removed_at = now
        record.audio_blob_key = record.transcript_blob_key = None
    session.flush()
    for model_id in sorted(models, key=str):
        model = session.get(CustomModel, model_id)
        if model is None or model.data_hash is None:
            continue
        previous = model.data_hash
        clear_confirmation(model)
        record_event(
            session,
            actor=actor,
            action="custom_data.reopened",
            target_type="custom_model",
            target_id=str(model.id),
            details={
                "previous_hash": previous,
                "reason": "erasure",
                "organization_id": str(organization_id),
            },
        )
    session.flush()
    return len(records)


def clear_confirmation(model: CustomModel) -> None:
    """Unfreeze the model's data set: no hash, and ``collecting`` if it was ready to train."""
    model.data_hash = model.data_confirmed_at = model.data_confirmed_by = None
    model.data_files = None
    model.data_seconds = None
    if model.status == "ready_to_train":
        model.status = "collecting"
    model.updated_at = utcnow()


def _delete_objects(store: SampleStore, record: CustomDataFile) -> None:
    for key in (record.audio_blob_key, record.transcript_blob_key):
        if key is not None:
            store.blobs.delete(key)


__all__ = [
    "DataFileNotFound",
    "DataNotAccepted",
    "check_open",
    "data_report",
    "decode_transcript",
    "erase_contributions",
    "get_file",
    "list_files",
    "read_audio",
    "read_transcript",
    "remove_file",
    "upload_archive",
    "upload_pair",
]
