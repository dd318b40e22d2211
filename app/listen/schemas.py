"""Response shapes of /v1/listen (the official SDK's ``ListenV1Response``), for OpenAPI."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UrlSource(BaseModel):
    url: str = Field(description="http(s) URL of the audio (when URL sources are enabled)")


class ModelInfo(BaseModel):
    name: str
    version: str
    arch: str


class ListenMetadata(BaseModel):
    transaction_key: str = "deprecated"
    request_id: str
    sha256: str = Field(description="SHA-256 of the audio bytes")
    created: str = Field(description="ISO-8601 UTC")
    duration: float = Field(description="Seconds of audio")
    channels: int
    models: list[str] = Field(description="uuids of the models used")
    model_info: dict[str, ModelInfo]
    extra: dict[str, str] | None = None


class ListenWord(BaseModel):
    word: str
    start: float
    end: float
    confidence: float
    punctuated_word: str


class ListenAlternative(BaseModel):
    transcript: str
    confidence: float
    words: list[ListenWord]


class ListenChannel(BaseModel):
    alternatives: list[ListenAlternative]


class ListenUtterance(BaseModel):
    start: float
    end: float
    confidence: float
    channel: int
    transcript: str
    words: list[ListenWord]
    id: str


class ListenResults(BaseModel):
    channels: list[ListenChannel]
    utterances: list[ListenUtterance] | None = None


class ListenResponse(BaseModel):
    metadata: ListenMetadata
    results: ListenResults
