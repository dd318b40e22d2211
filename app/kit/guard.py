"""The request guard: what every request must get past before an endpoint sees it.

Pure ASGI, inside the request-context middleware (so its refusals carry the request id):

1. **Text the databases can store** (:mod:`app.kit.text`): a NUL or a lone surrogate in the
   path or the query string is a 400.
2. **Who is calling, before the body**: a request with a body to ``/v1/…`` is authenticated
   first (the application's ``state.authenticate``, in a worker thread); an unknown key is a
   401 before a byte of the body is read. The principal is kept for the endpoint
   (``scope["state"]["principal"]``), so the key is looked up once.
3. **Body size**: each route's limit (``limits``; ``default_limit`` otherwise), from
   ``Content-Length`` before reading, and counted while reading.
4. **Slow uploads**: the body must keep arriving — a 408 after ``idle_seconds`` without a
   byte, or once the average rate since the first ``idle_seconds`` falls below
   ``min_bytes_per_second`` (a trickle of a byte now and then holds a worker and, on
   PostgreSQL, a pooled connection).
5. **JSON bodies** are checked for ``\\u0000`` and unpaired surrogate escapes before the
   endpoint gets the last chunk.

A refusal while the endpoint is reading is raised from ``receive`` as :class:`BodyRefused`,
an HTTPException carrying the domain error: FastAPI passes HTTPExceptions from body reading
through unchanged, and endpoints that read the body themselves can catch it. Routes in
``records_failures`` (``/v1/listen``, whose every refused request is a ledger row) get every
refusal that way, the size by ``Content-Length`` included, and check their own query string
with the same rule, so that they can record what they refuse.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

import anyio.to_thread
import orjson
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.kit.auth import Principal
from app.kit.context import current_request_id
from app.kit.db import session_scope
from app.kit.errors import MIPError, PayloadTooLarge, RequestTimeout
from app.kit.text import UnstorableText, ascii_number, json_unstorable_reason, unstorable_reason

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyRefused(StarletteHTTPException):
    """A request body the guard refused while the endpoint was reading it."""

    def __init__(self, error: MIPError) -> None:
        super().__init__(status_code=error.status_code, detail=error.message)
        self.error = error


@dataclass(frozen=True)
class GuardRules:
    default_limit: int
    # (method, path) -> the body limit of that route
    limits: Mapping[tuple[str, str], int] = field(default_factory=dict)
    idle_seconds: float = 10.0
    min_bytes_per_second: int = 1024
    records_failures: frozenset[tuple[str, str]] = frozenset()  # (method, path)
    authenticated_prefix: str = "/v1/"

    def limit_for(self, method: str, path: str) -> int:
        """The route's limit; a key may name a path template (``/models/{model_id}/data``),
        whose ``{…}`` parts match one path segment each."""
        exact = self.limits.get((method, path))
        if exact is not None:
            return exact
        segments = path.split("/")
        for (wanted_method, template), limit in self.limits.items():
            if wanted_method == method and "{" in template and _matches(template, segments):
                return limit
        return self.default_limit


def _matches(template: str, segments: list[str]) -> bool:
    parts = template.split("/")
    return len(parts) == len(segments) and all(
        part == segment or (part.startswith("{") and part.endswith("}") and segment != "")
        for part, segment in zip(parts, segments, strict=True)
    )


class RequestGuardMiddleware:
    def __init__(self, app: ASGIApp, rules: GuardRules) -> None:
        self.app = app
        self.rules = rules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = (scope["method"], scope["path"])
        records = route in self.rules.records_failures
        limit = self.rules.limit_for(*route)
        length = _content_length(scope)
        try:
            self._check_text(scope, query=not records)
            has_body = _has_body(scope, length)
            if has_body and scope["path"].startswith(self.rules.authenticated_prefix):
                await self._authenticate(scope)
            if not records and length is not None and length > limit:
                raise PayloadTooLarge(f"Request body over {limit} bytes.")
        except MIPError as error:
            await _refuse(error, send)
            return
        if not has_body:
            await self.app(scope, receive, send)
            return
        reader = _BodyReader(
            receive, self.rules, limit=limit, json=_is_json(scope), announced=length
        )
        await self.app(scope, reader.receive, send)

    def _check_text(self, scope: Scope, *, query: bool) -> None:
        path = scope["path"]
        reason = unstorable_reason(path)
        if reason is not None:
            raise UnstorableText(f"The path contains {reason}, which cannot be stored.")
        if not query:
            return
        raw: bytes = scope.get("query_string", b"")
        if raw and (b"%" in raw or b"\x00" in raw):
            decoded = unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", "replace")
            reason = unstorable_reason(decoded)
            if reason is not None:
                raise UnstorableText(f"The query string contains {reason}, which cannot be stored.")

    async def _authenticate(self, scope: Scope) -> None:
        state = scope["app"].state
        authenticate: Callable[[Session, str | None], Principal] = state.authenticate
        factory: sessionmaker[Session] = state.sessionmaker
        header = _header(scope, b"authorization")

        def lookup() -> Principal:
            with session_scope(factory) as session:
                return authenticate(session, header)

        principal = await anyio.to_thread.run_sync(lookup)
        scope.setdefault("state", {})["principal"] = principal


class _BodyReader:
    """``receive`` with the limits on size, pace and JSON text."""

    def __init__(
        self,
        receive: Receive,
        rules: GuardRules,
        *,
        limit: int,
        json: bool,
        announced: int | None,
    ) -> None:
        self._receive = receive
        self._announced = announced
        self._rules = rules
        self._limit = limit
        self._json = json
        self._chunks: list[bytes] = []
        self._received = 0
        self._started = time.monotonic()
        self._done = False

    async def receive(self) -> Message:
        if self._done:  # after the body: only a disconnect, whenever it comes
            return await self._receive()
        if self._announced is not None and self._announced > self._limit:
            raise BodyRefused(PayloadTooLarge(f"Request body over {self._limit} bytes."))
        message = await self._next_message()
        if message["type"] != "http.request":
            return message
        chunk: bytes = message.get("body", b"")
        self._received += len(chunk)
        if self._received > self._limit:
            raise BodyRefused(PayloadTooLarge(f"Request body over {self._limit} bytes."))
        self._check_pace()
        if self._json:
            self._chunks.append(chunk)
        if not message.get("more_body", False):
            self._done = True
            if self._json:
                self._check_json(b"".join(self._chunks))
                self._chunks.clear()
        return message

    async def _next_message(self) -> Message:
        try:
            return await asyncio.wait_for(self._receive(), timeout=self._rules.idle_seconds)
        except TimeoutError:
            raise BodyRefused(
                RequestTimeout(
                    f"No request body arrived for {self._rules.idle_seconds:g} s; "
                    "send the body at once."
                )
            ) from None

    def _check_pace(self) -> None:
        elapsed = time.monotonic() - self._started
        grace = self._rules.idle_seconds
        if elapsed > grace and self._received < self._rules.min_bytes_per_second * elapsed:
            raise BodyRefused(
                RequestTimeout(
                    f"The request body arrived at {self._received / elapsed:.0f} bytes/s, below "
                    f"the minimum of {self._rules.min_bytes_per_second}."
                )
            )

    def _check_json(self, body: bytes) -> None:
        reason = json_unstorable_reason(body)
        if reason is not None:
            raise BodyRefused(
                UnstorableText(f"The JSON body contains {reason}, which cannot be stored.")
            )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _content_length(scope: Scope) -> int | None:
    value = _header(scope, b"content-length")
    return None if value is None else ascii_number(value)


def _has_body(scope: Scope, length: int | None) -> bool:
    if scope["method"] not in _BODY_METHODS:
        return False
    chunked = (_header(scope, b"transfer-encoding") or "").lower() == "chunked"
    return chunked or (length is not None and length > 0)


def _is_json(scope: Scope) -> bool:
    media = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


async def _refuse(error: MIPError, send: Send) -> None:
    body = orjson.dumps(error.body(current_request_id()))
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The body was not read: the connection cannot carry another request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
