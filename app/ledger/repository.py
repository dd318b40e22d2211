"""Every query of the ledger domain, including the bulk write paths."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import String, Uuid, insert, select, text, tuple_
from sqlalchemy.orm import Session

from app.tables.ledger import BillingPeriod, LedgerEntry

LEDGER_COLUMNS: tuple[str, ...] = tuple(c.name for c in LedgerEntry.__table__.columns)
_LOOKUP_CHUNK = 1000


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


def insert_rows(session: Session, rows: Iterable[tuple[Any, ...]]) -> int:
    """Write ledger rows in the session's transaction; returns how many.

    A row holds the values of LEDGER_COLUMNS after the first: the row id is assigned here.
    On PostgreSQL the rows stream into ``COPY`` as the iterable yields them (psycopg sends
    every 32 KB): the server inserts the rows sent while Python builds the next ones. A
    writer thread (psycopg's ``QueuedLibpqWriter``) made it slower, 0.196 s against 0.181 s
    per 10,000 rows, by making the building thread wait for the GIL.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return _copy_rows(connection.connection.driver_connection, rows)
    batch = [dict(zip(LEDGER_COLUMNS, (uuid.uuid4(), *row), strict=True)) for row in rows]
    if batch:
        session.execute(insert(LedgerEntry), batch)
    return len(batch)


if LEDGER_COLUMNS[0] != "id":  # rows arrive without their id, which is written first
    raise RuntimeError(f"ledger_entries must start with its id, not {LEDGER_COLUMNS[0]}")
_UUIDS_AT = tuple(
    i
    for i, column in enumerate(LedgerEntry.__table__.columns)
    if isinstance(column.type, Uuid) and column.name != "id"
)
_JSON_AT = tuple(LEDGER_COLUMNS.index(name) for name in ("features", "tags"))
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


def _copy_rows(raw: Any, rows: Iterable[tuple[Any, ...]]) -> int:
    columns = ", ".join(LEDGER_COLUMNS)
    count = 0
    # UUIDs go as text, so psycopg's C dumpers format every value; organization, project and
    # key ids repeat within a batch, so each of those is formatted once.
    texts: dict[int, str] = {}
    dumps = orjson.dumps
    ids: list[str] = []
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY ledger_entries ({columns}) FROM STDIN") as copy:
            write_row = copy.write_row
            for row in rows:
                if not ids:
                    ids = _random_ids(_IDS_PER_DRAW)
                values = [ids.pop(), *row]
                for i in _UUIDS_AT:
                    value = values[i]
                    if value is not None:
                        number = value.int
                        text_ = texts.get(number)
                        if text_ is None:
                            text_ = texts[number] = str(value)
                        values[i] = text_
                for i in _JSON_AT:
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
