"""Deepgram-compatible usage, request-log and billing shapes (as ``deepgram-sdk`` 7.17 reads them).

Query parameters arrive as the SDK sends them: lists as repeated keys (``tag=a&tag=b``),
booleans as ``true``/``false``, numbers possibly as ``"10.0"``. Unknown parameters are ignored,
as Deepgram does.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from app.consent.service import OptOutSource

Method = Literal["sync", "async", "streaming"]
Endpoint = Literal["listen", "read", "speak", "agent"]
Deployment = Literal["hosted", "beta", "self-hosted", "dedicated"]
RequestStatus = Literal["succeeded", "failed"]
UsageGrouping = Literal[
    "accessor", "endpoint", "feature_set", "models", "method", "tags", "deployment", "mip"
]
BillingGrouping = Literal["accessor", "deployment", "line_item", "tags"]
Label = Annotated[str, Field(min_length=1, max_length=128)]

# Deepgram's boolean feature filters (usage and usage/breakdown): ``X=true`` keeps requests whose
# feature list contains X, ``X=false`` those without it.
FEATURE_FILTERS: tuple[str, ...] = (
    "alternatives",
    "callback_method",
    "callback",
    "channels",
    "custom_intent_mode",
    "custom_intent",
    "custom_topic_mode",
    "custom_topic",
    "detect_entities",
    "detect_language",
    "diarize",
    "dictation",
    "encoding",
    "extra",
    "filler_words",
    "intents",
    "keyterm",
    "keywords",
    "language",
    "measurements",
    "multichannel",
    "numerals",
    "paragraphs",
    "profanity_filter",
    "punctuate",
    "redact",
    "replace",
    "sample_rate",
    "search",
    "sentiment",
    "smart_format",
    "summarize",
    "topics",
    "utt_split",
    "utterances",
    "version",
)

_DATE_HELP = "YYYY-MM-DD (a date `end` covers the whole day) or an ISO-8601 datetime"


# --- query parameters ---------------------------------------------------------------------------


class RequestListParams(BaseModel):
    start: str | None = Field(default=None, description=_DATE_HELP, max_length=64)
    end: str | None = Field(default=None, description=_DATE_HELP, max_length=64)
    limit: float = Field(default=10.0, ge=1, le=1000, allow_inf_nan=False, description="1..1000")
    page: float = Field(default=0.0, ge=0, allow_inf_nan=False, description="0-based page")
    accessor: uuid.UUID | None = Field(default=None, description="API key id")
    request_id: str | None = Field(default=None, max_length=128)
    deployment: Deployment | None = Field(default=None, description="This service: self-hosted")
    endpoint: Endpoint | None = None
    method: Method | None = None
    status: RequestStatus | None = Field(
        default=None, description="succeeded: HTTP status < 400; failed: ≥ 400"
    )


class _RangeParams(BaseModel):
    start: str | None = Field(default=None, description=_DATE_HELP + "; default: end - 30 days")
    end: str | None = Field(default=None, description=_DATE_HELP + "; default: today (UTC)")


class UsageParams(_RangeParams):
    accessor: uuid.UUID | None = Field(default=None, description="API key id")
    tag: list[Label] = Field(default_factory=list, description="Requests with any of these tags")
    method: Method | None = None
    model: str | None = Field(default=None, max_length=128, description="Model uuid or name")
    endpoint: Endpoint | None = None
    deployment: Deployment | None = None
    alternatives: bool | None = None
    callback_method: bool | None = None
    callback: bool | None = None
    channels: bool | None = None
    custom_intent_mode: bool | None = None
    custom_intent: bool | None = None
    custom_topic_mode: bool | None = None
    custom_topic: bool | None = None
    detect_entities: bool | None = None
    detect_language: bool | None = None
    diarize: bool | None = None
    dictation: bool | None = None
    encoding: bool | None = None
    extra: bool | None = None
    filler_words: bool | None = None
    intents: bool | None = None
    keyterm: bool | None = None
    keywords: bool | None = None
    language: bool | None = None
    measurements: bool | None = None
    multichannel: bool | None = None
    numerals: bool | None = None
    paragraphs: bool | None = None
    profanity_filter: bool | None = None
    punctuate: bool | None = None
    redact: bool | None = None
    replace: bool | None = None
    sample_rate: bool | None = None
    search: bool | None = None
    sentiment: bool | None = None
    smart_format: bool | None = None
    summarize: bool | None = None
    topics: bool | None = None
    utt_split: bool | None = None
    utterances: bool | None = None
    version: bool | None = None

    def feature_filters(self) -> dict[str, bool]:
        """The boolean feature filters that were given, by feature name."""
        given = {name: getattr(self, name) for name in FEATURE_FILTERS}
        return {name: value for name, value in given.items() if value is not None}


class UsageBreakdownParams(UsageParams):
    grouping: list[UsageGrouping] = Field(
        default_factory=list, description="Repeatable; `mip` (opted_in/opted_out) is ours"
    )


class RangeParams(_RangeParams):
    pass


class BillingBreakdownParams(_RangeParams):
    accessor: uuid.UUID | None = Field(default=None, description="API key id")
    deployment: Deployment | None = None
    tag: list[Label] = Field(default_factory=list, description="Requests with any of these tags")
    line_item: str | None = Field(
        default=None, max_length=300, description="`{method}::{model}`, e.g. `sync::general`"
    )
    grouping: list[BillingGrouping] = Field(default_factory=list, description="Repeatable")


# --- request log --------------------------------------------------------------------------------


class MipDetails(BaseModel):
    opted_out: bool
    source: OptOutSource
    list_usd: float
    discount_usd: float
    net_usd: float
    rate_per_minute_usd: float
    price_book_version: str
    sample_kept: bool


class RequestDetails(BaseModel):
    usd: float = Field(description="Net amount billed")
    duration: float = Field(description="Audio seconds")
    total_audio: float = Field(description="Audio seconds x channels")
    channels: int
    streams: int
    method: str
    models: list[str]
    tags: list[str]
    features: list[str]
    mip: MipDetails


class RequestResponseBody(BaseModel):
    details: RequestDetails
    code: int
    completed: dt.datetime


class ProjectRequestOut(BaseModel):
    request_id: str
    project_uuid: str
    created: dt.datetime
    path: str
    api_key_id: str | None
    response: RequestResponseBody
    code: int
    deployment: str
    callback: str | None


class RequestListOut(BaseModel):
    page: int
    limit: int
    requests: list[ProjectRequestOut]


class RequestOut(BaseModel):
    request: ProjectRequestOut


# --- usage --------------------------------------------------------------------------------------


class Resolution(BaseModel):
    units: str = "day"
    amount: int = 1


class UsageDayOut(BaseModel):
    start: str
    end: str
    hours: float = Field(description="Audio hours")
    total_hours: float = Field(description="Audio hours x channels")
    requests: int


class UsageTotalsOut(BaseModel):
    hours: float
    total_hours: float
    requests: int
    mip_opted_in_hours: float
    mip_opted_out_hours: float


class UsageOut(BaseModel):
    start: str
    end: str
    resolution: Resolution
    results: list[UsageDayOut]
    totals: UsageTotalsOut = Field(description="Extension: totals over the range, by MIP status")


class UsageGroupingOut(BaseModel):
    start: str
    end: str
    accessor: str | None = None
    endpoint: str | None = None
    feature_set: str | None = Field(default=None, description="Comma-separated, sorted")
    models: list[str] | None = None
    method: str | None = None
    tags: list[str] | None = None
    deployment: str | None = None
    mip: Literal["opted_in", "opted_out"] | None = Field(default=None, description="Extension")


class UsageBreakdownResultOut(BaseModel):
    hours: float
    total_hours: float
    agent_hours: float = 0
    tokens_in: float = 0
    tokens_out: float = 0
    tts_characters: float = 0
    requests: int
    grouping: UsageGroupingOut


class UsageBreakdownOut(BaseModel):
    start: str
    end: str
    resolution: Resolution
    results: list[UsageBreakdownResultOut]


class UsageFieldModelOut(BaseModel):
    name: str
    language: str | None
    version: str | None
    model_id: str


class UsageFieldsOut(BaseModel):
    tags: list[str]
    models: list[UsageFieldModelOut]
    processing_methods: list[str]
    features: list[str]


# --- billing ------------------------------------------------------------------------------------


class BillingGroupingOut(BaseModel):
    start: str
    end: str
    accessor: str | None = None
    deployment: str | None = None
    line_item: str | None = None
    tags: list[str] | None = None


class BillingBreakdownResultOut(BaseModel):
    dollars: float = Field(description="Net amount billed, USD")
    grouping: BillingGroupingOut


class BillingBreakdownOut(BaseModel):
    start: str
    end: str
    resolution: Resolution
    results: list[BillingBreakdownResultOut]


class BillingFieldsOut(BaseModel):
    accessors: list[str]
    deployments: list[str]
    tags: list[str]
    line_items: dict[str, str]
