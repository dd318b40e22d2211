"""Record transcription requests in the ledger: one priced row per request, idempotently.

Two ways in, one pipeline: :func:`record_request` (in-process, for ``/v1/listen``) and
:func:`ingest_batch` (an upstream gateway's batch). A batch is validated whole before anything
is written and written in the caller's transaction, so it lands entirely or not at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.kit.db import utcnow
from app.kit.errors import BadRequest, Conflict, NotFound
from app.ledger import repository
from app.ledger.schemas import LedgerEventIn
from app.pricing.service import ContractTerms, PriceBook, price_request
from app.samples.sampling import SamplingConfig, SamplingPolicy
from app.tables.ledger import BillingPeriod, LedgerEntry
from app.tables.tenancy import Organization, Project
from app.tenancy import repository as tenancy_repository

# Names the PostgreSQL advisory lock that orders period closes against ledger writes.
PERIOD_LOCK_KEY = 0x4D4950_504552


class InvalidLedgerEvent(BadRequest):
    """An event refers to something that does not exist or does not fit together."""


class ConflictingDuplicate(Conflict):
    """A request id already recorded (or repeated in the batch) with different content."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    received: int
    recorded: int
    duplicates: int
    adjustments: int


def event_hash(event: LedgerEventIn) -> str:
    payload = orjson.dumps(event.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()


def period_of(moment: dt.datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def next_period(period: str) -> str:
    year, month = int(period[:4]), int(period[5:7])
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def billing_period_for(usage_period: str, closed: set[str]) -> str:
    """The usage month, or the first open month after it when it is closed."""
    period = usage_period
    while period in closed:
        period = next_period(period)
    return period


def _lock_periods_shared(session: Session) -> None:
    # Writers share the lock; closing a period takes it exclusively, so no event can land in
    # a month while that month is being closed.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": PERIOD_LOCK_KEY})


def _resolve_projects(
    session: Session, events: list[LedgerEventIn]
) -> tuple[dict[uuid.UUID, Project], dict[uuid.UUID, Organization]]:
    """The batch's projects and their organizations: one query each, whatever the batch."""
    projects = tenancy_repository.get_projects(session, [e.project_id for e in events])
    missing = sorted({str(e.project_id) for e in events} - {str(p) for p in projects})
    if missing:
        raise InvalidLedgerEvent(f"Unknown project_id(s): {', '.join(missing[:20])}.")
    orgs = tenancy_repository.get_organizations(
        session, {p.organization_id for p in projects.values()}
    )
    return projects, orgs


def _check_keys(session: Session, events: list[LedgerEventIn]) -> None:
    pairs = {(e.api_key_id, e.project_id) for e in events if e.api_key_id is not None}
    keys = tenancy_repository.get_keys(session, {key_id for key_id, _ in pairs})
    bad = sorted(
        str(key_id)
        for key_id, project_id in pairs
        if key_id not in keys or keys[key_id].project_id != project_id
    )
    if bad:
        raise InvalidLedgerEvent(
            f"api_key_id(s) not found in the event's project: {', '.join(bad[:20])}."
        )


def new_row_ids(count: int) -> list[uuid.UUID]:
    """Random (version 4) ids from one ``urandom`` call instead of one per row."""
    raw = os.urandom(16 * count)
    return [uuid.UUID(bytes=raw[i : i + 16], version=4) for i in range(0, 16 * count, 16)]


def _build_row(
    event: LedgerEventIn,
    *,
    row_id: uuid.UUID,
    org: ContractTerms,
    book: PriceBook,
    sampling: SamplingPolicy,
    closed: set[str],
    digest: str,
    now: dt.datetime,
) -> dict[str, Any]:
    if org.contract_opt_out:
        opt_out, source = True, "contract"
    elif event.mip_opt_out is not None:
        opt_out, source = event.mip_opt_out, "request"
    else:
        opt_out, source = False, "default"
    price = price_request(
        book,
        org,
        tier=event.model_tier,
        at=event.created,
        duration_seconds=event.duration,
        mip_opt_out=opt_out,
        http_status=event.status,
    )
    usage_period = period_of(event.created)
    billing_period = billing_period_for(usage_period, closed)
    decision = sampling.decide(
        organization_id=org.id,
        model_name=event.model,
        request_id=event.request_id,
        opted_out=opt_out,
        http_status=event.status,
    )
    return {
        "id": row_id,
        "request_id": event.request_id,
        "organization_id": org.id,
        "project_id": event.project_id,
        "api_key_id": event.api_key_id,
        "created_at": event.created,
        "endpoint": event.endpoint,
        "method": event.method,
        "model_name": event.model,
        "model_uuid": event.model_uuid,
        "model_version": event.model_version,
        "model_tier": event.model_tier,
        "language": event.language,
        "features": event.features,
        "tags": event.tags,
        "duration_seconds": event.duration,
        "channels": event.channels,
        "http_status": event.status,
        "mip_opt_out": opt_out,
        "opt_out_source": source,
        "sample_kept": False,
        "sample_selected": decision.selected,
        "sampling_rate": decision.rate,
        "plan": price.plan,
        "price_book_version": price.price_book_version,
        "rate_micros_per_minute": price.rate_micros_per_minute,
        "discount_bps": price.discount_bps,
        "list_amount_micros": price.list_amount_micros,
        "discount_micros": price.discount_micros,
        "amount_micros": price.amount_micros,
        "usage_period": usage_period,
        "billing_period": billing_period,
        "is_adjustment": billing_period != usage_period,
        "event_hash": digest,
        "recorded_at": now,
    }


def _conflict_message(conflicts: list[tuple[uuid.UUID, str]]) -> str:
    shown = ", ".join(f"{project}/{request}" for project, request in conflicts[:20])
    more = f" and {len(conflicts) - 20} more" if len(conflicts) > 20 else ""
    return (
        "Conflicting duplicate request id(s) (project/request_id), already recorded with "
        f"different content: {shown}{more}."
    )


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a batch will write, decided before anything is written."""

    new: list[tuple[LedgerEventIn, str]]  # (event, digest) not recorded yet, in batch order
    duplicates: int
    build: Callable[[LedgerEventIn, str, uuid.UUID], dict[str, Any]]


def _plan(session: Session, events: list[LedgerEventIn], sampling: SamplingConfig) -> _Plan:
    """Validate the whole batch: references, duplicates, conflicts (409 before any write)."""
    projects, orgs = _resolve_projects(session, events)
    _check_keys(session, events)
    _lock_periods_shared(session)
    book = PriceBook.load(session)
    policy = SamplingPolicy.load(session, sampling)
    closed = repository.closed_periods(session)
    now = utcnow()

    digests: dict[tuple[uuid.UUID, str], str] = {}
    conflicts: list[tuple[uuid.UUID, str]] = []
    unique: list[tuple[LedgerEventIn, str]] = []
    duplicates = 0
    for event in events:
        key = (event.project_id, event.request_id)
        digest = event_hash(event)
        seen = digests.get(key)
        if seen is None:
            digests[key] = digest
            unique.append((event, digest))
        elif seen == digest:
            duplicates += 1
        else:
            conflicts.append(key)

    recorded = repository.existing_hashes(session, list(digests))
    new: list[tuple[LedgerEventIn, str]] = []
    for event, digest in unique:
        key = (event.project_id, event.request_id)
        previous = recorded.get(key)
        if previous == digest:
            duplicates += 1
        elif previous is not None:
            conflicts.append(key)
        else:
            new.append((event, digest))
    if conflicts:
        raise ConflictingDuplicate(
            _conflict_message(conflicts),
            details={"conflicts": [{"project_id": str(p), "request_id": r} for p, r in conflicts]},
        )

    terms = {
        project_id: ContractTerms.of(orgs[project.organization_id])
        for project_id, project in projects.items()
    }

    def build(event: LedgerEventIn, digest: str, row_id: uuid.UUID) -> dict[str, Any]:
        return _build_row(
            event,
            row_id=row_id,
            org=terms[event.project_id],
            book=book,
            sampling=policy,
            closed=closed,
            digest=digest,
            now=now,
        )

    return _Plan(new, duplicates, build)


def ingest_batch(
    session: Session, events: list[LedgerEventIn], *, sampling: SamplingConfig
) -> BatchResult:
    """Record a batch atomically. Identical re-sends count as duplicates; conflicts are 409.

    Rows are priced and built lazily while they stream into the database; a pricing error
    part-way aborts the transaction, so still nothing of the batch is written.
    """
    plan = _plan(session, events, sampling)
    adjustments = 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal adjustments
        for (event, digest), row_id in zip(plan.new, new_row_ids(len(plan.new)), strict=True):
            row = plan.build(event, digest, row_id)
            adjustments += row["is_adjustment"]
            yield row

    try:
        recorded = repository.insert_rows(session, rows())
    except IntegrityError as exc:
        # Another writer recorded one of these request ids between our check and our write.
        raise ConflictingDuplicate(
            "Some request ids were recorded concurrently by another writer; re-send the batch "
            "(identical events will be counted as duplicates)."
        ) from exc
    return BatchResult(
        received=len(events),
        recorded=recorded,
        duplicates=plan.duplicates,
        adjustments=adjustments,
    )


def record_request(
    session: Session, event: LedgerEventIn, *, sampling: SamplingConfig
) -> LedgerEntry:
    """Record one request in-process (``/v1/listen``); returns the row (existing if identical).

    The row carries the sampling decision: ``sample_selected`` tells the caller whether to
    hand the audio to :func:`app.samples.service.store_sample`.
    """
    plan = _plan(session, [event], sampling)
    if not plan.new:
        entry = repository.get_entry(
            session, project_id=event.project_id, request_id=event.request_id
        )
        assert entry is not None  # a plan writes nothing only for a recorded duplicate
        return entry
    event_in, digest = plan.new[0]
    entry = LedgerEntry(**plan.build(event_in, digest, uuid.uuid4()))
    session.add(entry)
    try:
        session.flush()
    except IntegrityError as exc:
        raise ConflictingDuplicate(
            f"Request {event.request_id} was recorded concurrently by another writer."
        ) from exc
    return entry


def close_period(session: Session, *, period: str, actor: str) -> BillingPeriod:
    """Close a billing month; later events for it become adjustments in the next open month.

    Only a month that has ended can be closed: closing a running month would turn all of its
    remaining usage into adjustments.
    """
    validate_period(period)
    if period >= period_of(utcnow()):
        raise BadRequest(f"Billing period {period} has not ended yet; it cannot be closed.")
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PERIOD_LOCK_KEY})
    row = repository.get_period(session, period)
    if row is not None and row.status == "closed":
        raise Conflict(f"Billing period {period} is already closed.")
    if row is None:
        row = BillingPeriod(period=period, status="open")
        session.add(row)
    row.status = "closed"
    row.closed_at = utcnow()
    row.closed_by = actor
    session.flush()
    record_event(
        session,
        actor=actor,
        action="billing_period.closed",
        target_type="billing_period",
        target_id=period,
    )
    return row


def validate_period(period: str) -> str:
    try:
        parsed = dt.datetime.strptime(period, "%Y-%m")
    except ValueError as exc:
        raise BadRequest(f"Period '{period}' is not of the form YYYY-MM.") from exc
    if period != f"{parsed.year:04d}-{parsed.month:02d}":
        raise BadRequest(f"Period '{period}' is not of the form YYYY-MM.")
    return period


def get_entry_or_raise(session: Session, *, project_id: uuid.UUID, request_id: str) -> LedgerEntry:
    entry = repository.get_entry(session, project_id=project_id, request_id=request_id)
    if entry is None:
        raise NotFound(f"Request {request_id} not found.")
    return entry
