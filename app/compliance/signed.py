"""Signed heads of the audit chain, checked with nothing but public keys (no database).

A checkpoint's payload names the chain's head (``{"audit": {"head_seq", "head_hash"}}``) among
other digests; its signature is Ed25519 over :func:`signed_bytes` of the payload. The service
(:mod:`app.compliance.checkpoints`) and the offline verifier of exports
(:mod:`app.compliance.bundle`) both judge a head with :func:`check_signed_head`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.kit.crypto.signing import key_id_of, verify_signature

CHECKPOINT_ACTION = "audit.checkpoint"


def signed_bytes(payload: Mapping[str, Any]) -> bytes:
    """What the signature covers: the payload as sorted, compact JSON."""
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class SignedHead:
    """One checkpoint as found: in the chain (``source="entry:<seq>"``) or an anchor object."""

    source: str
    payload: dict[str, Any]
    signature: str


def check_signed_head(
    head: SignedHead, keys: Sequence[Ed25519PublicKey], entry_hash_at: Mapping[int, str] | None
) -> str | None:
    """Why ``head`` does not hold, or None. ``entry_hash_at`` maps seq to entry_hash for the
    entries at hand (None: skip the head check)."""
    try:
        signature = base64.b64decode(head.signature, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return f"{head.source}: the signature is not base64"
    body = signed_bytes(head.payload)
    if not any(verify_signature(key, body, signature) for key in keys):
        ids = ", ".join(key_id_of(key) for key in keys)
        return f"{head.source}: the signature does not verify with {ids}"
    audit = head.payload.get("audit")
    if not isinstance(audit, dict) or not isinstance(audit.get("head_seq"), int):
        return f"{head.source}: the signed payload names no head"
    seq, expected = audit["head_seq"], audit.get("head_hash")
    if entry_hash_at is None or seq == 0:
        return None
    actual = entry_hash_at.get(seq)
    if actual is None:
        return (
            f"{head.source}: signs entry {seq}, which is missing (the log was truncated or "
            "entries were deleted)"
        )
    if actual != expected:
        return f"{head.source}: signs entry {seq} with another hash (the chain was rewritten)"
    return None


def heads_in(entries: Iterable[Mapping[str, Any]]) -> list[SignedHead]:
    """The checkpoints recorded in ``entries`` (plain fields, as exported)."""
    found = []
    for fields in entries:
        if fields["action"] != CHECKPOINT_ACTION:
            continue
        details = fields["details"]
        payload = details.get("payload") if isinstance(details, dict) else None
        signature = details.get("signature") if isinstance(details, dict) else None
        found.append(
            SignedHead(
                f"checkpoint entry {fields['seq']}",
                payload if isinstance(payload, dict) else {},
                signature if isinstance(signature, str) else "",
            )
        )
    return found
