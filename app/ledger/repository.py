"""Every query of the ledger domain, including the bulk write paths."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Generator, Iterable, Sequence
from itertools import chain
from typing import Any, TypedDict

import orjson
from sqlalchemy import Row, String, Uuid, func, insert, select, text, tuple_
from sqlalchemy.orm import Session

from app.tables.ledger import BillingPeriod, LedgerEntry

LEDGER_COLUMNS: tuple[str, ...] = tuple(c.name for c in LedgerEntry.__table__.columns)
_LOOKUP_CHUNK = 1000


class LedgerRow(TypedDict):
    """One ledger row to write, every column by name but the row id (assigned on write).

    Built as a dict literal, which mypy checks key by key and which costs a fraction of a
    keyword call on the ingest hot loop (a 34-field NamedTuple built by keywords made a batch's
    rows 30% slower to build). Nothing depends on the order of its keys: ``COPY`` names its
    columns from the first row's keys. The check below the class fails at import when the row
    and the table no longer have the same columns.
    """

    request_id: str
    organization_id: uuid.UUID
    project_id: uuid.UUID
    api_key_id: uuid.UUID | None
    created_at: dt.datetime
    endpoint: str
    method: str
    model_name: str
    model_uuid: str | None
    model_version: str | None
    model_tier: str
    language: str | None
    features: list[str]
    tags: list[str]
    duration_seconds: float
    channels: int
    http_status: int
    mip_opt_out: bool
    opt_out_source: str
    sample_kept: bool
    sample_selected: bool
    sampling_rate: float | None
    plan: str
    price_book_version: str
    rate_micros_per_minute: int
    discount_bps: int
    list_amount_micros: int
    discount_micros: int
    amount_micros: int
    usage_period: str
    billing_period: str
    is_adjustment: bool
    event_hash: str
    recorded_at: dt.datetime


if {"id", *LedgerRow.__required_keys__} != set(LEDGER_COLUMNS):
    raise RuntimeError(
        f"LedgerRow's keys must be ledger_entries' columns but its id: {LEDGER_COLUMNS[1:]}"
    )


def existing_hashes(
    session: Session, keys: Sequence[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], str]:
    """Event hashes already recorded for these (project, request id) pairs."""
    if session.get_bind().dialect.name == "postgresql":
        return _existing_hashes_pg(session, keys)
    found: dict[tuple[uuid.UUID, str], str] = {}
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        stmt = select(LedgerEntry.project_id, LedgerEntry.request_id, LedgerEntry.event_hash).where(
            tuple_(LedgerEntry.project_id, LedgerEntry.request_id).in_(chunk)
        )
        for project_id, request_id, event_hash in session.execute(stmt):
            found[(project_id, request_id)] = event_hash
    return found


def _existing_hashes_pg(
    session: Session, keys: Sequence[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], str]:
    # One probe of the (project_id, request_id) unique index per key. LIMIT 1 keeps the
    # planner from turning it into a hash join over the whole ledger, and the plan does not
    # depend on table statistics: a new, unanalysed table (a new month) stays as fast
    # (bench/ledger.py measured `= ANY(array)` per project degrading to 3.7 s per batch there).
    if not keys:
        return {}
    # The keys travel as two newline-separated texts: psycopg's array dumper formats and
    # quotes element by element in Python, which cost as much as the query itself.
    texts: dict[uuid.UUID, str] = {}
    projects = []
    for project_id, _ in keys:
        value = texts.get(project_id)
        if value is None:
            value = texts[project_id] = str(project_id)
        projects.append(value)
    requests = "\n".join([request_id for _, request_id in keys])
    if requests.count("\n") != len(keys) - 1:  # a request id with a newline: no text form
        rows = session.execute(
            _LOOKUP_PG_ARRAYS, {"projects": projects, "requests": [k[1] for k in keys]}
        )
    else:
        rows = session.execute(_LOOKUP_PG, {"projects": "\n".join(projects), "requests": requests})
    return {(project_id, request_id): digest for project_id, request_id, digest in rows}


_PROBE = """
    JOIN LATERAL (
        SELECT event_hash FROM ledger_entries
        WHERE project_id = k.project_id AND request_id = k.request_id
        LIMIT 1
    ) AS l ON true
"""
_LOOKUP_PG = text(
    """
    SELECT k.project_id, k.request_id, l.event_hash
    FROM unnest(
        CAST(string_to_array(:projects, E'\\n') AS uuid[]),
        string_to_array(:requests, E'\\n')
    ) AS k (project_id, request_id)
    """
    + _PROBE
).columns(project_id=Uuid(), request_id=String(), event_hash=String())
_LOOKUP_PG_ARRAYS = text(
    """
    SELECT k.project_id, k.request_id, l.event_hash
    FROM unnest(CAST(:projects AS uuid[]), CAST(:requests AS varchar[]))
         AS k (project_id, request_id)
    """
    + _PROBE
).columns(project_id=Uuid(), request_id=String(), event_hash=String())


def closed_periods(session: Session) -> set[str]:
    stmt = select(BillingPeriod.period).where(BillingPeriod.status == "closed")
    return set(session.scalars(stmt))


def get_period(session: Session, period: str) -> BillingPeriod | None:
    return session.get(BillingPeriod, period)


def insert_rows(session: Session, rows: Iterable[LedgerRow]) -> int:
    """Write ledger rows in the session's transaction; returns how many.

    The row id is assigned here.
    On PostgreSQL the rows stream into ``COPY`` as the iterable yields them (psycopg sends
    every 32 KB): the server inserts the rows sent while Python builds the next ones. A
    writer thread (psycopg's ``QueuedLibpqWriter``) made it slower, 0.196 s against 0.181 s
    per 10,000 rows, by making the building thread wait for the GIL.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return _copy_rows(connection.connection.driver_connection, rows)
    batch = [{"id": uuid.uuid4(), **row} for row in rows]
    if batch:
        session.execute(insert(LedgerEntry), batch)
    return len(batch)


_UUID_COLUMNS = frozenset(
    column.name
    for column in LedgerEntry.__table__.columns
    if isinstance(column.type, Uuid) and column.name != "id"
)
_JSON_COLUMNS = frozenset({"features", "tags"})
_IDS_PER_DRAW = 1024
# Sets the version (4) and variant (RFC 4122) bits of random bytes, one table per byte.
_VERSION_4 = bytes((b & 0x0F) | 0x40 for b in range(256))
_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))


def _random_ids(count: int) -> list[str]:
    """Version-4 UUIDs as 32 hex digits (PostgreSQL reads them so), from one ``urandom``."""
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = bytes(raw[6::16]).translate(_VERSION_4)
    raw[8::16] = bytes(raw[8::16]).translate(_VARIANT)
    digits = raw.hex()
    return [digits[i : i + 32] for i in range(0, 32 * count, 32)]


def _copy_rows(raw: Any, rows: Iterable[LedgerRow]) -> int:
    pending = iter(rows)
    first = next(pending, None)
    if first is None:
        return 0
    # The columns by the rows' own keys (every row comes from one dict literal: same order).
    names = ("id", *first)
    uuids_at = tuple(i for i, name in enumerate(names) if name in _UUID_COLUMNS)
    json_at = tuple(i for i, name in enumerate(names) if name in _JSON_COLUMNS)
    count = 0
    # UUIDs go as text, so psycopg's C dumpers format every value; organization, project and
    # key ids repeat within a batch, so each of those is formatted once.
    texts: dict[int, str] = {}
    dumps = orjson.dumps
    ids: list[str] = []
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY ledger_entries ({', '.join(names)}) FROM STDIN") as copy:
            write_row = copy.write_row
            for row in chain((first,), pending):
                if not ids:
                    ids = _random_ids(_IDS_PER_DRAW)
                values: list[Any] = [ids.pop(), *row.values()]
                for i in uuids_at:
                    value = values[i]
                    if value is not None:
                        number = value.int
                        text_ = texts.get(number)
                        if text_ is None:
                            text_ = texts[number] = str(value)
                        values[i] = text_
                for i in json_at:
                    values[i] = dumps(values[i]).decode()
                write_row(values)
                count += 1
    return count


def get_entry(session: Session, *, project_id: uuid.UUID, request_id: str) -> LedgerEntry | None:
    return session.scalars(
        select(LedgerEntry).where(
            LedgerEntry.project_id == project_id, LedgerEntry.request_id == request_id
        )
    ).first()


def count_in_scope(
    session: Session, *, organization_id: uuid.UUID, project_id: uuid.UUID | None
) -> int:
    stmt = select(func.count()).select_from(LedgerEntry)
    stmt = stmt.where(LedgerEntry.organization_id == organization_id)
    if project_id is not None:
        stmt = stmt.where(LedgerEntry.project_id == project_id)
    return int(session.scalar(stmt) or 0)


def row_batches_in_scope(
    session: Session, *, organization_id: uuid.UUID, project_id: uuid.UUID | None, batch: int
) -> Generator[Sequence[Row[Any]]]:
    """The organization's (or project's) rows, every column in :data:`LEDGER_COLUMNS` order,
    oldest first, ``batch`` rows at a time: an organization may hold millions, so they stream
    (a server-side cursor on PostgreSQL) and are never held whole."""
    stmt = select(*(getattr(LedgerEntry, name) for name in LEDGER_COLUMNS))
    stmt = stmt.where(LedgerEntry.organization_id == organization_id)
    if project_id is not None:
        stmt = stmt.where(LedgerEntry.project_id == project_id)
    stmt = stmt.order_by(LedgerEntry.created_at, LedgerEntry.id)
    result = session.execute(stmt.execution_options(yield_per=batch))
    try:
        yield from result.partitions()
    finally:
        # A caller that stops early must not leave the server-side cursor open.
        result.close()
