"""The error responses endpoints document, from one table.

Every error is the Deepgram error body ``{"err_code", "err_msg", "request_id"}``; endpoints
name the statuses they can answer and, where it says more, their own description of one:

    responses=error_responses(400, 401, 403, 404, specific={409: "Already stored"})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer."""

    err_code: str = Field(examples=["Bad Request"])
    err_msg: str = Field(examples=["start must be before end."])
    request_id: str


ERROR_DESCRIPTIONS: Mapping[int, str] = {
    400: "Malformed input (the message names what to fix)",
    401: "Missing, unknown, revoked or expired key",
    403: "The key's role or scope does not allow this",
    404: "No such id for this caller (another tenant's id is a 404 too)",
    409: "Conflicts with the current state (the message says which)",
    413: "Body too large",
    415: "Unsupported Content-Type",
    429: "Too many requests at once; retry shortly",
}


def error_responses(
    *statuses: int, specific: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for ``statuses`` (and those of ``specific``, with its texts)."""
    texts = {status: ERROR_DESCRIPTIONS[status] for status in statuses}
    texts.update(specific or {})
    return {
        status: {"description": text, "model": ErrorBody} for status, text in sorted(texts.items())
    }
