"""Blob storage for already-encrypted objects: one interface, a local directory or S3 behind it.

store = open_blob_store("s3://mip-samples/prod", endpoint_url=None, region="eu-west-1")
store.put("samples/org-1/abc", chunks)   # atomic: the whole object or nothing
b"".join(store.get("samples/org-1/abc"))

Keys are built by the service from ids, never from user input, and are checked anyway: segments of
``[A-Za-z0-9][A-Za-z0-9._-]{0,127}`` joined by ``/``, at most 8 of them. A segment cannot start
with a dot, so ``.`` / ``..`` and the local backend's ``.tmp`` folder are out of reach.

Both directions stream in chunks, so an object of hundreds of MB never sits in memory whole.

Backends (``open_blob_store`` picks one from ``MIP_BLOB_URL``)::

    file:///abs/path          app.kit.blob.local.LocalBlobStore
    s3://bucket/opt/prefix    app.kit.blob.s3.S3BlobStore (endpoint_url for MinIO and co.)

Errors::

    InvalidBlobKey(BadRequest)        a key or prefix outside the rules above
    InvalidBlobStoreUrl(BadRequest)   MIP_BLOB_URL in none of the accepted forms
    BlobNotFound(NotFound)            get() of a missing key
    BlobStoreError(MIPError)          the backend failed (names operation, location, S3 code)
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from app.kit.errors import BadRequest, MIPError, NotFound

MiB = 1024 * 1024
CHUNK_SIZE = 1 * MiB
MAX_SEGMENTS = 8
SEGMENT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# S3's bucket naming rules (MinIO and other S3 APIs follow them too).
BUCKET_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
ACCEPTED_URLS = "file:///absolute/path or s3://bucket/optional/prefix"


class InvalidBlobKey(BadRequest):
    """A key or prefix that breaks the key rules (see the module docstring)."""


class InvalidBlobStoreUrl(BadRequest):
    """A blob store URL in none of the accepted forms."""


class BlobNotFound(NotFound):
    """No object under that key."""


class BlobStoreError(MIPError):
    """The storage backend failed; the message names the operation and location, no secrets."""


@dataclass(frozen=True)
class BlobInfo:
    key: str
    size: int


class BlobStore(Protocol):
    """Both backends list in key order and treat prefixes as plain string prefixes, as S3 does:
    ``"org-1"`` also matches ``"org-10/…"``, so pass ``"org-1/"`` to mean one folder."""

    url: str  # for display: never carries credentials

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        """Store the chunks under key, replacing any object there; all or nothing. Returns size."""
        ...

    def get(self, key: str) -> Iterator[bytes]:
        """The object's chunks; raises BlobNotFound at once (before the first chunk)."""
        ...

    def size(self, key: str) -> int | None: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing key is fine."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with prefix; returns how many."""
        ...

    def list(self, prefix: str = "") -> Iterator[BlobInfo]: ...


def validate_key(key: str) -> str:
    """Return key unchanged if it follows the key rules, else raise InvalidBlobKey."""
    if not isinstance(key, str) or not key:
        raise InvalidBlobKey("blob key must be a non-empty string")
    segments = key.split("/")
    if len(segments) > MAX_SEGMENTS:
        raise InvalidBlobKey(f"blob key {key[:200]!r} has more than {MAX_SEGMENTS} segments")
    for segment in segments:
        if not SEGMENT_PATTERN.fullmatch(segment):
            raise InvalidBlobKey(
                f"blob key {key[:200]!r}: each '/'-separated segment must be 1-128 of "
                "[A-Za-z0-9._-] starting with a letter or digit"
            )
    return key


def validate_prefix(prefix: str) -> str:
    """Like validate_key, but empty (everything) is allowed and one trailing '/' is too."""
    if not isinstance(prefix, str):
        raise InvalidBlobKey("blob prefix must be a string")
    if prefix == "":
        return prefix
    validate_key(prefix.removesuffix("/"))
    return prefix


class BlobStream(Iterator[bytes]):
    """The chunks of one stored object, read on demand.

    It closes its source at the end, on ``close()``, or when dropped unread, so an abandoned
    download (a client that hangs up) never leaks a file handle or a pooled HTTP connection.
    """

    def __init__(
        self, read: Callable[[int], bytes], close: Callable[[], None], chunk_size: int = CHUNK_SIZE
    ) -> None:
        self._read = read
        self._close = close
        self._chunk_size = chunk_size
        self._closed = False

    def __iter__(self) -> BlobStream:
        return self

    def __next__(self) -> bytes:
        if self._closed:
            raise StopIteration
        try:
            chunk = self._read(self._chunk_size)
        except BaseException:
            self.close()
            raise
        if not chunk:
            self.close()
            raise StopIteration
        return chunk

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __del__(self) -> None:
        # Interpreter shutdown or a broken connection must not turn garbage collection into
        # an error.
        with contextlib.suppress(Exception):
            self.close()


def open_blob_store(
    url: str, *, endpoint_url: str | None = None, region: str | None = None
) -> BlobStore:
    """The store for MIP_BLOB_URL. endpoint_url and region apply to s3:// only.

    open_blob_store("s3://mip-blobs/prod/")      -> S3BlobStore, url "s3://mip-blobs/prod"
    open_blob_store("file:///var/lib/mip/blobs") -> LocalBlobStore (makes the folder, 0700)
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment:
        raise InvalidBlobStoreUrl(
            f"blob store URL must not have a query or fragment; use {ACCEPTED_URLS}"
        )
    if scheme == "file":
        # Imported here so that a file-only deployment never pays for importing boto3, and so that
        # the backends can import the key rules and errors from this module.
        from app.kit.blob.local import LocalBlobStore

        return LocalBlobStore(_local_root(parts.netloc, parts.path))
    if scheme == "s3":
        from app.kit.blob.s3 import S3BlobStore

        bucket, prefix = _s3_location(parts.netloc, parts.path)
        return S3BlobStore(bucket, prefix, endpoint_url=endpoint_url, region=region)
    # The URL itself is not echoed: a mistyped one may carry credentials.
    raise InvalidBlobStoreUrl(
        f"unsupported blob store URL scheme {scheme[:20]!r}; use {ACCEPTED_URLS}"
    )


def default_blob_url(data_dir: Path) -> str:
    """MIP_BLOB_URL when unset: a "blobs" folder in the data dir, as an absolute file: URL."""
    return (data_dir / "blobs").resolve().as_uri()


def _local_root(netloc: str, path: str) -> Path:
    if netloc not in ("", "localhost"):
        raise InvalidBlobStoreUrl(
            f"file URL names host {netloc[:100]!r}: a relative path is not accepted; use an "
            "absolute path, file:///absolute/path (three slashes)"
        )
    root = Path(unquote(path))
    if not root.is_absolute():
        raise InvalidBlobStoreUrl("file URL path must be absolute: use file:///absolute/path")
    return root


def _s3_location(netloc: str, path: str) -> tuple[str, str]:
    if "@" in netloc:
        raise InvalidBlobStoreUrl(
            "s3:// URL must not carry credentials; boto3 takes them from the environment or role"
        )
    if not BUCKET_PATTERN.fullmatch(netloc):
        raise InvalidBlobStoreUrl(
            f"s3:// URL bucket {netloc[:100]!r} is not a valid bucket name; use {ACCEPTED_URLS}"
        )
    prefix = unquote(path).removeprefix("/")
    try:
        validate_prefix(prefix)
    except InvalidBlobKey as exc:
        raise InvalidBlobStoreUrl(f"s3:// URL prefix: {exc.message}") from exc
    return netloc, prefix
