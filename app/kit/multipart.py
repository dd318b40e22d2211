"""Multipart bodies parsed in memory, for routes that must never spool an upload to disk.

Starlette spools a file part over 1 MiB to a temporary file; audio that may be refused (an
opted-out request, a customer's training data) must not touch the disk unencrypted, so these
routes parse in memory. The body's size is bounded before parsing by the request guard
(``app.kit.guard``, the route's limit), so memory is too::

    form = await read_multipart(request, limit, max_files=2, what="the sample")
    audio = await form_field(form, "audio")
"""

from __future__ import annotations

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from app.kit.errors import BadRequest, UnsupportedMediaType


class _InMemoryParser(MultiPartParser):
    spool_max_size = 1 << 62


async def read_multipart(
    request: Request, limit: int, *, max_files: int = 2, max_fields: int = 8, what: str = "it"
) -> FormData:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise UnsupportedMediaType(f"Send {what} as multipart/form-data.")
    parser = _InMemoryParser(
        request.headers,
        request.stream(),
        max_files=max_files,
        max_fields=max_fields,
        max_part_size=limit,
    )
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise BadRequest(f"Malformed multipart body: {exc.message}") from None


async def form_field(form: FormData, name: str, *, required: bool = True) -> bytes | None:
    """A part's bytes (a file or a plain field), None when absent and not ``required``."""
    value = form.get(name)
    if value is None:
        if required:
            raise BadRequest(f"Missing multipart field '{name}'.")
        return None
    if isinstance(value, UploadFile):
        return await value.read()
    return value.encode()
