"""HTTP plumbing: request ids, access log, and the one rendering of every error."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.kit.context import current_request_id, request_id_var
from app.kit.errors import HTTP_ERROR_CODES, INTERNAL_ERROR, MIPError
from app.kit.guard import BodyRefused

log = logging.getLogger("mip.http")

REQUEST_ID_HEADER = "dg-request-id"


def error_response(status: int, err_code: str, message: str, **extra: Any) -> Response:
    body = {"err_code": err_code, "err_msg": message, "request_id": current_request_id(), **extra}
    return JSONResponse(body, status_code=status)


class RequestContextMiddleware:
    """Gives every request an id (``dg-request-id``), logs one access line, catches crashes.

    Pure ASGI (no BaseHTTPMiddleware) to keep the ingest path cheap. The access line holds the
    path without its query string, and never headers or bodies.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_holder = {"status": 500, "sent": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["sent"] = True
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", extra={"fields": {"path": scope.get("path")}})
            if not status_holder["sent"]:
                body = orjson.dumps(
                    {
                        "err_code": "INTERNAL_SERVER_ERROR",
                        "err_msg": INTERNAL_ERROR,
                        "request_id": request_id,
                    }
                )
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            log.info(
                "request",
                extra={
                    "fields": {
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status_holder["status"],
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    }
                },
            )
            request_id_var.reset(token)


def _describe_validation_error(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = [str(p) for p in err.get("loc", ())]
        where = loc[0] if loc else "request"
        name = ".".join(loc[1:]) or where
        label = {"query": "query parameter", "path": "path parameter", "header": "header"}.get(
            where, "field"
        )
        if where == "body" and not loc[1:]:
            parts.append(f"request body: {err.get('msg')}")
        else:
            parts.append(f"{label} '{name}': {err.get('msg')}")
    more = len(exc.errors()) - 5
    if more > 0:
        parts.append(f"and {more} more")
    return "Invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    async def on_mip_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, MIPError)
        return JSONResponse(exc.body(current_request_id()), status_code=exc.status_code)

    async def on_validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, "Bad Request", _describe_validation_error(exc))

    async def on_http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc, BodyRefused):
            return JSONResponse(exc.error.body(current_request_id()), status_code=exc.status_code)
        code = HTTP_ERROR_CODES.get(exc.status_code, "ERROR")
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        return error_response(exc.status_code, code, message)

    app.add_exception_handler(MIPError, on_mip_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
