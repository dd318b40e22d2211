"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.kit.context import current_request_id
from migrations.run import current_heads

router = APIRouter(tags=["health"])


class HealthRead(BaseModel):
    status: str


class ReadyRead(BaseModel):
    status: str
    database: str
    schema_revision: str | None


@router.get("/healthz", response_model=HealthRead, summary="Liveness: the process answers")
def healthz() -> HealthRead:
    return HealthRead(status="ok")


@router.get(
    "/readyz",
    response_model=ReadyRead,
    summary="Readiness: the database answers and its schema is current",
    responses={503: {"description": "Not ready (Deepgram error body)"}},
)
def readyz(request: Request) -> ReadyRead | JSONResponse:
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    try:
        with factory() as session:
            session.execute(text("SELECT 1"))
            revision = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return JSONResponse(
            {
                "err_code": "NOT_READY",
                "err_msg": "The database is unreachable or not migrated; run `mip migrate`.",
                "request_id": current_request_id(),
            },
            status_code=503,
        )
    if revision not in current_heads():
        return JSONResponse(
            {
                "err_code": "NOT_READY",
                "err_msg": f"Database schema is at {revision}; run `mip migrate`.",
                "request_id": current_request_id(),
            },
            status_code=503,
        )
    return ReadyRead(status="ready", database="ok", schema_revision=revision)
