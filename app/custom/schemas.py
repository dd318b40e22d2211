"""Custom-model input and output shapes."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field

from app.tables.custom import CustomModel


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

    @classmethod
    def of(cls, model: CustomModel) -> CustomModelRead:
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
        )


class CustomModelList(BaseModel):
    models: list[CustomModelRead]
    total: int
    page: int
    limit: int
