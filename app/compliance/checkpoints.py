"""Signed checkpoints: the audit chain's head, the sealed months and the store inventory,
signed with the service's Ed25519 key, kept in the chain and anchored outside the database.

A hash chain alone proves only that entries agree with each other: deleting the newest
entries, or rewriting every entry with the same unkeyed SHA-256, still verifies. A checkpoint
closes both holes. It signs ``(head_seq, head_hash)``, so a rewritten chain no longer matches a
signed head, and a copy of it is written to the blob store (``audit/checkpoints/``, outside the
database; on S3 that prefix can sit under Object Lock), so deleting entries up to and past a
checkpoint leaves an anchor pointing at an entry that is gone::

    entry = create_checkpoint(session, store, signer, actor="cli:ana@host")
    status = checkpoint_status(session, store, signer)   # {"ok": True, "checkpoints": 3, ...}

The checkpoint entry itself is appended after the head it signs (``seq = head_seq + 1``).
The chain is verified before it is signed: a broken chain is never given a signature.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.audit import repository as audit_repository
from app.audit.service import entry_fields, record_event, verify_chain
from app.compliance.bundle import write_bundle
from app.compliance.signed import (
    CHECKPOINT_ACTION,
    SignedHead,
    check_signed_head,
    heads_in,
    signed_bytes,
)
from app.kit.blob import BlobNotFound, BlobStore
from app.kit.crypto.signing import SigningKey
from app.kit.db import session_scope, utcnow
from app.kit.errors import Conflict
from app.kit.settings import Settings
from app.ledger.seals import recorded_seals
from app.samples.runtime import SampleStore, open_key_provider
from app.tables.audit import AuditEntry

CHECKPOINT_FORMAT = "mip.audit.checkpoint/1"
ANCHOR_PREFIX = "audit/checkpoints/"
INVENTORY_OF = "sha256 over the store's objects sorted by key, one 'key<TAB>size' line each"


class ChainNotSignable(Conflict):
    """The chain does not verify: it is not signed until the break is explained."""


def open_signing_key(settings: Settings) -> SigningKey:
    return SigningKey(settings.effective_signing_key_file, open_key_provider(settings))


def store_inventory(blobs: BlobStore) -> dict[str, Any]:
    """Count, size and digest of every object but the anchors themselves."""
    listed = sorted(
        (info.key, info.size) for info in blobs.list() if not info.key.startswith(ANCHOR_PREFIX)
    )
    digest = hashlib.sha256()
    for key, size in listed:
        digest.update(f"{key}\t{size}\n".encode())
    return {
        "objects": len(listed),
        "bytes": sum(size for _, size in listed),
        "digest": digest.hexdigest(),
        "digest_of": INVENTORY_OF,
    }


def checkpoint_payload(session: Session, store: SampleStore, signer: SigningKey) -> dict[str, Any]:
    report = verify_chain(session)
    if not report.ok:
        raise ChainNotSignable(
            f"The audit chain does not verify at entry {report.first_bad_seq} ({report.reason}); "
            "it is not signed. Run `mip audit verify`."
        )
    return {
        "format": CHECKPOINT_FORMAT,
        "created_at": utcnow().isoformat(),
        "key_id": signer.key_id,
        "audit": {"head_seq": report.entries, "head_hash": report.head_hash},
        "ledger_seals": [
            {"period": seal.period, **seal.as_details()} for seal in recorded_seals(session)
        ],
        "store": store_inventory(store.blobs),
    }


def create_checkpoint(
    session: Session, store: SampleStore, signer: SigningKey, *, actor: str
) -> AuditEntry:
    """Sign the current head, append the checkpoint entry and write its anchor.

    The anchor names the head it signs, which is already committed, so it stays true whether
    or not the caller's transaction (holding the checkpoint entry) commits.
    """
    payload = checkpoint_payload(session, store, signer)
    signature = base64.b64encode(signer.sign(signed_bytes(payload))).decode()
    head_seq = payload["audit"]["head_seq"]
    document = {"payload": payload, "signature": signature}
    store.blobs.put(f"{ANCHOR_PREFIX}{head_seq:012d}.json", [orjson.dumps(document)])
    return record_event(
        session,
        actor=actor,
        action=CHECKPOINT_ACTION,
        target_type="audit_chain",
        target_id=str(head_seq),
        details=document,
    )


# --- verification ---------------------------------------------------------------------------


def anchored_heads(blobs: BlobStore) -> list[SignedHead]:
    heads = []
    for info in blobs.list(ANCHOR_PREFIX):
        try:
            document = orjson.loads(b"".join(blobs.get(info.key)))
        except (BlobNotFound, orjson.JSONDecodeError):
            heads.append(SignedHead(f"anchor {info.key}", {}, ""))
            continue
        payload = document.get("payload") if isinstance(document, dict) else None
        signature = document.get("signature") if isinstance(document, dict) else None
        heads.append(
            SignedHead(
                f"anchor {info.key}",
                payload if isinstance(payload, dict) else {},
                signature if isinstance(signature, str) else "",
            )
        )
    return heads


@dataclass
class CheckpointStatus:
    checkpoints: int = 0
    anchors: int = 0
    latest: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checkpoints": self.checkpoints,
            "anchors": self.anchors,
            "latest": self.latest,
            "problems": self.problems,
        }


def verify_checkpoints(
    session: Session, store: SampleStore, keys: Sequence[Ed25519PublicKey]
) -> CheckpointStatus:
    """Every checkpoint in the chain and every anchor in the store, against the entries now."""
    in_chain = _checkpoint_entries(session)
    anchors = anchored_heads(store.blobs)
    heads = heads_in(entry_fields(entry) for entry in in_chain) + anchors
    wanted = {
        head.payload["audit"]["head_seq"]
        for head in heads
        if isinstance(head.payload.get("audit"), dict)
        and isinstance(head.payload["audit"].get("head_seq"), int)
    }
    rows = session.execute(
        select(AuditEntry.seq, AuditEntry.entry_hash).where(AuditEntry.seq.in_(wanted))
    )
    hashes: dict[int, str] = {int(row[0]): str(row[1]) for row in rows}
    status = CheckpointStatus(checkpoints=len(in_chain), anchors=len(anchors))
    for head in heads:
        problem = check_signed_head(head, keys, hashes)
        if problem is not None:
            status.problems.append(problem)
    if in_chain:
        newest = in_chain[-1]
        payload = newest.details.get("payload")
        signed = payload if isinstance(payload, dict) else {}
        status.latest = {
            "seq": newest.seq,
            "created_at": newest.created_at.astimezone(dt.UTC).isoformat(),
            "head_seq": signed.get("audit", {}).get("head_seq"),
            "key_id": signed.get("key_id"),
        }
    return status


def checkpoint_status(session: Session, store: SampleStore, signer: SigningKey) -> dict[str, Any]:
    """:func:`verify_checkpoints` with the service's own key, as plain values (for reports)."""
    return verify_checkpoints(session, store, [signer.public_key]).as_dict()


def _checkpoint_entries(session: Session) -> list[AuditEntry]:
    found: list[AuditEntry] = []
    after = 0
    while True:
        page = audit_repository.list_entries(
            session, action=CHECKPOINT_ACTION, after_seq=after, limit=1000
        )
        found.extend(page)
        if len(page) < 1000:
            return found
        after = page[-1].seq


def export_audit_log(
    factory: sessionmaker[Session],
    store: SampleStore,
    signer: SigningKey,
    path: Path,
    *,
    actor: str,
) -> dict[str, Any]:
    """Sign a checkpoint, then write every entry up to it as a bundle at ``path``.

    Two units of work: the checkpoint is committed first, so the chain's append lock is not
    held while the bundle is written; the export itself is audited in the second
    (``audit.exported``, outside the bundle). Returns the bundle's manifest.
    """
    with session_scope(factory) as session:
        checkpoint_seq = create_checkpoint(session, store, signer, actor=actor).seq
    with session_scope(factory) as session:
        return _write_export(session, signer, path, checkpoint_seq, actor=actor)


def _write_export(
    session: Session, signer: SigningKey, path: Path, through_seq: int, *, actor: str
) -> dict[str, Any]:
    stmt = (
        select(AuditEntry)
        .where(AuditEntry.seq <= through_seq)
        .order_by(AuditEntry.seq)
        .execution_options(yield_per=1000)
    )
    result = session.scalars(stmt)
    try:
        manifest = write_bundle(
            path,
            (entry_fields(entry) for entry in result),
            sign=signer.sign,
            key_id=signer.key_id,
            public_key_pem=signer.public_key_pem(),
            created_at=utcnow().isoformat(),
        )
    finally:
        result.close()
    record_event(
        session,
        actor=actor,
        action="audit.exported",
        target_type="audit_chain",
        target_id=str(manifest["head_seq"]),
        details={key: manifest[key] for key in ("entries", "head_seq", "head_hash", "key_id")},
    )
    return manifest
