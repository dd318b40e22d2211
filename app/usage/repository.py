"""Every usage query: filters, GROUP BY aggregates and distinct values, all inside the database.

Works on SQLite and PostgreSQL alike. The two differ in three places, each behind one helper:
the UTC day of a timestamp, the canonical text of a JSON list (the grouping key of ``tags`` and
``features``) and the set-returning function that turns a JSON list into rows.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Text,
    case,
    cast,
    exists,
    false,
    func,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import Label
from sqlalchemy.sql.selectable import TableValuedAlias

from app.kit.db import utc_day
from app.tables.ledger import LedgerEntry

L = LedgerEntry


@dataclass(frozen=True, slots=True)
class LedgerFilter:
    """Which ledger rows of one project a report covers. Every bound is optional."""

    project_id: uuid.UUID
    start: dt.datetime | None = None
    end: dt.datetime | None = None  # inclusive
    accessor: uuid.UUID | None = None
    request_id: str | None = None
    succeeded: bool | None = None
    endpoint: str | None = None
    method: str | None = None
    model: str | None = None
    line_item: tuple[str, str] | None = None  # (method, model name)
    any_tags: tuple[str, ...] = ()
    with_features: tuple[str, ...] = ()
    without_features: tuple[str, ...] = ()
    # A filter value that this service never records (e.g. deployment=hosted): no row matches.
    match_nothing: bool = False


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One group: its key values (by grouping name) and the sums over its rows."""

    keys: dict[str, Any] = field(default_factory=dict)
    requests: int = 0
    audio_seconds: float = 0.0
    channel_seconds: float = 0.0
    opted_in_seconds: float = 0.0
    opted_out_seconds: float = 0.0
    amount_micros: int = 0


@dataclass(frozen=True, slots=True)
class ModelField:
    name: str
    language: str | None
    version: str | None
    model_uuid: str | None


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _utc_day(session: Session) -> ColumnElement[str]:
    return utc_day(session, L.created_at)


def _json_list_text(session: Session, column: Any) -> ColumnElement[str]:
    """The list as canonical JSON text, so equal lists group together however they were written."""
    if _dialect(session) == "postgresql":
        return cast(cast(column, JSONB), Text)
    return func.json(column, type_=String)


def _elements(session: Session, column: Any) -> TableValuedAlias:
    """The JSON list's elements as rows with one column, ``value``."""
    if _dialect(session) == "postgresql":
        return func.json_array_elements_text(column).table_valued("value")
    return func.json_each(column).table_valued("value")


def _has_any(session: Session, column: Any, values: Sequence[str]) -> ColumnElement[bool]:
    elements = _elements(session, column)
    return exists(select(elements.c.value).where(elements.c.value.in_(values)))


def _conditions(session: Session, flt: LedgerFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [L.project_id == flt.project_id]
    if flt.match_nothing:
        where.append(false())
    if flt.start is not None:
        where.append(L.created_at >= flt.start)
    if flt.end is not None:
        where.append(L.created_at <= flt.end)
    if flt.accessor is not None:
        where.append(L.api_key_id == flt.accessor)
    if flt.request_id is not None:
        where.append(L.request_id == flt.request_id)
    if flt.succeeded is not None:
        where.append(L.http_status < 400 if flt.succeeded else L.http_status >= 400)
    if flt.endpoint is not None:
        where.append(L.endpoint == flt.endpoint)
    if flt.method is not None:
        where.append(L.method == flt.method)
    if flt.model is not None:
        where.append((L.model_uuid == flt.model) | (L.model_name == flt.model))
    if flt.line_item is not None:
        where.append((L.method == flt.line_item[0]) & (L.model_name == flt.line_item[1]))
    if flt.any_tags:
        where.append(_has_any(session, L.tags, flt.any_tags))
    for feature in flt.with_features:
        where.append(_has_any(session, L.features, [feature]))
    for feature in flt.without_features:
        where.append(~_has_any(session, L.features, [feature]))
    return where


def list_requests(
    session: Session, flt: LedgerFilter, *, limit: int, offset: int
) -> Sequence[LedgerEntry]:
    """Newest first; ties broken by request id so pages never overlap."""
    stmt = (
        select(L)
        .where(*_conditions(session, flt))
        .order_by(L.created_at.desc(), L.request_id.desc())
        .limit(limit)
        .offset(offset)
    )
    return session.scalars(stmt).all()


_GROUP_COLUMNS: dict[str, Callable[[Session], list[Any]]] = {
    "accessor": lambda _s: [L.api_key_id],
    "endpoint": lambda _s: [L.endpoint],
    "feature_set": lambda s: [_json_list_text(s, L.features)],
    "models": lambda _s: [L.model_name],
    "method": lambda _s: [L.method],
    "tags": lambda s: [_json_list_text(s, L.tags)],
    "mip": lambda _s: [L.mip_opt_out],
    "day": lambda s: [_utc_day(s)],
    "line_item": lambda _s: [L.method, L.model_name],
    "deployment": lambda _s: [],  # one deployment (self-hosted): nothing to group by
}


def _group_columns(session: Session, name: str) -> list[Label[Any]]:
    """The labelled SQL expressions that one grouping name groups by."""
    return [c.label(f"{name}_{i}") for i, c in enumerate(_GROUP_COLUMNS[name](session))]


def aggregate(
    session: Session, flt: LedgerFilter, *, groups: Sequence[str] = ()
) -> list[Aggregate]:
    """Sums per group (one GROUP BY query); with no groups, one row over everything matched.

    Group keys come back by name: ``line_item`` as ``(method, model)``, ``tags`` and
    ``feature_set`` as canonical JSON text, the others as their column values.
    """
    keyed = {name: _group_columns(session, name) for name in groups}
    key_columns = [c for columns in keyed.values() for c in columns]
    stmt: Select[Any] = select(
        *key_columns,
        func.count().label("requests"),
        func.coalesce(func.sum(L.duration_seconds), 0.0).label("audio_seconds"),
        func.coalesce(func.sum(L.duration_seconds * L.channels), 0.0).label("channel_seconds"),
        func.coalesce(func.sum(case((L.mip_opt_out, 0.0), else_=L.duration_seconds)), 0.0).label(
            "opted_in_seconds"
        ),
        func.coalesce(func.sum(case((L.mip_opt_out, L.duration_seconds), else_=0.0)), 0.0).label(
            "opted_out_seconds"
        ),
        func.coalesce(func.sum(L.amount_micros), 0).label("amount_micros"),
    ).where(*_conditions(session, flt))
    if key_columns:
        stmt = stmt.group_by(*key_columns).order_by(*(c.asc().nulls_last() for c in key_columns))
    out = []
    for row in session.execute(stmt):
        keys: dict[str, Any] = {}
        for name, columns in keyed.items():
            values = [row._mapping[c.name] for c in columns]
            keys[name] = tuple(values) if len(values) > 1 else (values[0] if values else None)
        out.append(
            Aggregate(
                keys=keys,
                requests=int(row.requests),
                audio_seconds=float(row.audio_seconds),
                channel_seconds=float(row.channel_seconds),
                opted_in_seconds=float(row.opted_in_seconds),
                opted_out_seconds=float(row.opted_out_seconds),
                amount_micros=int(row.amount_micros),
            )
        )
    return out


def distinct_list_elements(session: Session, flt: LedgerFilter, *, column: str) -> list[str]:
    """Every distinct element of the JSON list column ``tags`` or ``features``, sorted."""
    source = {"tags": L.tags, "features": L.features}[column]
    elements = _elements(session, source)
    value = cast(elements.c.value, String)
    stmt = (
        select(value)
        .select_from(L)
        .join(elements, true())
        .where(*_conditions(session, flt))
        .distinct()
        .order_by(value)
    )
    return [str(v) for v in session.scalars(stmt)]


def distinct_models(session: Session, flt: LedgerFilter) -> list[ModelField]:
    stmt = (
        select(L.model_name, L.language, L.model_version, L.model_uuid)
        .where(*_conditions(session, flt))
        .distinct()
        .order_by(L.model_name, L.language, L.model_version, L.model_uuid)
    )
    return [ModelField(*row) for row in session.execute(stmt)]


def distinct_methods(session: Session, flt: LedgerFilter) -> list[str]:
    stmt = select(L.method).where(*_conditions(session, flt)).distinct().order_by(L.method)
    return list(session.scalars(stmt))


def distinct_accessors(session: Session, flt: LedgerFilter) -> list[uuid.UUID]:
    stmt = (
        select(L.api_key_id)
        .where(*_conditions(session, flt), L.api_key_id.is_not(None))
        .distinct()
        .order_by(L.api_key_id)
    )
    return [k for k in session.scalars(stmt) if k is not None]


def distinct_line_items(session: Session, flt: LedgerFilter) -> list[tuple[str, str]]:
    stmt = (
        select(L.method, L.model_name)
        .where(*_conditions(session, flt))
        .distinct()
        .order_by(L.method, L.model_name)
    )
    return [(method, model) for method, model in session.execute(stmt)]
