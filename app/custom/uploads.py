"""Resumable uploads of training archives: the tus 1.0 protocol's core, creation, termination
and checksum (sha1, sha256) extensions, stored sealed.

A client creates an upload with its length (``POST``), then sends the bytes in PATCHes at the
offset the server holds (``HEAD`` tells it after a cut connection). Each PATCH is all or
nothing: its bytes are sealed under the model's data key as one object and the offset moves
only once the object is written, so a connection cut half-way leaves the offset where it was
and the client sends that chunk again. When the last byte arrives the parts are decrypted in
order and read as an archive upload is (:func:`app.custom.data.upload_archive`); the outcome is
kept on the upload (``GET``) and the parts are deleted.

    upload = create_upload(session, model, length=len(archive), metadata={}, actor=actor)
    append(session, store, model, upload, offset=0, chunk=archive, checksum=None, ...)
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.audit.service import record_event
from app.custom import data, repository
from app.engine.registry import ModelRegistry, open_model_registry
from app.kit.crypto import decrypt_stream, encrypt_stream
from app.kit.db import session_scope, utcnow
from app.kit.errors import BadRequest, Conflict, MIPError, NotFound, PayloadTooLarge
from app.kit.settings import Settings
from app.samples.keys import custom_model_key
from app.samples.runtime import SampleStore
from app.tables.custom import CustomModel, CustomUpload
from asr.pairs import TranscriptScorer

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,checksum"
PATCH_MEDIA_TYPE = "application/offset+octet-stream"
CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
MAX_METADATA = 4096


class UploadNotFound(NotFound):
    def __init__(self, upload_id: object) -> None:
        super().__init__(f"Upload {upload_id} not found.")


class OffsetMismatch(Conflict):
    """A PATCH at another offset than the one the server holds (tus: 409)."""


class ChecksumMismatch(MIPError):
    """The chunk does not match its Upload-Checksum (tus checksum extension: 460)."""

    status_code = 460
    err_code = "CHECKSUM_MISMATCH"


class UploadGone(Conflict):
    pass


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs (the value optional)."""
    if not header:
        return {}
    if len(header) > MAX_METADATA:
        raise BadRequest(f"Upload-Metadata is at most {MAX_METADATA} characters.")
    found: dict[str, str] = {}
    for item in header.split(","):
        key, _, encoded = item.strip().partition(" ")
        if not key or not key.isascii() or " " in key or key in found:
            raise BadRequest("Upload-Metadata is 'key base64value' pairs with distinct keys.")
        try:
            value = base64.b64decode(encoded, validate=True).decode() if encoded else ""
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest(f"Upload-Metadata value of {key!r} is not base64 UTF-8.") from None
        found[key] = value
    return found


def create_upload(
    session: Session,
    model: CustomModel,
    *,
    length: int,
    max_length: int,
    metadata: dict[str, str],
    actor: str,
) -> CustomUpload:
    data.check_open(model)
    if length <= 0:
        raise BadRequest("Upload-Length must be a positive number of bytes.")
    if length > max_length:
        raise PayloadTooLarge(
            f"Upload-Length {length} is over the largest archive taken, {max_length} bytes."
        )
    now = utcnow()
    upload = CustomUpload(
        model_id=model.id,
        upload_length=length,
        upload_offset=0,
        parts=0,
        upload_metadata=metadata,
        status="uploading",
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(upload)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="custom_upload.created",
        target_type="custom_model",
        target_id=str(model.id),
        details={"upload_id": str(upload.id), "length": length},
    )
    return upload


def get_upload(session: Session, model: CustomModel, upload_id: uuid.UUID) -> CustomUpload:
    upload = session.get(CustomUpload, upload_id)
    if upload is None or upload.model_id != model.id or upload.status == "terminated":
        raise UploadNotFound(upload_id)
    return upload


def check_checksum(header: str | None, chunk: bytes) -> None:
    """``Upload-Checksum: <algorithm> <base64 digest>``; absent: nothing to check."""
    if not header:
        return
    algorithm, _, encoded = header.strip().partition(" ")
    digest = CHECKSUM_ALGORITHMS.get(algorithm.lower())
    if digest is None:
        raise BadRequest(
            f"Upload-Checksum algorithm {algorithm!r} is not supported: "
            f"{', '.join(CHECKSUM_ALGORITHMS)}."
        )
    try:
        expected = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise BadRequest("Upload-Checksum's digest is not base64.") from None
    if digest(chunk).digest() != expected:
        raise ChecksumMismatch("The chunk does not match its Upload-Checksum; send it again.")


def append(
    session: Session,
    store: SampleStore,
    model: CustomModel,
    upload: CustomUpload,
    *,
    offset: int,
    chunk: bytes,
    checksum: str | None,
    actor: str,
) -> CustomUpload:
    """Seal ``chunk`` at ``offset`` and move the offset; at the last byte the upload is
    ``validating`` (its archive is read by :func:`validate_upload`)."""
    session.refresh(upload, with_for_update=True)  # one PATCH of an upload at a time
    if upload.status != "uploading":
        raise UploadGone(f"Upload {upload.id} is {upload.status}: it takes no more bytes.")
    if offset != upload.upload_offset:
        raise OffsetMismatch(
            f"Upload-Offset {offset} is not the upload's offset, {upload.upload_offset}; "
            "ask with HEAD and resume from there."
        )
    if upload.upload_offset + len(chunk) > upload.upload_length:
        raise BadRequest(f"The chunk runs past Upload-Length ({upload.upload_length} bytes).")
    check_checksum(checksum, chunk)
    if chunk:
        key = custom_model_key(model, store.keys, store.cache)
        store.blobs.put(
            _part_key(model, upload, offset),
            encrypt_stream(
                [chunk], key=key, key_version=1, context=_part_context(model, upload, offset)
            ),
        )
        upload.parts += 1
        upload.upload_offset += len(chunk)
    upload.updated_at = utcnow()
    if upload.upload_offset == upload.upload_length:
        # Read after the answer (validate_upload): the last PATCH returns at once.
        upload.status = "validating"
        if model.status == "collecting":
            model.status = "validating"
            model.updated_at = upload.updated_at
        record_event(
            session,
            actor=actor,
            action="custom_upload.received",
            target_type="custom_model",
            target_id=str(model.id),
            details={"upload_id": str(upload.id), "bytes": upload.upload_length},
        )
    session.flush()
    return upload


def validate_upload(
    factory: sessionmaker[Session],
    store: SampleStore,
    upload_id: uuid.UUID,
    *,
    scorer: TranscriptScorer | None,
    actor: str,
) -> str | None:
    """Read a received upload's archive as an archive upload is read, in a transaction of its
    own (after the last PATCH was answered, or by ``mip worker`` for one a crash left behind).
    Returns the upload's final status, or None when another process got there first."""
    with session_scope(factory) as session:
        upload = session.get(CustomUpload, upload_id, with_for_update=True)
        if upload is None or upload.status != "validating":
            return None
        model = session.get(CustomModel, upload.model_id, with_for_update=True)
        if model is None:
            return None
        _finish(session, store, model, upload, scorer=scorer, actor=actor)
        upload.updated_at = utcnow()
        if model.status == "validating" and not repository.has_validating_upload(session, model.id):
            model.status = "collecting"
            model.updated_at = upload.updated_at
        session.flush()
        return upload.status


def stale_validations(session: Session, *, older_than: dt.datetime) -> list[uuid.UUID]:
    """Uploads received but never read (their process stopped): ``mip worker`` reads them."""
    stmt = select(CustomUpload.id).where(
        CustomUpload.status == "validating", CustomUpload.updated_at < older_than
    )
    return list(session.scalars(stmt.order_by(CustomUpload.updated_at)))


def terminate(
    session: Session, store: SampleStore, model: CustomModel, upload: CustomUpload, *, actor: str
) -> None:
    store.blobs.delete_prefix(_parts_prefix(model, upload))
    upload.status = "terminated"
    upload.updated_at = utcnow()
    session.flush()
    record_event(
        session,
        actor=actor,
        action="custom_upload.terminated",
        target_type="custom_model",
        target_id=str(model.id),
        details={"upload_id": str(upload.id), "offset": upload.upload_offset},
    )


def _finish(
    session: Session,
    store: SampleStore,
    model: CustomModel,
    upload: CustomUpload,
    *,
    scorer: TranscriptScorer | None,
    actor: str,
) -> None:
    archive = _assemble(store, model, upload)
    result: dict[str, Any]
    try:
        with session.begin_nested():
            outcome = data.upload_archive(
                session, store, model, archive, scorer=scorer, actor=actor
            )
    except (BadRequest, PayloadTooLarge, Conflict) as refused:  # Conflict: the set froze
        upload.status, result = "failed", {"error": refused.message}
    else:
        accepted = sum(1 for record in outcome.files if record.status == "accepted")
        upload.status = "complete"
        result = {
            "format": outcome.format,
            "mode": outcome.mode,
            "files": [str(record.id) for record in outcome.files],
            "accepted": accepted,
            "rejected": len(outcome.files) - accepted,
            "problems": outcome.problems,
        }
    upload.result = result
    store.blobs.delete_prefix(_parts_prefix(model, upload))
    session.flush()


def _assemble(store: SampleStore, model: CustomModel, upload: CustomUpload) -> bytes:
    key = custom_model_key(model, store.keys, store.cache)
    pieces: list[bytes] = []
    offset = 0
    for info in sorted(store.blobs.list(_parts_prefix(model, upload)), key=lambda i: i.key):
        part_offset = int(info.key.rsplit("/", 1)[1])
        if part_offset != offset:
            raise Conflict(f"Upload {upload.id} is missing bytes at {offset}; send it again.")
        plain = b"".join(
            decrypt_stream(
                store.blobs.get(info.key),
                key_for=lambda _version: key,
                context=_part_context(model, upload, part_offset),
            )
        )
        pieces.append(plain)
        offset += len(plain)
    if offset != upload.upload_length:
        raise Conflict(f"Upload {upload.id} holds {offset} of {upload.upload_length} bytes.")
    return b"".join(pieces)


def _parts_prefix(model: CustomModel, upload: CustomUpload) -> str:
    return f"custom/{model.reseller_id}/{model.id}/uploads/{upload.id}/"


def _part_key(model: CustomModel, upload: CustomUpload, offset: int) -> str:
    return f"{_parts_prefix(model, upload)}{offset:015d}"


def _part_context(model: CustomModel, upload: CustomUpload, offset: int) -> dict[str, str]:
    return {"custom_model": str(model.id), "upload": str(upload.id), "offset": str(offset)}


class ScorerCache:
    """Base models' transcript scorers for ``mip worker`` (which serves no model itself):
    the model directories are read on first use, each base's scorer built once."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._registry: ModelRegistry | None = None
        self._scorers: dict[str, TranscriptScorer | None] = {}

    def for_upload(
        self, factory: sessionmaker[Session], upload_id: uuid.UUID
    ) -> TranscriptScorer | None:
        with session_scope(factory) as session:
            upload = session.get(CustomUpload, upload_id)
            model = session.get(CustomModel, upload.model_id) if upload else None
            base = model.base_model_uuid if model else None
        if base is None:
            return None
        if base not in self._scorers:
            if self._registry is None:
                self._registry = open_model_registry(self._settings)
                self._registry.scan()
            loaded = self._registry.get(base)
            self._scorers[base] = TranscriptScorer(loaded.package) if loaded else None
        return self._scorers[base]
