"""Record transcription requests in the ledger: one priced row per request, idempotently.

Two ways in, one pipeline: :func:`record_request` (in-process, for ``/v1/listen``) and
:func:`ingest_batch` (an upstream gateway's batch). A batch is validated whole before anything
is written and written in the caller's transaction, so it lands entirely or not at all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from operator import attrgetter

import orjson
from pydantic import TypeAdapter
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.consent.service import resolve_opt_out
from app.kit.db import utcnow
from app.kit.errors import BadRequest, Conflict, NotFound
from app.ledger import repository
from app.ledger.repository import LedgerRow
from app.ledger.schemas import LedgerEventIn
from app.ledger.seals import SEAL_ACTION, seal_period
from app.pricing.service import ContractTerms, PriceBook, price_request
from app.sampling.policy import SamplingConfig, SamplingPolicy
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


# An event's digest identifies its content: an identical re-send has the same one. It is
# SHA-256 over the JSON array of the validated (normalised) fields in this fixed order,
# encoded by orjson. Rows recorded before this encoding hold the first one
# (legacy_event_hashes); a recorded row matches a re-send when either digest is equal.
HASHED_FIELDS = (
    "request_id",
    "project_id",
    "api_key_id",
    "created",
    "endpoint",
    "method",
    "model",
    "model_uuid",
    "model_version",
    "model_tier",
    "language",
    "features",
    "tags",
    "duration",
    "channels",
    "status",
    "mip_opt_out",
)
_HASHED_VALUES = attrgetter(*HASHED_FIELDS)
_EVENTS = TypeAdapter(list[LedgerEventIn])


def event_hashes(events: list[LedgerEventIn]) -> list[str]:
    """Each event's digest (see HASHED_FIELDS): 1.5 µs an event."""
    sha256, dumps, values = hashlib.sha256, orjson.dumps, _HASHED_VALUES
    return [sha256(dumps(values(event))).hexdigest() for event in events]


def legacy_event_hashes(events: list[LedgerEventIn]) -> list[str]:
    """The first digest: SHA-256 of the event's JSON object, keys sorted (3.6 µs an event).

    Still computed for events whose request id is already recorded, so that a re-send of
    an event recorded before the current digest counts as a duplicate, not a conflict.
    """
    sha256, dumps, sort_keys = hashlib.sha256, orjson.dumps, orjson.OPT_SORT_KEYS
    return [
        sha256(dumps(fields, option=sort_keys)).hexdigest()
        for fields in _EVENTS.dump_python(events, mode="json")
    ]


def event_hash(event: LedgerEventIn) -> str:
    return event_hashes([event])[0]


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
    # Keyed by the UUIDs' integers: UUID.__hash__ is Python code, 10,000 calls a batch.
    wanted = list({e.project_id.int: e.project_id for e in events}.values())
    projects = tenancy_repository.get_projects(session, wanted)
    missing = sorted(str(p) for p in wanted if p not in projects)
    if missing:
        raise InvalidLedgerEvent(f"Unknown project_id(s): {', '.join(missing[:20])}.")
    orgs = tenancy_repository.get_organizations(
        session, {p.organization_id for p in projects.values()}
    )
    return projects, orgs


def _check_keys(session: Session, events: list[LedgerEventIn]) -> None:
    pairs = {
        (e.api_key_id.int, e.project_id.int): (e.api_key_id, e.project_id)
        for e in events
        if e.api_key_id is not None
    }.values()
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


class _RowBuilder:
    """Prices one event and lays out its ledger row; everything per batch is read once.

    The hot loop of a batch: one call per event, no per-row dict, per-batch lookups keyed by
    the UUIDs' integers (``UUID.__hash__`` is Python code). Pricing and the sampling decision
    are the shared rules (price_request, SamplingPolicy.decide); rates are looked up per
    event, since the price book is effective-dated by instant.
    """

    __slots__ = ("_billing", "_book", "_closed", "_now", "_sampling", "_terms", "_withdrawn")

    def __init__(
        self,
        *,
        terms: dict[uuid.UUID, ContractTerms],
        book: PriceBook,
        sampling: SamplingPolicy,
        closed: set[str],
        now: dt.datetime,
        withdrawn: Collection[uuid.UUID] = (),
    ) -> None:
        self._terms = {project_id.int: org for project_id, org in terms.items()}
        # Projects whose consent (theirs or their organization's) an erasure withdrew.
        self._withdrawn = {project_id.int for project_id in withdrawn}
        self._book = book
        self._sampling = sampling
        self._closed = closed
        self._billing: dict[str, str] = {}
        self._now = now

    def __call__(self, event: LedgerEventIn, digest: str) -> LedgerRow:
        org = self._terms[event.project_id.int]
        opt_out = resolve_opt_out(
            event.mip_opt_out,
            contract_opt_out=org.contract_opt_out,
            consent_withdrawn=event.project_id.int in self._withdrawn,
        )
        status = event.status
        created = event.created
        plan, version, rate, discount_bps, list_amount, discount, amount = price_request(
            self._book,
            org,
            tier=event.model_tier,
            at=created,
            duration_seconds=event.duration,
            mip_opt_out=opt_out.mip_opt_out,
            http_status=status,
        )
        usage_period = f"{created.year:04d}-{created.month:02d}"
        billing_period = self._billing.get(usage_period)
        if billing_period is None:
            billing_period = billing_period_for(usage_period, self._closed)
            self._billing[usage_period] = billing_period
        selected, sampling_rate = self._sampling.decide(
            organization_id=org.id,
            model_name=event.model,
            request_id=event.request_id,
            opt_out=opt_out,
            http_status=status,
        )
        row: LedgerRow = {
            "request_id": event.request_id,
            "organization_id": org.id,
            "project_id": event.project_id,
            "api_key_id": event.api_key_id,
            "created_at": created,
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
            "http_status": status,
            "mip_opt_out": opt_out.mip_opt_out,
            "opt_out_source": opt_out.source,
            "sample_kept": False,  # set when the sample store keeps the audio
            "sample_selected": selected,
            "sampling_rate": sampling_rate,
            "plan": plan,
            "price_book_version": version,
            "rate_micros_per_minute": rate,
            "discount_bps": discount_bps,
            "list_amount_micros": list_amount,
            "discount_micros": discount,
            "amount_micros": amount,
            "usage_period": usage_period,
            "billing_period": billing_period,
            "is_adjustment": billing_period != usage_period,
            "event_hash": digest,
            "recorded_at": self._now,
        }
        return row


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

    # Events not recorded yet, in batch order, each with its digest when the plan needed it
    # (None: computed as the row is built).
    new: list[tuple[LedgerEventIn, str | None]]
    duplicates: int
    build: _RowBuilder

    def rows(self, *, chunk: int = 500) -> Iterator[LedgerRow]:
        """The new rows, hashed a chunk at a time (batch dumps) as they are consumed."""
        build = self.build
        for start in range(0, len(self.new), chunk):
            part = self.new[start : start + chunk]
            missing = [event for event, digest in part if digest is None]
            computed = iter(event_hashes(missing)) if missing else iter(())
            for event, digest in part:
                yield build(event, digest if digest is not None else next(computed))


def _plan(session: Session, events: list[LedgerEventIn], sampling: SamplingConfig) -> _Plan:
    """Validate the whole batch: references, duplicates, conflicts (409 before any write).

    Only events whose (project, request id) repeats in the batch or is already recorded
    need their digest to tell an identical re-send from a conflict; the others are hashed
    later, while the rows stream into the database.
    """
    projects, orgs = _resolve_projects(session, events)
    _check_keys(session, events)
    _lock_periods_shared(session)
    book = PriceBook.load(session)
    policy = SamplingPolicy.load(session, sampling)
    closed = repository.closed_periods(session)

    first: dict[tuple[int, str], int] = {}  # key -> index of its first event in the batch
    repeats: list[int] = []
    for index, event in enumerate(events):
        key = (event.project_id.int, event.request_id)
        if first.setdefault(key, index) != index:
            repeats.append(index)
    unique = list(first.values())
    recorded = repository.existing_hashes(
        session, [(events[i].project_id, events[i].request_id) for i in unique]
    )

    # Digests of the events that need one now.
    needed = {first[(events[i].project_id.int, events[i].request_id)] for i in repeats}
    needed.update(repeats)
    if recorded:
        needed.update(i for i in unique if (events[i].project_id, events[i].request_id) in recorded)
    ordered = sorted(needed)
    digests = dict(zip(ordered, event_hashes([events[i] for i in ordered]), strict=True))

    duplicates = 0
    conflicts: list[tuple[uuid.UUID, str]] = []
    for index in repeats:
        event = events[index]
        earlier = first[(event.project_id.int, event.request_id)]
        if digests[index] == digests[earlier]:
            duplicates += 1
        else:
            conflicts.append((event.project_id, event.request_id))
    new: list[tuple[LedgerEventIn, str | None]] = []
    known = [i for i in ordered if (events[i].project_id, events[i].request_id) in recorded]
    legacy = dict(zip(known, legacy_event_hashes([events[i] for i in known]), strict=True))
    for index in unique:
        event = events[index]
        previous = recorded.get((event.project_id, event.request_id)) if recorded else None
        if previous is None:
            new.append((event, digests.get(index)))
        elif previous in (digests[index], legacy[index]):
            duplicates += 1
        else:
            conflicts.append((event.project_id, event.request_id))
    if conflicts:
        raise ConflictingDuplicate(
            _conflict_message(conflicts),
            details={"conflicts": [{"project_id": str(p), "request_id": r} for p, r in conflicts]},
        )

    terms = {
        project_id: ContractTerms.of(orgs[project.organization_id])
        for project_id, project in projects.items()
    }
    withdrawn = {
        project_id
        for project_id, project in projects.items()
        if project.consent_withdrawn_at is not None
        or orgs[project.organization_id].consent_withdrawn_at is not None
    }
    build = _RowBuilder(
        terms=terms, book=book, sampling=policy, closed=closed, now=utcnow(), withdrawn=withdrawn
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

    def rows() -> Iterator[LedgerRow]:
        nonlocal adjustments
        for row in plan.rows():
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

    The row carries the effective opt-out and the sampling decision: ``sample_selected``
    tells the caller whether to offer the audio to the sample store (whose guards decide).
    """
    plan = _plan(session, [event], sampling)
    if not plan.new:
        entry = repository.get_entry(
            session, project_id=event.project_id, request_id=event.request_id
        )
        assert entry is not None  # a plan writes nothing only for a recorded duplicate
        return entry
    entry = LedgerEntry(id=uuid.uuid4(), **next(plan.rows()))
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

    The close's audit entry carries the month's seal (:mod:`app.ledger.seals`).

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
    # The month's seal: nothing more can be billed in it, and its rows are append-only.
    record_event(
        session,
        actor=actor,
        action=SEAL_ACTION,
        target_type="billing_period",
        target_id=period,
        details=seal_period(session, period).as_details(),
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
