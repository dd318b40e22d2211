"""Audit exports an auditor verifies offline, with nothing but the service's public key.

``mip audit export`` signs a fresh checkpoint, then writes a gzipped tar of:

- ``entries.jsonl``: every audit entry from seq 1 to that checkpoint, one JSON object a line,
  with exactly the fields its hash covers plus ``entry_hash``;
- ``manifest.json``: the export's head (seq and hash), the entry count and the SHA-256 of
  ``entries.jsonl``, signed with the Ed25519 key (``signature`` over the sorted compact JSON of
  the other fields);
- ``public-key.pem``: the signer's public key, for reference only: a verifier must be given
  the key it trusts, never take it from the bundle;
- ``VERIFY.txt``: how to check it.

:func:`verify_bundle` needs no database and no service configuration. It names each kind of
tampering: an entry ``edited``, ``deleted``, ``reordered``; the log ``truncated``; the chain
``rewritten`` (hashes recomputed after an edit: a signed head no longer matches); a
``signature`` that does not verify; a ``malformed`` file; and, given an earlier export, an
``earlier head`` that the new one lost.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.audit.chain import GENESIS_HASH, HASHED_FIELDS, entry_hash
from app.compliance.signed import (
    CHECKPOINT_ACTION,
    SignedHead,
    check_signed_head,
    heads_in,
    signed_bytes,
)
from app.kit.crypto.signing import key_id_of, verify_signature
from durable import atomic_path

BUNDLE_FORMAT = "mip.audit.export/1"
MANIFEST = "manifest.json"
ENTRIES = "entries.jsonl"
PUBLIC_KEY = "public-key.pem"
INSTRUCTIONS = "VERIFY.txt"
MEMBERS = (MANIFEST, ENTRIES, PUBLIC_KEY, INSTRUCTIONS)
# A manifest is a few hundred bytes; refuse a forged giant before reading it.
_MAX_MANIFEST_BYTES = 1 << 20

_VERIFY_TEXT = """\
This is an export of the MIP Governance Service's audit log.

Verify it with the public key you received from the operator (not the copy in this archive):

    mip audit verify-export {name} --public-key operator-public-key.pem

Add --previous EARLIER-EXPORT.tar.gz to check that nothing an earlier export held was removed.
entries.jsonl holds one entry a line; entry_hash = sha256(prev_hash || sorted compact JSON of
{fields}). manifest.json is signed (Ed25519) over the sorted compact JSON of its other fields.
"""


def write_bundle(
    path: Path,
    entries: Iterator[dict[str, Any]],
    *,
    sign: Callable[[bytes], bytes],
    key_id: str,
    public_key_pem: bytes,
    created_at: str,
) -> dict[str, Any]:
    """Write ``entries`` (plain fields, seq order) and a signed manifest to ``path``.

    ``sign`` turns bytes into an Ed25519 signature. Returns the manifest.
    """
    digest = hashlib.sha256()
    count = 0
    head_seq, head_hash = 0, GENESIS_HASH
    with tempfile.TemporaryDirectory(prefix="mip-audit-export-") as tmp:
        entries_path = Path(tmp) / ENTRIES
        with entries_path.open("wb") as out:
            for fields in entries:
                line = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS) + b"\n"
                out.write(line)
                digest.update(line)
                count += 1
                head_seq, head_hash = fields["seq"], fields["entry_hash"]
        manifest: dict[str, Any] = {
            "format": BUNDLE_FORMAT,
            "created_at": created_at,
            "key_id": key_id,
            "entries": count,
            "head_seq": head_seq,
            "head_hash": head_hash,
            "entries_sha256": digest.hexdigest(),
        }
        manifest["signature"] = base64.b64encode(sign(signed_bytes(manifest))).decode()
        with atomic_path(path, mode=0o600) as partial, tarfile.open(partial, "w:gz") as tar:
            _add_bytes(tar, MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
            tar.add(entries_path, arcname=ENTRIES)
            _add_bytes(tar, PUBLIC_KEY, public_key_pem)
            text = _VERIFY_TEXT.format(name=path.name, fields=", ".join(HASHED_FIELDS))
            _add_bytes(tar, INSTRUCTIONS, text.encode())
    return manifest


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))


# --- verification (offline) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message}


@dataclass
class BundleReport:
    entries: int = 0
    checkpoints: int = 0
    head_seq: int | None = None
    head_hash: str | None = None
    key_id: str | None = None
    created_at: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, message: str) -> None:
        self.problems.append(Problem(kind, message))

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "key_id": self.key_id,
            "created_at": self.created_at,
            "problems": [problem.as_dict() for problem in self.problems],
        }


class BundleError(Exception):
    """The file is not an audit export (not a tar, a member missing or too large)."""


def verify_bundle(
    path: Path,
    keys: Sequence[Ed25519PublicKey],
    *,
    previous: Sequence[Path] = (),
) -> BundleReport:
    """Check a bundle against the trusted ``keys``; ``previous``: earlier exports it must extend."""
    report = BundleReport()
    try:
        tar = tarfile.open(path, "r:gz")
    except (OSError, tarfile.TarError) as error:
        raise BundleError(f"{path} is not an audit export ({type(error).__name__})") from None
    with tar:
        manifest = _read_manifest(tar, report, keys)
        with closing(_member(tar, ENTRIES)) as stream:
            hashes, heads = _walk_entries(stream, report, manifest)
    for head in heads:
        report.checkpoints += 1
        problem = check_signed_head(head, keys, hashes)
        if problem is not None:
            kind = "rewritten" if "another hash" in problem else "signature"
            if "missing" in problem:
                kind = "truncated"
            report.add(kind, problem)
    for earlier in previous:
        _check_previous(earlier, keys, hashes, report)
    return report


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    try:
        info = tar.getmember(name)
    except KeyError:
        raise BundleError(f"the export has no {name}") from None
    if not info.isfile():
        raise BundleError(f"{name} in the export is not a regular file")
    stream = tar.extractfile(info)
    if stream is None:  # pragma: no cover - isfile() was checked
        raise BundleError(f"{name} in the export cannot be read")
    return stream


def _read_manifest(
    tar: tarfile.TarFile, report: BundleReport, keys: Sequence[Ed25519PublicKey]
) -> dict[str, Any]:
    with closing(_member(tar, MANIFEST)) as stream:
        raw = stream.read(_MAX_MANIFEST_BYTES + 1)
    if len(raw) > _MAX_MANIFEST_BYTES:
        raise BundleError("manifest.json is too large")
    try:
        manifest = orjson.loads(raw)
        if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
            raise ValueError("not an audit export manifest")
    except ValueError as error:
        raise BundleError(f"manifest.json is malformed ({error})") from None
    report.key_id = manifest.get("key_id")
    report.created_at = manifest.get("created_at")
    unsigned = {name: value for name, value in manifest.items() if name != "signature"}
    try:
        signature = base64.b64decode(str(manifest.get("signature", "")), validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    body = signed_bytes(unsigned)
    if not any(verify_signature(key, body, signature) for key in keys):
        ids = ", ".join(key_id_of(key) for key in keys)
        report.add("signature", f"the manifest is not signed by {ids}")
    return manifest


def _walk_entries(
    stream: IO[bytes], report: BundleReport, manifest: dict[str, Any]
) -> tuple[dict[int, str], list[SignedHead]]:
    """Walk the chain in file order; the first break is named, later lines are still read
    for their hashes (so checkpoints can be checked) but not judged again."""
    digest = hashlib.sha256()
    hashes: dict[int, str] = {}
    checkpoint_fields: list[dict[str, Any]] = []
    expected_seq, expected_prev = 1, GENESIS_HASH
    broken = False
    gap: tuple[int, int, int] | None = None  # (problem index, the seq expected, the seq found)
    last_seq: int | None = None
    last_hash: str | None = None
    for number, line in enumerate(stream, start=1):
        digest.update(line)
        try:
            fields = orjson.loads(line)
            if not isinstance(fields, dict) or any(
                name not in fields for name in (*HASHED_FIELDS, "entry_hash")
            ):
                raise ValueError("missing fields")
            seq = fields["seq"]
            if not isinstance(seq, int):
                raise ValueError("seq is not an integer")
        except ValueError:
            report.add("malformed", f"line {number} of entries.jsonl is not an audit entry")
            broken = True
            continue
        report.entries += 1
        hashes[seq] = str(fields["entry_hash"])
        last_seq, last_hash = seq, str(fields["entry_hash"])
        if fields["action"] == CHECKPOINT_ACTION:
            checkpoint_fields.append(fields)
        if broken:
            continue
        problem = _judge(fields, expected_seq, expected_prev)
        if problem is not None:
            report.add(*problem)
            broken = True
            gap = (len(report.problems) - 1, expected_seq, seq) if seq > expected_seq else None
            continue
        expected_seq, expected_prev = seq + 1, fields["entry_hash"]
    if gap is not None and gap[1] in hashes:  # the "missing" entry comes later: moved
        index, expected, found = gap
        report.problems[index] = Problem(
            "reordered", f"entry {found} comes before entry {expected}"
        )
    report.head_seq, report.head_hash = last_seq, last_hash
    _check_against_manifest(report, manifest, digest.hexdigest(), last_seq, last_hash)
    return hashes, heads_in(checkpoint_fields)


def _judge(fields: dict[str, Any], expected_seq: int, expected_prev: str) -> tuple[str, str] | None:
    seq = fields["seq"]
    if seq > expected_seq:
        if seq == expected_seq + 1:
            return "deleted", f"entry {expected_seq} is missing before entry {seq}"
        return "deleted", f"entries {expected_seq} to {seq - 1} are missing before entry {seq}"
    if seq < expected_seq:
        return "reordered", f"entry {seq} comes after entry {expected_seq - 1}"
    if entry_hash(fields) != fields["entry_hash"]:
        return "edited", f"entry {seq}'s content does not match its hash"
    if fields["prev_hash"] != expected_prev:
        return "rewritten", f"entry {seq} does not link to the entry before it"
    return None


def _check_against_manifest(
    report: BundleReport,
    manifest: dict[str, Any],
    entries_sha256: str,
    last_seq: int | None,
    last_hash: str | None,
) -> None:
    signed_seq, signed_hash = manifest.get("head_seq"), manifest.get("head_hash")
    if isinstance(signed_seq, int) and (last_seq or 0) < signed_seq:
        report.add(
            "truncated",
            f"the signed manifest ends at entry {signed_seq}; the file ends at {last_seq or 0}",
        )
    elif last_seq == signed_seq and last_hash != signed_hash:
        report.add("rewritten", f"entry {last_seq} is not the head the manifest signs")
    elif isinstance(signed_seq, int) and (last_seq or 0) > signed_seq:
        report.add("malformed", f"entries after the signed head {signed_seq} were added")
    if manifest.get("entries_sha256") != entries_sha256 and report.ok:
        report.add("edited", "entries.jsonl is not the file the manifest signs")


def _check_previous(
    earlier: Path,
    keys: Sequence[Ed25519PublicKey],
    hashes: dict[int, str],
    report: BundleReport,
) -> None:
    try:
        with tarfile.open(earlier, "r:gz") as tar:
            scratch = BundleReport()
            manifest = _read_manifest(tar, scratch, keys)
    except (OSError, tarfile.TarError) as error:
        raise BundleError(f"{earlier} is not an audit export ({type(error).__name__})") from None
    if not scratch.ok:
        report.add("signature", f"the earlier export {earlier.name}: {scratch.problems[0].message}")
        return
    seq, expected = manifest.get("head_seq"), manifest.get("head_hash")
    if not isinstance(seq, int) or seq == 0:
        return
    actual = hashes.get(seq)
    if actual is None:
        report.add(
            "earlier head",
            f"entry {seq}, the head of the earlier export {earlier.name}, is missing",
        )
    elif actual != expected:
        report.add(
            "earlier head",
            f"entry {seq} differs from the head of the earlier export {earlier.name}",
        )
