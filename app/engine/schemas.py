"""Bodies of ``GET /v1/models`` and ``GET /v1/models/{model_id}``, as the Deepgram SDK reads them.

Field for field the SDK's ``ListModelsV1Response`` and ``GetModelV1ResponseBatch``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.engine.registry import LoadedModel


class SttModelRead(BaseModel):
    name: str = Field(description="the short name a request may use (the first alias)")
    canonical_name: str = Field(description="the model's full name, e.g. ctcconformer-general")
    architecture: str
    languages: list[str]
    version: str = Field(description="YYYY-MM-DD.N")
    uuid: str
    batch: bool
    streaming: bool
    formatted_output: bool = Field(description="whether the model punctuates and cases itself")

    @classmethod
    def of(cls, loaded: LoadedModel) -> SttModelRead:
        m = loaded.manifest
        return cls(
            name=m.aliases[0] if m.aliases else m.name,
            canonical_name=m.name,
            architecture=m.architecture,
            languages=list(m.languages),
            version=m.version,
            uuid=m.uuid,
            batch=m.mode == "batch",
            streaming=m.mode == "streaming",
            formatted_output=m.formatted,
        )


class TtsModelMetadata(BaseModel):
    accent: str | None = None
    age: str | None = None
    color: str | None = None
    image: str | None = None
    sample: str | None = None
    tags: list[str] | None = None
    use_cases: list[str] | None = None


class TtsModelRead(BaseModel):
    name: str
    canonical_name: str
    architecture: str
    languages: list[str]
    version: str
    uuid: str
    metadata: TtsModelMetadata | None = None


class ModelsRead(BaseModel):
    stt: list[SttModelRead]
    tts: list[TtsModelRead] = Field(
        default_factory=list, description="always empty: this service has no text-to-speech"
    )
