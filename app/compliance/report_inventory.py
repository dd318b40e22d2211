"""The opt-out section: requests by day and source, the sample store against the catalog,
and every sampling decision recomputed.

The store's listing and the catalog's objects are both streamed in key order and merged, so
neither is held in memory, however many objects the store holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy.orm import Session

from app.compliance import report_repository as repo
from app.compliance.report_sections import EXAMPLES, Check, Section, zero
from app.consent.service import OPT_OUT_SOURCES
from app.kit.blob import BlobInfo
from app.kit.errors import MIPError
from app.samples.runtime import SampleStore
from app.sampling.audit import audit_sampling
from app.sampling.policy import SamplingConfig

SAMPLE_PREFIX = "orgs/"  # app.samples.service.blob_prefix: every sample object lives below it


def opt_out_section(
    session: Session,
    store: SampleStore,
    sampling: SamplingConfig,
    window: repo.Window,
    days: Sequence[str],
) -> Section:
    daily: dict[str, dict[str, int]] = {day: {"opted_in": 0, "opted_out": 0} for day in days}
    for day, opted_out, n in repo.requests_by_day(session, window):
        daily.setdefault(day, {"opted_in": 0, "opted_out": 0})
        daily[day]["opted_out" if opted_out else "opted_in"] += n
    by_source: dict[str, int] = dict.fromkeys(OPT_OUT_SOURCES, 0)
    totals = Counter[str]()
    for source, opted_out, n, failed in repo.requests_by_source(session, window):
        totals["total"] += n
        totals["failed"] += failed
        totals["opted_out" if opted_out else "opted_in"] += n
        if opted_out:
            by_source[source] = by_source.get(source, 0) + n
    inventory = store_inventory(session, store)
    audit = audit_sampling(session, sampling)
    section = {
        "requests": {
            "total": totals["total"],
            "opted_in": totals["opted_in"],
            "opted_out": totals["opted_out"],
            "failed": totals["failed"],
            "samples_kept": repo.kept_in_window(session, window),
        },
        "opted_out_by_source": by_source,
        "daily": [{"day": day, **counts} for day, counts in sorted(daily.items())],
        "samples_kept_in_period": repo.samples_kept_in_window(session, window),
        "store": inventory,
        "sampling": {
            "scope": "every ledger row",
            "ok": audit.ok,
            "ledger_rows": audit.rows,
            "selected": audit.selected,
            "mismatches": len(audit.mismatches),
            "kept_without_selection": len(audit.kept_without_selection),
            "mismatch_examples": audit.mismatches[:EXAMPLES],
            "kept_without_selection_examples": audit.kept_without_selection[:EXAMPLES],
        },
    }
    checks = [
        zero(
            "opt_out.samples_of_opted_out_requests",
            "opt-out",
            "Samples whose ledger row is opted out",
            inventory["samples_of_opted_out_requests"]["count"],
        ),
        zero(
            "opt_out.samples_without_ledger_row",
            "opt-out",
            "Samples without a ledger row",
            inventory["samples_without_ledger_row"]["count"],
        ),
        zero(
            "store.orphan_objects",
            "opt-out",
            "Objects in the store that no sample refers to",
            inventory["orphan_objects"]["count"],
        ),
        zero(
            "store.missing_objects",
            "opt-out",
            "Catalog objects missing from the store",
            inventory["missing_objects"]["count"],
        ),
        zero(
            "store.objects_of_opted_out_requests",
            "opt-out",
            "Objects stored for an opted-out request",
            inventory["objects_of_opted_out_requests"]["count"],
        ),
        Check(
            "sampling.decisions_recompute",
            "opt-out",
            "Every sampling decision recomputes from the HMAC",
            "now",
            audit.ok,
            len(audit.mismatches) + len(audit.kept_without_selection),
            "0 mismatches",
        ),
    ]
    return section, checks


def store_inventory(session: Session, store: SampleStore) -> dict[str, Any]:
    """The catalog against a listing of the store, both ways.

    Both are streamed in key order and merged, so neither is held in memory (a store of
    millions of objects included). Objects are matched, not decrypted: ``mip store verify``
    authenticates every GCM tag.
    """
    counts = Counter[str]()
    listed = _in_key_order(store.blobs.list(SAMPLE_PREFIX), counts)
    orphans: list[str] = []
    missing: list[str] = []
    opted_out_objects: list[str] = []
    pending = next(listed, None)
    matched = None
    for key, opted_out in repo.iter_catalog_objects(session):
        counts["referenced"] += 1
        while pending is not None and pending < key:
            counts["orphans"] += 1
            _note(orphans, pending)
            pending = next(listed, None)
        if pending == key:
            matched, pending = key, next(listed, None)
        if key == matched:  # listed (or referenced a second time, and listed)
            if opted_out:
                counts["opted_out_objects"] += 1
                _note(opted_out_objects, key)
        else:
            counts["missing"] += 1
            _note(missing, key)
    while pending is not None:
        counts["orphans"] += 1
        _note(orphans, pending)
        pending = next(listed, None)
    out_count, out_examples = repo.samples_of_opted_out_requests(session, limit=EXAMPLES)
    unledgered, unledgered_examples = repo.samples_without_ledger_row(session, limit=EXAMPLES)
    return {
        "prefix": SAMPLE_PREFIX,
        "objects": counts["listed"],
        "samples": repo.count_samples(session),
        "catalog_objects": counts["referenced"],
        "orphan_objects": {"count": counts["orphans"], "examples": orphans},
        "missing_objects": {"count": counts["missing"], "examples": missing},
        "objects_of_opted_out_requests": {
            "count": counts["opted_out_objects"],
            "examples": opted_out_objects,
        },
        "samples_of_opted_out_requests": {"count": out_count, "examples": out_examples},
        "samples_without_ledger_row": {"count": unledgered, "examples": unledgered_examples},
    }


class StoreListingOutOfOrder(MIPError):
    """The blob store listed keys out of order: the inventory cannot be trusted."""


def _in_key_order(infos: Iterable[BlobInfo], counts: Counter[str]) -> Iterator[str]:
    previous = ""
    for info in infos:
        counts["listed"] += 1
        if info.key <= previous:
            raise StoreListingOutOfOrder(
                f"The sample store listed {info.key!r} after {previous!r}; the inventory needs "
                "keys in order."
            )
        previous = info.key
        yield info.key


def _note(examples: list[str], value: str) -> None:
    if len(examples) < EXAMPLES:
        examples.append(value)
