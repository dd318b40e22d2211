"""Custom-model input and output shapes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.tables.custom import CustomDataFile, CustomModel


class CustomModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=64,
        description="Unique per reseller: lower-case letters, digits and dashes",
        examples=["clinic-notes"],
    )
    description: str = Field(default="", max_length=1000)
    language: str = Field(min_length=2, max_length=16, examples=["en"])
    domain: str = Field(
        min_length=1, max_length=64, description="e.g. medical, finance", examples=["medical"]
    )
    base_model: str | None = Field(
        default=None,
        max_length=128,
        description="The served model to start from (name, alias or uuid); default: the "
        "service's default model",
    )
    reseller_id: uuid.UUID | None = Field(
        default=None, description="Staff admins only: the reseller that owns the model"
    )


class DataSetRead(BaseModel):
    hash: str = Field(description="SHA-256 over the accepted files (ids, audio, transcripts)")
    files: int
    hours: float
    confirmed_at: dt.datetime
    confirmed_by: str

    @classmethod
    def of(cls, model: CustomModel) -> DataSetRead | None:
        if model.data_hash is None or model.data_confirmed_at is None:
            return None
        return cls(
            hash=model.data_hash,
            files=model.data_files or 0,
            hours=round((model.data_seconds or 0.0) / 3600, 6),
            confirmed_at=model.data_confirmed_at,
            confirmed_by=model.data_confirmed_by or "",
        )


class BaseModelRead(BaseModel):
    name: str
    version: str
    uuid: str


class CustomModelRead(BaseModel):
    id: uuid.UUID
    reseller_id: uuid.UUID
    name: str
    description: str
    language: str
    domain: str
    base_model: BaseModelRead
    status: str = Field(
        description="collecting, validating, ready_to_train, training, testing, published, "
        "failed or archived"
    )
    created_at: dt.datetime
    updated_at: dt.datetime
    created_by: str
    archived_at: dt.datetime | None
    data_set: DataSetRead | None = Field(
        default=None, description="The confirmed (frozen) data set; null until confirmed"
    )
    published_version: int | None = Field(
        default=None, description="The version served now (null: none is published)"
    )

    @classmethod
    def of(cls, model: CustomModel, *, published: int | None = None) -> CustomModelRead:
        return cls(
            id=model.id,
            reseller_id=model.reseller_id,
            name=model.name,
            description=model.description,
            language=model.language,
            domain=model.domain,
            base_model=BaseModelRead(
                name=model.base_model_name,
                version=model.base_model_version,
                uuid=model.base_model_uuid,
            ),
            status=model.status,
            created_at=model.created_at,
            updated_at=model.updated_at,
            created_by=model.created_by,
            archived_at=model.archived_at,
            data_set=DataSetRead.of(model),
            published_version=published,
        )


class CustomModelList(BaseModel):
    models: list[CustomModelRead]
    total: int
    page: int
    limit: int


class ReasonRead(BaseModel):
    code: str = Field(
        description="undecodable, too_short, too_long, duplicate_audio, no_transcript, "
        "not_normalisable, implausible_rate or transcript_mismatch"
    )
    message: str


class DataFileRead(BaseModel):
    id: uuid.UUID
    model_id: uuid.UUID
    name: str
    speaker: str | None
    status: str = Field(description="accepted, rejected or removed")
    reasons: list[ReasonRead]
    audio_format: str | None
    duration_seconds: float | None
    sample_rate: int | None
    channels: int | None
    snr_db: float | None
    chars_per_second: float | None
    loss_per_char: float | None = Field(
        description="The base model's CTC loss per character of the transcript (high: likely "
        "a wrong transcript); null when not scored"
    )
    audio_bytes: int
    uploaded_by: str
    created_at: dt.datetime
    removed_at: dt.datetime | None

    @classmethod
    def of(cls, record: CustomDataFile) -> DataFileRead:
        return cls(
            id=record.id,
            model_id=record.model_id,
            name=record.name,
            speaker=record.speaker,
            status=record.status,
            reasons=[ReasonRead(**reason) for reason in record.reasons],
            audio_format=record.audio_format,
            duration_seconds=record.duration_seconds,
            sample_rate=record.sample_rate,
            channels=record.channels,
            snr_db=record.snr_db,
            chars_per_second=record.chars_per_second,
            loss_per_char=record.loss_per_char,
            audio_bytes=record.audio_bytes,
            uploaded_by=record.uploaded_by,
            created_at=record.created_at,
            removed_at=record.removed_at,
        )


class DataFileList(BaseModel):
    files: list[DataFileRead]
    report: dict[str, Any] = Field(
        description="files; accepted and rejected (files, hours); by_reason (files, hours)"
    )


class ArchiveProblemRead(BaseModel):
    name: str = Field(description="The entry's name in the archive")
    code: str = Field(
        description="unsafe_path, link, audio_without_transcript, transcript_without_audio, "
        "unsupported_file, duplicate_name, bad_manifest_row, not_utf8, entry_too_large, "
        "unreadable_entry or unstorable_text"
    )
    message: str
    line: int | None = Field(description="The manifest line, for a bad row")


class ArchiveUploadRead(BaseModel):
    format: str = Field(description="zip, tar or tar.gz")
    mode: str = Field(description="names (audio beside its .txt) or manifest")
    files: list[DataFileRead] = Field(description="Every pair taken, accepted or rejected")
    problems: list[ArchiveProblemRead] = Field(description="Every entry that was not used")
    report: dict[str, Any] = Field(description="The model's whole data set after this upload")


class UploadRead(BaseModel):
    id: uuid.UUID
    model_id: uuid.UUID
    status: str = Field(
        description="uploading; validating (all bytes received, the archive being read); "
        "complete or failed"
    )
    upload_length: int
    upload_offset: int
    metadata: dict[str, str]
    result: dict[str, Any] | None = Field(
        description="complete: format, mode, files (ids), accepted, rejected, problems; "
        "failed: error"
    )
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
