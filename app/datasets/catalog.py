"""The sample catalog as a curation manifest (``curation.schema``), with consent worked out.

    manifest = load_catalog(session, store, CatalogFilter(domain="medical"))
    manifest.groupby("accent")["duration"].sum()

``consent`` is what training may rely on *now*: ``opted_out`` when the request or the
organization's current contract opts out, ``erased`` while an erasure of its organization or
project is under way (or its data key is destroyed), ``expired`` past its retention deadline,
else ``opted_in``. Transcripts are decrypted in memory only (the labeler's reference when there
is one, else the served transcript), and only for samples whose consent holds; they never
reach a file or a log from here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import pandas as pd
from sqlalchemy.orm import Session

from app.datasets import repository
from app.kit.db import utcnow
from app.samples.runtime import SampleStore
from app.samples.service import decrypt_object
from app.tables.samples import Sample
from curation.schema import coerce


@dataclass(frozen=True, slots=True)
class CatalogFilter:
    organization_ids: Sequence[uuid.UUID] | None = None
    domain: str | None = None
    language: str | None = None
    reference_only: bool = False  # only samples a labeler has transcribed


def load_catalog(
    session: Session,
    store: SampleStore,
    where: CatalogFilter = CatalogFilter(),
    *,
    transcripts: bool = True,
) -> pd.DataFrame:
    """Every matching sample as one manifest row (``audio`` is empty: it is in the store)."""
    rows = repository.catalog_rows(
        session,
        organization_ids=where.organization_ids,
        domain=where.domain,
        language=where.language,
    )
    erasing_orgs, erasing_projects = repository.erasing_scopes(session)
    shredded = repository.shredded_organizations(session)
    now = utcnow()
    records = []
    for sample, request_opted_out, contract_opted_out in rows:
        if where.reference_only and sample.reference_blob_key is None:
            continue
        erased = (
            sample.organization_id in erasing_orgs
            or sample.project_id in erasing_projects
            or sample.organization_id in shredded
        )
        if request_opted_out or contract_opted_out:
            consent = "opted_out"
        elif erased:
            consent = "erased"
        elif sample.retention_until <= now:
            consent = "expired"
        else:
            consent = "opted_in"
        text = None
        # Only consented samples are decrypted: the others are quarantined on consent anyway.
        if transcripts and consent == "opted_in":
            text = sample_transcript(session, store, sample)
        records.append(
            {
                "sample_id": str(sample.id),
                "duration": sample.duration_seconds,
                "transcript": text,
                "language": sample.language,
                "accent": sample.accent,
                "age_group": sample.age_group,
                "sex": sample.sex,
                "noise_type": sample.noise_type,
                "snr_db": sample.snr_db,
                "environment": sample.environment,
                "domain": sample.domain,
                "organization_id": str(sample.organization_id),
                "consent": consent,
                "audio_sha256": sample.audio_sha256,
                "created": sample.created_at,
            }
        )
    if not records:
        return coerce(pd.DataFrame({"sample_id": [], "duration": []}))
    return coerce(pd.DataFrame.from_records(records))


def sample_transcript(session: Session, store: SampleStore, sample: Sample) -> str | None:
    if sample.reference_blob_key is not None:
        return decrypt_object(session, store, sample, "reference").decode("utf-8")
    body = orjson.loads(decrypt_object(session, store, sample, "transcript"))
    try:
        text = body["results"]["channels"][0]["alternatives"][0]["transcript"]
    except (KeyError, IndexError, TypeError):
        return None
    return text if isinstance(text, str) else None
