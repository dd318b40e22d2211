"""``mip store verify``: a proof an auditor can rerun.

verify authenticates every object (every GCM tag, the segment order and the final flag)
without keeping plaintext, and matches the catalog against the blob store both ways.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.kit.crypto import authenticate_stream
from app.kit.errors import MIPError
from app.samples.keys import key_resolver
from app.samples.runtime import SampleStore
from app.samples.service import crypto_context
from app.tables.samples import Sample


@dataclass
class VerifyReport:
    samples: int = 0
    objects: int = 0
    verified: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    missing_blobs: list[dict[str, str]] = field(default_factory=list)
    orphan_blobs: list[str] = field(default_factory=list)
    stale_temp_files: int = 0

    @property
    def ok(self) -> bool:
        return not (self.failed or self.missing_blobs or self.orphan_blobs)

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "samples": self.samples,
            "objects": self.objects,
            "verified": self.verified,
            "failed": len(self.failed),
            "missing_blobs": len(self.missing_blobs),
            "orphans": len(self.orphan_blobs),
            "stale_temp_files": self.stale_temp_files,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "failures": self.failed,
            "missing": self.missing_blobs,
            "orphan_keys": self.orphan_blobs,
        }


def verify_store(
    session: Session,
    store: SampleStore,
    *,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    report = VerifyReport()
    stored = {info.key for info in store.blobs.list("orgs/")}
    report.objects = len(stored)
    referenced: set[str] = set()
    resolvers: dict[uuid.UUID, Callable[[int], bytes]] = {}
    for sample in session.scalars(select(Sample).order_by(Sample.id)):
        report.samples += 1
        key_for = resolvers.setdefault(
            sample.organization_id,
            key_resolver(session, store.keys, store.cache, sample.organization_id),
        )
        objects = [("audio", sample.audio_blob_key), ("transcript", sample.transcript_blob_key)]
        if sample.reference_blob_key is not None:
            objects.append(("reference", sample.reference_blob_key))
        for kind, name in objects:
            referenced.add(name)
            if name not in stored:
                report.missing_blobs.append({"sample_id": str(sample.id), "key": name})
                continue
            try:
                authenticate_stream(
                    store.blobs.get(name), key_for=key_for, context=crypto_context(sample, kind)
                )
            except MIPError as exc:
                report.failed.append(
                    {"sample_id": str(sample.id), "key": name, "error": exc.message}
                )
            else:
                report.verified += 1
        if progress is not None:
            progress(1)
    report.orphan_blobs = sorted(stored - referenced)
    stale = getattr(store.blobs, "stale_temp_files", None)
    if callable(stale):
        report.stale_temp_files = len(stale())
    return report
