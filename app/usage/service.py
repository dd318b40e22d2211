"""Deepgram-compatible request logs, usage and billing reports over the ledger.

Every report runs as GROUP BY queries in the database (:mod:`app.usage.repository`); this module
parses the query (dates, filters, groupings), checks access, and renders Deepgram's shapes.
Money stays integer micro-dollars until the response, where Deepgram's shapes want USD floats.

Dates: ``start``/``end`` are ``YYYY-MM-DD`` or ISO-8601 datetimes (naive ones are UTC). A date
``end`` covers its whole day; ``end`` is always inclusive.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.orm import Session

from app.consent.service import OptOutSource
from app.kit.db import utcnow
from app.kit.errors import BadRequest
from app.kit.money import micros_to_usd_float
from app.ledger import service as ledger_service
from app.tables.ledger import LedgerEntry
from app.tables.tenancy import Project
from app.usage import repository
from app.usage.repository import Aggregate, LedgerFilter
from app.usage.schemas import (
    BillingBreakdownOut,
    BillingBreakdownParams,
    BillingBreakdownResultOut,
    BillingFieldsOut,
    BillingGroupingOut,
    MipDetails,
    ProjectRequestOut,
    RangeParams,
    RequestDetails,
    RequestListOut,
    RequestListParams,
    RequestOut,
    RequestResponseBody,
    Resolution,
    UsageBreakdownOut,
    UsageBreakdownParams,
    UsageBreakdownResultOut,
    UsageDayOut,
    UsageFieldModelOut,
    UsageFieldsOut,
    UsageGroupingOut,
    UsageOut,
    UsageParams,
    UsageTotalsOut,
)

DEPLOYMENT = "self-hosted"  # the only deployment this service records
DEFAULT_RANGE_DAYS = 30
_ENDPOINT_PATHS = {"listen": "/v1/listen"}  # read/speak/agent are not served here
_ENDPOINT_NAMES = {path: name for name, path in _ENDPOINT_PATHS.items()}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAX_OFFSET = 2**62  # past this no page can hold rows; also keeps OFFSET inside BIGINT
_METHOD_LABELS = {
    "sync": "Pre-recorded (sync)",
    "async": "Pre-recorded (async, callback)",
    "streaming": "Streaming",
}


class InvalidUsageQuery(BadRequest):
    """A usage, request-log or billing query parameter that cannot be used."""


@dataclass(frozen=True, slots=True)
class Bound:
    """One end of a date range: the UTC moment, and how the response spells it."""

    moment: dt.datetime
    label: str


def parse_bound(value: str, *, name: str, is_end: bool) -> Bound:
    """``YYYY-MM-DD`` (a whole day; an end is its last microsecond) or an ISO-8601 datetime."""
    text = value.strip()
    try:
        if _DATE.match(text):
            day = dt.date.fromisoformat(text)
            moment = dt.datetime.combine(day, dt.time.max if is_end else dt.time.min, dt.UTC)
            return Bound(moment, day.isoformat())
        moment = dt.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        moment = moment.astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidUsageQuery(
            f"Invalid '{name}' {value!r}: use YYYY-MM-DD or an ISO-8601 datetime "
            "(e.g. 2024-01-31T23:59:59Z)."
        ) from exc
    return Bound(moment, moment.isoformat().replace("+00:00", "Z"))


def _check_order(start: Bound | None, end: Bound | None) -> None:
    if start is not None and end is not None and start.moment > end.moment:
        raise InvalidUsageQuery(f"'start' ({start.label}) is after 'end' ({end.label}).")


def _optional_bound(value: str | None, *, name: str, is_end: bool) -> Bound | None:
    return None if value is None else parse_bound(value, name=name, is_end=is_end)


def resolve_range(start: str | None, end: str | None) -> tuple[Bound, Bound]:
    """The report range; by default the 30 days before ``end``, and ``end`` defaults to today."""
    end_bound = _optional_bound(end, name="end", is_end=True)
    if end_bound is None:
        end_bound = parse_bound(utcnow().date().isoformat(), name="end", is_end=True)
    start_bound = _optional_bound(start, name="start", is_end=False)
    if start_bound is None:
        end_day = end_bound.moment.date()
        first = dt.date.min
        if end_day - dt.date.min > dt.timedelta(days=DEFAULT_RANGE_DAYS):
            first = end_day - dt.timedelta(days=DEFAULT_RANGE_DAYS)
        start_bound = parse_bound(first.isoformat(), name="start", is_end=False)
    _check_order(start_bound, end_bound)
    return start_bound, end_bound


def _whole(value: float, *, name: str) -> int:
    if not value.is_integer():
        raise InvalidUsageQuery(f"'{name}' must be a whole number, not {value}.")
    return int(value)


def _endpoint_path(endpoint: str | None) -> tuple[str | None, bool]:
    """(ledger endpoint to match, whether nothing can match)."""
    if endpoint is None:
        return None, False
    path = _ENDPOINT_PATHS.get(endpoint)
    return path, path is None


def _parse_line_item(value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    method, sep, model = value.partition("::")
    if not sep or not method or not model:
        raise InvalidUsageQuery(
            f"Invalid 'line_item' {value!r}: use '{{method}}::{{model}}', e.g. 'sync::general'."
        )
    return method, model


def hours(seconds: float) -> float:
    return seconds / 3600


# --- request log --------------------------------------------------------------------------------


def _request_out(entry: LedgerEntry) -> ProjectRequestOut:
    details = RequestDetails(
        usd=micros_to_usd_float(entry.amount_micros),
        duration=entry.duration_seconds,
        total_audio=entry.duration_seconds * entry.channels,
        channels=entry.channels,
        streams=1,
        method=entry.method,
        models=[entry.model_uuid or entry.model_name],
        tags=list(entry.tags),
        features=list(entry.features),
        mip=MipDetails(
            opted_out=entry.mip_opt_out,
            source=cast(OptOutSource, entry.opt_out_source),  # the table's check constraint
            list_usd=micros_to_usd_float(entry.list_amount_micros),
            discount_usd=micros_to_usd_float(entry.discount_micros),
            net_usd=micros_to_usd_float(entry.amount_micros),
            rate_per_minute_usd=micros_to_usd_float(entry.rate_micros_per_minute),
            price_book_version=entry.price_book_version,
            sample_kept=entry.sample_kept,
        ),
    )
    return ProjectRequestOut(
        request_id=entry.request_id,
        project_uuid=str(entry.project_id),
        created=entry.created_at,
        path=entry.endpoint,
        api_key_id=str(entry.api_key_id) if entry.api_key_id else None,
        response=RequestResponseBody(
            details=details, code=entry.http_status, completed=entry.created_at
        ),
        code=entry.http_status,
        deployment=DEPLOYMENT,
        callback=None,
    )


def list_requests(session: Session, project: Project, params: RequestListParams) -> RequestListOut:
    limit = _whole(params.limit, name="limit")
    page = _whole(params.page, name="page")
    start = _optional_bound(params.start, name="start", is_end=False)
    end = _optional_bound(params.end, name="end", is_end=True)
    _check_order(start, end)
    endpoint, no_endpoint = _endpoint_path(params.endpoint)
    flt = LedgerFilter(
        project_id=project.id,
        start=start.moment if start else None,
        end=end.moment if end else None,
        accessor=params.accessor,
        request_id=params.request_id,
        succeeded=None if params.status is None else params.status == "succeeded",
        endpoint=endpoint,
        method=params.method,
        match_nothing=no_endpoint or params.deployment not in (None, DEPLOYMENT),
    )
    offset = page * limit
    rows: Sequence[LedgerEntry] = []
    if offset <= _MAX_OFFSET:
        rows = repository.list_requests(session, flt, limit=limit, offset=offset)
    return RequestListOut(page=page, limit=limit, requests=[_request_out(r) for r in rows])


def get_request(session: Session, project: Project, request_id: str) -> RequestOut:
    entry = ledger_service.get_entry_or_raise(session, project_id=project.id, request_id=request_id)
    return RequestOut(request=_request_out(entry))


# --- usage --------------------------------------------------------------------------------------


def _usage_filter(
    project_id: uuid.UUID, params: UsageParams, start: Bound, end: Bound
) -> LedgerFilter:
    endpoint, no_endpoint = _endpoint_path(params.endpoint)
    features = params.feature_filters()
    return LedgerFilter(
        project_id=project_id,
        start=start.moment,
        end=end.moment,
        accessor=params.accessor,
        endpoint=endpoint,
        method=params.method,
        model=params.model,
        any_tags=tuple(params.tag),
        with_features=tuple(name for name, on in features.items() if on),
        without_features=tuple(name for name, on in features.items() if not on),
        match_nothing=no_endpoint or params.deployment not in (None, DEPLOYMENT),
    )


def get_usage(session: Session, project: Project, params: UsageParams) -> UsageOut:
    start, end = resolve_range(params.start, params.end)
    flt = _usage_filter(project.id, params, start, end)
    days = repository.aggregate(session, flt, groups=("day",))
    (total,) = repository.aggregate(session, flt)
    return UsageOut(
        start=start.label,
        end=end.label,
        resolution=Resolution(),
        results=[
            UsageDayOut(
                start=day.keys["day"],
                end=day.keys["day"],
                hours=hours(day.audio_seconds),
                total_hours=hours(day.channel_seconds),
                requests=day.requests,
            )
            for day in days
        ],
        totals=UsageTotalsOut(
            hours=hours(total.audio_seconds),
            total_hours=hours(total.channel_seconds),
            requests=total.requests,
            mip_opted_in_hours=hours(total.opted_in_seconds),
            mip_opted_out_hours=hours(total.opted_out_seconds),
        ),
    )


def _json_list(text: Any) -> list[str]:
    return [str(v) for v in json.loads(text)] if text is not None else []


def _usage_grouping(group: Aggregate, start: Bound, end: Bound) -> UsageGroupingOut:
    keys = group.keys
    out = UsageGroupingOut(start=start.label, end=end.label)
    if "accessor" in keys:
        out.accessor = str(keys["accessor"]) if keys["accessor"] is not None else None
    if "endpoint" in keys:
        out.endpoint = _ENDPOINT_NAMES.get(keys["endpoint"], keys["endpoint"])
    if "feature_set" in keys:
        out.feature_set = ",".join(_json_list(keys["feature_set"]))
    if "models" in keys:
        out.models = [keys["models"]]
    if "method" in keys:
        out.method = keys["method"]
    if "tags" in keys:
        out.tags = _json_list(keys["tags"])
    if "deployment" in keys:
        out.deployment = DEPLOYMENT
    if "mip" in keys:
        out.mip = "opted_out" if keys["mip"] else "opted_in"
    return out


def get_usage_breakdown(
    session: Session, project: Project, params: UsageBreakdownParams
) -> UsageBreakdownOut:
    start, end = resolve_range(params.start, params.end)
    flt = _usage_filter(project.id, params, start, end)
    groups = repository.aggregate(session, flt, groups=tuple(dict.fromkeys(params.grouping)))
    return UsageBreakdownOut(
        start=start.label,
        end=end.label,
        resolution=Resolution(),
        results=[
            UsageBreakdownResultOut(
                hours=hours(group.audio_seconds),
                total_hours=hours(group.channel_seconds),
                requests=group.requests,
                grouping=_usage_grouping(group, start, end),
            )
            for group in groups
        ],
    )


def get_usage_fields(session: Session, project: Project, params: RangeParams) -> UsageFieldsOut:
    start, end = resolve_range(params.start, params.end)
    flt = LedgerFilter(project_id=project.id, start=start.moment, end=end.moment)
    return UsageFieldsOut(
        tags=repository.distinct_list_elements(session, flt, column="tags"),
        models=[
            UsageFieldModelOut(
                name=m.name,
                language=m.language,
                version=m.version,
                model_id=m.model_uuid or m.name,
            )
            for m in repository.distinct_models(session, flt)
        ],
        processing_methods=repository.distinct_methods(session, flt),
        features=repository.distinct_list_elements(session, flt, column="features"),
    )


# --- billing ------------------------------------------------------------------------------------


def _billing_grouping(group: Aggregate, start: Bound, end: Bound) -> BillingGroupingOut:
    keys = group.keys
    out = BillingGroupingOut(start=start.label, end=end.label)
    if "accessor" in keys:
        out.accessor = str(keys["accessor"]) if keys["accessor"] is not None else None
    if "deployment" in keys:
        out.deployment = DEPLOYMENT
    if "line_item" in keys:
        method, model = keys["line_item"]
        out.line_item = f"{method}::{model}"
    if "tags" in keys:
        out.tags = _json_list(keys["tags"])
    return out


def get_billing_breakdown(
    session: Session, project: Project, params: BillingBreakdownParams
) -> BillingBreakdownOut:
    start, end = resolve_range(params.start, params.end)
    flt = LedgerFilter(
        project_id=project.id,
        start=start.moment,
        end=end.moment,
        accessor=params.accessor,
        any_tags=tuple(params.tag),
        line_item=_parse_line_item(params.line_item),
        match_nothing=params.deployment not in (None, DEPLOYMENT),
    )
    groups = repository.aggregate(session, flt, groups=tuple(dict.fromkeys(params.grouping)))
    return BillingBreakdownOut(
        start=start.label,
        end=end.label,
        resolution=Resolution(),
        results=[
            BillingBreakdownResultOut(
                dollars=micros_to_usd_float(group.amount_micros),
                grouping=_billing_grouping(group, start, end),
            )
            for group in groups
        ],
    )


def get_billing_fields(session: Session, project: Project, params: RangeParams) -> BillingFieldsOut:
    start, end = resolve_range(params.start, params.end)
    flt = LedgerFilter(project_id=project.id, start=start.moment, end=end.moment)
    return BillingFieldsOut(
        accessors=[str(k) for k in repository.distinct_accessors(session, flt)],
        deployments=[DEPLOYMENT],
        tags=repository.distinct_list_elements(session, flt, column="tags"),
        line_items={
            f"{method}::{model}": f"{_METHOD_LABELS.get(method, method)} transcription, "
            f"model {model}"
            for method, model in repository.distinct_line_items(session, flt)
        },
    )
