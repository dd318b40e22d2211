"""The one error root of the service and the HTTP rendering of every error.

Every error leaves the service as the Deepgram error body::

    {"err_code": "Bad Request", "err_msg": "…", "request_id": "…"}

Tree (domains subclass these beside their service)::

    MIPError                    500 INTERNAL_SERVER_ERROR
    ├── BadRequest              400 Bad Request
    │   └── (domain validation errors, e.g. InvalidParameter, PricingError)
    ├── Unauthorized            401 INVALID_AUTH
    ├── Forbidden               403 INSUFFICIENT_PERMISSIONS
    ├── NotFound                404 NOT_FOUND
    ├── Conflict                409 CONFLICT
    ├── RequestTimeout          408 REQUEST_TIMEOUT
    ├── PayloadTooLarge         413 PAYLOAD_TOO_LARGE
    ├── UnsupportedMediaType    415 UNSUPPORTED_MEDIA_TYPE
    └── TooManyRequests         429 TOO_MANY_REQUESTS
"""

from __future__ import annotations

from typing import Any, ClassVar

INTERNAL_ERROR = "The service failed to process the request."  # a 500's err_msg: no internals


class MIPError(Exception):
    status_code: ClassVar[int] = 500
    err_code: ClassVar[str] = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "err_code": self.err_code,
            "err_msg": self.message,
            "request_id": request_id,
        }
        if self.details:
            body["details"] = self.details
        return body


class BadRequest(MIPError):
    status_code = 400
    err_code = "Bad Request"


class Unauthorized(MIPError):
    status_code = 401
    err_code = "INVALID_AUTH"


class Forbidden(MIPError):
    status_code = 403
    err_code = "INSUFFICIENT_PERMISSIONS"


class NotFound(MIPError):
    status_code = 404
    err_code = "NOT_FOUND"


class Conflict(MIPError):
    status_code = 409
    err_code = "CONFLICT"


class PayloadTooLarge(MIPError):
    status_code = 413
    err_code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(MIPError):
    status_code = 415
    err_code = "UNSUPPORTED_MEDIA_TYPE"


class TooManyRequests(MIPError):
    status_code = 429
    err_code = "TOO_MANY_REQUESTS"


class RequestTimeout(MIPError):
    """The request body arrived too slowly (a stalled or trickling upload)."""

    status_code = 408
    err_code = "REQUEST_TIMEOUT"


HTTP_ERROR_CODES: dict[int, str] = {
    400: BadRequest.err_code,
    401: Unauthorized.err_code,
    403: Forbidden.err_code,
    404: NotFound.err_code,
    405: "METHOD_NOT_ALLOWED",
    408: RequestTimeout.err_code,
    409: Conflict.err_code,
    413: PayloadTooLarge.err_code,
    415: UnsupportedMediaType.err_code,
    429: TooManyRequests.err_code,
}
