"""Ledger HTTP: batch ingest for an upstream gateway."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.kit.auth import Principal, Role
from app.kit.deps import SessionDep, SettingsDep, require_roles
from app.kit.errors import PayloadTooLarge
from app.ledger import service
from app.ledger.schemas import LedgerBatchIn, LedgerBatchOut

router = APIRouter(prefix="/v1/governance/ledger", tags=["ledger"])

# Generous for 10,000 events of a few hundred bytes each; the request guard (app.kit.guard)
# refuses a larger body before it is read (app.main wires the limit to this route).
MAX_BODY_BYTES = 32 * 1024 * 1024

Ingestor = Annotated[Principal, Depends(require_roles(Role.ADMIN))]

_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LedgerBatchIn"}}},
    }
}


@router.post(
    "/events",
    response_model=LedgerBatchOut,
    summary="Record a batch of request events (atomic, idempotent)",
    description=(
        "Up to `MIP_MAX_BATCH_EVENTS` (10,000) events. The whole batch is validated before "
        "anything is written, then written in one transaction. An identical re-send of a "
        "recorded `(project_id, request_id)` counts as a duplicate and changes nothing; a "
        "different event under the same ids is a 409 that names them. Needs a staff key "
        "with role `admin`."
    ),
    responses={
        400: {"description": "Invalid event (the message names the field)"},
        409: {"description": "Conflicting duplicate request id(s)"},
        413: {"description": "Too many events or too large a body"},
    },
    openapi_extra=_BATCH_BODY,
)
async def ingest_events(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    _principal: Ingestor,
) -> LedgerBatchOut:
    # The body is parsed and validated in one pass by pydantic-core (no intermediate Python
    # objects): the hot path of a 10,000-event batch. FastAPI's body parameter would
    # json.loads it first, then validate the objects.
    body = await request.body()
    # Validation runs in a worker thread: a large or hostile body must not stall the event
    # loop (and with it every other request and /healthz).
    batch = await run_in_threadpool(_parse_batch, body, settings.max_batch_events)
    result = await run_in_threadpool(
        service.ingest_batch, session, batch.events, sampling=request.app.state.sampling
    )
    return LedgerBatchOut(
        received=result.received,
        recorded=result.recorded,
        duplicates=result.duplicates,
        adjustments=result.adjustments,
    )


def _parse_batch(body: bytes, max_events: int) -> LedgerBatchIn:
    """The validated batch, or the 400 naming the first bad field (413: too many events)."""
    try:
        batch = LedgerBatchIn.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "too_long" and tuple(errors[0]["loc"]) == ("events",):
            raise _too_many(max_events) from None
        # Rendered like every other validation error: a 400 naming the field.
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from exc
    if len(batch.events) > max_events:
        raise _too_many(max_events, len(batch.events))
    return batch


def _too_many(limit: int, count: int | None = None) -> PayloadTooLarge:
    many = f"{count} events" if count is not None else "More events than that"
    return PayloadTooLarge(f"{many} in one batch; the limit is {limit}.")


def register_schemas(app: FastAPI) -> None:
    """Put the batch body's schema into the OpenAPI components (the route reads raw bytes)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        schema = LedgerBatchIn.model_json_schema(ref_template="#/components/schemas/{model}")
        components = document.setdefault("components", {}).setdefault("schemas", {})
        components.update(schema.pop("$defs", {}))
        components["LedgerBatchIn"] = schema
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
