"""``POST /v1/listen``: Deepgram-compatible pre-recorded transcription."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from app.kit.auth import Principal, Scope
from app.kit.context import current_request_id
from app.kit.db import utcnow
from app.kit.deps import CurrentPrincipal, SessionDep
from app.kit.errors import (
    INTERNAL_ERROR,
    BadRequest,
    Forbidden,
    MIPError,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from app.kit.guard import BodyRefused
from app.kit.limits import ActiveRequests
from app.kit.settings import Settings
from app.kit.text import ascii_number
from app.listen import service
from app.listen.params import APPLIED, MODEL_FEATURES, REFUSED, SERVED_TIER, parse_listen_params
from app.listen.remote import fetch_audio
from app.listen.schemas import ListenResponse, UrlSource

log = logging.getLogger("mip.listen")
router = APIRouter(tags=["listen"])


def _names(names: Iterable[str]) -> str:
    return ", ".join(f"`{name}`" for name in sorted(names))


# Built from the parameter tables themselves, so the OpenAPI text cannot drift from the code.
_PARAMS_DOC = (
    f"Query parameters as Deepgram's. Applied: {_names(APPLIED)} (`mip_opt_out`: "
    "true/false/1/0; absent = opted in unless the contract opts out). "
    f"`tier`: only `{SERVED_TIER}`, the tier of every installed model (another is the 400 for "
    "a missing model). "
    f"Need a feature model of their own, 400 naming it when it is not installed: "
    f"{_names(MODEL_FEATURES)}. Refused (400 saying why): {_names(REFUSED)}. "
    "Any other parameter is a 400."
)


def listener(principal: CurrentPrincipal) -> Principal:
    if principal.is_staff or principal.project_id is None:
        raise Forbidden("Transcription needs a project API key.")
    if Scope.LISTEN not in principal.scopes:
        raise Forbidden("This key lacks the 'listen' scope.")
    return principal


Listener = Annotated[Principal, Depends(listener)]


@router.post(
    "/v1/listen",
    response_model=ListenResponse,
    summary="Transcribe pre-recorded audio",
    description=(
        "Body: raw audio (`Content-Type: audio/*` or `application/octet-stream`; WAV, FLAC, "
        'OGG or MP3), or JSON `{"url": …}` when URL sources are enabled. ' + _PARAMS_DOC
    ),
    openapi_extra={
        "requestBody": {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "audio/*": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": UrlSource.model_json_schema()},
            },
            "required": True,
        }
    },
    responses={
        400: {"description": "Bad parameter, undecodable audio, no such model"},
        401: {"description": "Missing or invalid key"},
        403: {"description": "Not a project key with the listen scope"},
        413: {"description": "Audio too large or too long"},
        415: {"description": "Unsupported Content-Type"},
        408: {"description": "The audio arrived too slowly"},
        429: {"description": "Too many concurrent requests (overall, or the organization's)"},
    },
)
async def listen(request: Request, session: SessionDep, principal: Listener) -> Response:
    settings: Settings = request.app.state.settings
    runtime: service.ListenRuntime = request.app.state.listen
    limiter: ActiveRequests = request.app.state.listen_limiter
    job = service.ListenRequest(
        request_id=current_request_id(), principal=principal, created=utcnow()
    )
    acquired = False
    try:
        job.params = parse_listen_params(request.query_params.multi_items())
        # The slot is taken once the body is in: a slow or stalled upload (cut off by the
        # request guard's pace rules) holds no transcription slot, and one organization
        # holds at most its share of them.
        audio = await _read_audio(request, settings)
        limiter.acquire(principal.organization_id)
        acquired = True
        body = await run_in_threadpool(service.transcribe, session, runtime, job, audio)
    except (MIPError, BodyRefused) as exc:
        err = exc.error if isinstance(exc, BodyRefused) else exc
        await run_in_threadpool(_record_failure, session, runtime, job, err.status_code)
        return JSONResponse(err.body(job.request_id), status_code=err.status_code)
    except Exception:
        # Not ours (a client gone mid-upload, a bug): still one ledger row, then the 500. It is
        # answered here, not re-raised: a raise would roll the session back, row and all.
        log.exception("listen request failed", extra={"fields": {"request_id": job.request_id}})
        await run_in_threadpool(_record_failure, session, runtime, job, 500)
        return JSONResponse(MIPError(INTERNAL_ERROR).body(job.request_id), status_code=500)
    finally:
        if acquired:
            limiter.release(principal.organization_id)
    return Response(orjson.dumps(body), media_type="application/json")


def _record_failure(
    session: Session, runtime: service.ListenRuntime, job: service.ListenRequest, status: int
) -> None:
    session.rollback()  # nothing of the failed attempt stays, only its ledger row
    service.record_failure(session, runtime, job, status)


async def _read_audio(request: Request, settings: Settings) -> bytes:
    media_type = request.headers.get("content-type", "application/octet-stream")
    media_type = media_type.split(";")[0].strip().lower()
    limit = settings.listen_max_audio_bytes
    if media_type == "application/json":
        source = await _read_body(request, 64 * 1024)
        return await _fetch(source, settings)
    if not (media_type.startswith("audio/") or media_type == "application/octet-stream"):
        raise UnsupportedMediaType(
            'Send audio as audio/* or application/octet-stream, or JSON {"url": …}.'
        )
    audio = await _read_body(request, limit)
    if not audio:
        raise BadRequest("The request body is empty: send the audio bytes.")
    return audio


async def _read_body(request: Request, limit: int) -> bytes:
    length = ascii_number(request.headers.get("content-length", ""))
    if length is not None and length > limit:
        raise PayloadTooLarge(f"Request body over {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"Request body over {limit} bytes.")
    return bytes(body)


async def _fetch(source: bytes, settings: Settings) -> bytes:
    try:
        parsed: Any = orjson.loads(source)
    except orjson.JSONDecodeError:
        raise BadRequest("The JSON body is not valid JSON.") from None
    if not isinstance(parsed, dict) or set(parsed) != {"url"} or not isinstance(parsed["url"], str):
        raise BadRequest('A JSON body must be {"url": "https://…"}.')
    if not settings.listen_url_enabled:
        raise BadRequest("URL sources are disabled on this service: send the audio bytes.")
    return await run_in_threadpool(
        fetch_audio,
        parsed["url"],
        max_bytes=settings.listen_max_audio_bytes,
        timeout=settings.listen_url_timeout_seconds,
        allow_private=settings.listen_url_allow_private,
    )
