"""The compliance report's queries: aggregates computed by the database, rows streamed.

A period can hold millions of ledger rows and decrypted reads; everything that grows with the
traffic is counted with ``GROUP BY`` (per day, per source, per role) or streamed with
``yield_per``, never loaded whole. Only rows that stay few (contract changes, erasures, key
rotations, model versions) are read as lists.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select, true, union_all
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.tables.audit import AuditEntry
from app.tables.datasets import TrainingSet, TrainingSetSample
from app.tables.erasure import ErasureRequest
from app.tables.ledger import LedgerEntry
from app.tables.samples import DataKey, Sample
from app.tables.tenancy import ApiKey, Organization, Project
from app.tables.training import ModelVersion

STREAM_BATCH = 2000


@dataclass(frozen=True, slots=True)
class Window:
    """The report's period as UTC instants, ``start`` included and ``end`` excluded."""

    start: dt.datetime
    end: dt.datetime

    def holds(self, column: InstrumentedAttribute[Any]) -> ColumnElement[bool]:
        return and_(column >= self.start, column < self.end)


def _day(session: Session, column: InstrumentedAttribute[Any]) -> ColumnElement[str]:
    """The UTC calendar day of a timestamp column, as ``YYYY-MM-DD`` text."""
    if session.get_bind().dialect.name == "postgresql":
        # The session's TimeZone may be anything: name UTC explicitly.
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    # SQLite keeps UTCDateTime as 'YYYY-MM-DD HH:MM:SS.ffffff' text (see app.kit.db).
    return func.substr(column, 1, 10)


# --- ledger ---------------------------------------------------------------------------------


def requests_by_day(session: Session, window: Window) -> list[tuple[str, bool, int]]:
    """(day, opted out, requests) for every day of the window that has requests."""
    day = _day(session, LedgerEntry.created_at).label("day")
    stmt = (
        select(day, LedgerEntry.mip_opt_out, func.count())
        .where(window.holds(LedgerEntry.created_at))
        .group_by(day, LedgerEntry.mip_opt_out)
        .order_by(day)
    )
    return [(str(d), bool(out), int(n)) for d, out, n in session.execute(stmt)]


def requests_by_source(session: Session, window: Window) -> list[tuple[str, bool, int, int]]:
    """(opt-out source, opted out, requests, failed requests) in the window."""
    failed = func.sum(case((LedgerEntry.http_status >= 400, 1), else_=0))
    stmt = (
        select(LedgerEntry.opt_out_source, LedgerEntry.mip_opt_out, func.count(), failed)
        .where(window.holds(LedgerEntry.created_at))
        .group_by(LedgerEntry.opt_out_source, LedgerEntry.mip_opt_out)
    )
    return [(str(s), bool(o), int(n), int(f or 0)) for s, o, n, f in session.execute(stmt)]


def kept_in_window(session: Session, window: Window) -> int:
    """Ledger rows of the window whose sample was kept."""
    stmt = select(func.count()).where(
        window.holds(LedgerEntry.created_at), LedgerEntry.sample_kept.is_(true())
    )
    return int(session.scalar(stmt) or 0)


# --- the catalog against the ledger and the store ---------------------------------------------


def iter_catalog_objects(session: Session) -> Iterator[tuple[str, bool | None]]:
    """Every object the catalog refers to as (key, its sample's ledger row's opt-out or None
    when it has no row), streamed in byte order of the key: the order both blob stores
    list in, so the two can be merged without holding either in memory."""
    parts = []
    for column in (Sample.audio_blob_key, Sample.transcript_blob_key, Sample.reference_blob_key):
        parts.append(
            select(
                column.label("key"),
                LedgerEntry.mip_opt_out.label("opted_out"),
                LedgerEntry.id.label("ledger_id"),
            )
            .outerjoin(LedgerEntry, LedgerEntry.id == Sample.ledger_entry_id)
            .where(column.is_not(None))
        )
    objects = union_all(*parts).subquery()
    key: ColumnElement[str] = objects.c.key
    if session.get_bind().dialect.name == "postgresql":
        key = key.collate("C")  # byte order, whatever the database's collation (SQLite's is)
    stmt = (
        select(objects.c.key, objects.c.opted_out, objects.c.ledger_id)
        .order_by(key)
        .execution_options(yield_per=STREAM_BATCH)
    )
    result = session.execute(stmt)
    try:
        for name, opted_out, ledger_id in result:
            yield str(name), None if ledger_id is None else bool(opted_out)
    finally:
        result.close()  # a server-side cursor on PostgreSQL


def count_samples(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Sample)) or 0)


def samples_of_opted_out_requests(session: Session, *, limit: int) -> tuple[int, list[str]]:
    """Samples whose ledger row says opted out: how many, and the first ``limit`` ids."""
    joined = select(Sample.id).join(LedgerEntry, LedgerEntry.id == Sample.ledger_entry_id)
    joined = joined.where(LedgerEntry.mip_opt_out.is_(true()))
    return _count_and_examples(session, joined, limit=limit)


def samples_without_ledger_row(session: Session, *, limit: int) -> tuple[int, list[str]]:
    orphaned = (
        select(Sample.id)
        .outerjoin(LedgerEntry, LedgerEntry.id == Sample.ledger_entry_id)
        .where(LedgerEntry.id.is_(None))
    )
    return _count_and_examples(session, orphaned, limit=limit)


def _count_and_examples(
    session: Session, stmt: Select[uuid.UUID], *, limit: int
) -> tuple[int, list[str]]:
    count = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    examples = session.scalars(stmt.order_by(Sample.id).limit(limit))
    return int(count), [str(sample_id) for sample_id in examples]


def samples_kept_in_window(session: Session, window: Window) -> int:
    stmt = select(func.count()).select_from(Sample).where(window.holds(Sample.created_at))
    return int(session.scalar(stmt) or 0)


# --- retention --------------------------------------------------------------------------------


def expired_counts(session: Session, *, now: dt.datetime) -> tuple[int, int]:
    """(past their deadline and not on hold, past it and on legal hold)."""
    held = func.sum(case((Sample.legal_hold.is_(true()), 1), else_=0))
    stmt = select(func.count(), held).where(Sample.retention_until < now)
    total, on_hold = session.execute(stmt).one()
    return int(total or 0) - int(on_hold or 0), int(on_hold or 0)


def legal_holds(session: Session) -> int:
    return int(session.scalar(select(func.count()).where(Sample.legal_hold.is_(true()))) or 0)


# --- audit entries ----------------------------------------------------------------------------


def audit_entries(
    session: Session,
    *,
    actions: Sequence[str],
    window: Window | None = None,
    since: dt.datetime | None = None,
) -> list[AuditEntry]:
    """Entries of few, rare actions (contract changes, purges, rotations…) in seq order."""
    stmt = select(AuditEntry).where(AuditEntry.action.in_(actions)).order_by(AuditEntry.seq)
    if window is not None:
        stmt = stmt.where(window.holds(AuditEntry.created_at))
    if since is not None:
        stmt = stmt.where(AuditEntry.created_at >= since)
    return list(session.scalars(stmt))


def audit_counts_by_day(
    session: Session, *, actions: Sequence[str], window: Window
) -> list[tuple[str, str, int]]:
    """(day, action, entries) of the window."""
    day = _day(session, AuditEntry.created_at).label("day")
    stmt = (
        select(day, AuditEntry.action, func.count())
        .where(AuditEntry.action.in_(actions), window.holds(AuditEntry.created_at))
        .group_by(day, AuditEntry.action)
        .order_by(day)
    )
    return [(str(d), str(a), int(n)) for d, a, n in session.execute(stmt)]


def audit_counts_by_actor(
    session: Session, *, actions: Sequence[str], window: Window
) -> list[tuple[str, int]]:
    stmt = (
        select(AuditEntry.actor, func.count())
        .where(AuditEntry.action.in_(actions), window.holds(AuditEntry.created_at))
        .group_by(AuditEntry.actor)
        .order_by(func.count().desc(), AuditEntry.actor)
    )
    return [(str(a), int(n)) for a, n in session.execute(stmt)]


def iter_audit_entries(
    session: Session, *, actions: Sequence[str], window: Window, limit: int
) -> Iterator[tuple[int, dt.datetime, str, str, str, uuid.UUID | None]]:
    """(seq, created_at, actor, action, target_id, organization_id), streamed, at most limit."""
    stmt = (
        select(
            AuditEntry.seq,
            AuditEntry.created_at,
            AuditEntry.actor,
            AuditEntry.action,
            AuditEntry.target_id,
            AuditEntry.organization_id,
        )
        .where(AuditEntry.action.in_(actions), window.holds(AuditEntry.created_at))
        .order_by(AuditEntry.seq)
        .limit(limit)
        .execution_options(yield_per=STREAM_BATCH)
    )
    result = session.execute(stmt)
    try:
        for seq, created_at, actor, action, target_id, organization_id in result:
            yield int(seq), created_at, str(actor), str(action), str(target_id), organization_id
    finally:
        result.close()


# --- consent ----------------------------------------------------------------------------------


def contract_opt_out_organizations(session: Session) -> int:
    stmt = select(func.count()).where(Organization.contract_opt_out.is_(true()))
    return int(session.scalar(stmt) or 0)


def withdrawn_scopes(session: Session) -> tuple[int, int]:
    """(organizations, projects) whose consent an erasure withdrew."""
    orgs = select(func.count()).where(Organization.consent_withdrawn_at.is_not(None))
    projects = select(func.count()).where(Project.consent_withdrawn_at.is_not(None))
    return int(session.scalar(orgs) or 0), int(session.scalar(projects) or 0)


# --- erasure ----------------------------------------------------------------------------------


def erasures_for(session: Session, window: Window) -> list[ErasureRequest]:
    """Requested or finished in the window, or requested before its end and still open."""
    stmt = (
        select(ErasureRequest)
        .where(
            or_(
                window.holds(ErasureRequest.created_at),
                window.holds(ErasureRequest.finished_at),
                and_(ErasureRequest.created_at < window.end, ErasureRequest.status != "done"),
            )
        )
        .order_by(ErasureRequest.created_at, ErasureRequest.id)
    )
    return list(session.scalars(stmt))


# --- keys -------------------------------------------------------------------------------------


def staff_keys(session: Session) -> list[ApiKey]:
    stmt = select(ApiKey).where(ApiKey.role.is_not(None)).order_by(ApiKey.role, ApiKey.created_at)
    return list(session.scalars(stmt))


def data_key_counts(session: Session) -> list[tuple[str, str, int, dt.datetime | None, int]]:
    """(status, KEK version, keys, oldest created_at, keys holding key material)."""
    material = func.sum(case((DataKey.wrapped_key.is_not(None), 1), else_=0))
    stmt = (
        select(
            DataKey.status,
            DataKey.kek_version,
            func.count(),
            func.min(DataKey.created_at),
            material,
        )
        .group_by(DataKey.status, DataKey.kek_version)
        .order_by(DataKey.status, DataKey.kek_version)
    )
    return [
        (str(status), str(kek_version), int(n), _instant(oldest), int(with_material or 0))
        for status, kek_version, n, oldest, with_material in session.execute(stmt)
    ]


def oldest_active_keys(session: Session, *, limit: int) -> list[DataKey]:
    stmt = (
        select(DataKey)
        .where(DataKey.status == "active")
        .order_by(DataKey.created_at, DataKey.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


# --- model lineage ----------------------------------------------------------------------------


def model_versions_before(session: Session, end: dt.datetime) -> list[ModelVersion]:
    stmt = (
        select(ModelVersion)
        .where(ModelVersion.created_at < end)
        .order_by(ModelVersion.created_at, ModelVersion.id)
    )
    return list(session.scalars(stmt))


def training_sets_before(session: Session, end: dt.datetime) -> list[TrainingSet]:
    stmt = (
        select(TrainingSet)
        .where(TrainingSet.created_at < end)
        .order_by(TrainingSet.created_at, TrainingSet.id)
    )
    return list(session.scalars(stmt))


@dataclass(frozen=True, slots=True)
class SetExtent:
    members: int
    in_catalog: int
    first_sample_at: dt.datetime | None
    last_sample_at: dt.datetime | None


def training_set_extents(
    session: Session, set_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, SetExtent]:
    """Per set: members, those still in the catalog, and the dates their samples were kept.

    Erased or purged members have no catalog row any more (membership has no foreign key on
    purpose); their dates are gone with them, so the range covers the members still held.
    """
    if not set_ids:
        return {}
    stmt = (
        select(
            TrainingSetSample.training_set_id,
            func.count(),
            func.count(Sample.id),
            func.min(Sample.created_at),
            func.max(Sample.created_at),
        )
        .outerjoin(Sample, Sample.id == TrainingSetSample.sample_id)
        .where(TrainingSetSample.training_set_id.in_(set_ids))
        .group_by(TrainingSetSample.training_set_id)
    )
    extents = {}
    for set_id, members, held, first, last in session.execute(stmt):
        extents[set_id] = SetExtent(int(members), int(held), _instant(first), _instant(last))
    return extents


def _instant(value: Any) -> dt.datetime | None:
    """An aggregate's timestamp: SQLite returns the stored text, PostgreSQL a datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    raise TypeError(f"not a timestamp: {type(value).__name__}")
