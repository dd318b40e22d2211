"""Blobs in an S3 bucket: AWS, or MinIO and other S3 APIs through endpoint_url.

An object below multipart_threshold goes up in one PUT; a larger one in parts of part_size, so a
put holds about part_size + one chunk in memory whatever the object's size. A failed put aborts
its upload, leaving neither an object nor stored parts. A process killed mid-upload can still
leave parts behind: give the bucket an AbortIncompleteMultipartUpload lifecycle rule.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.kit.blob import (
    BlobInfo,
    BlobNotFound,
    BlobStoreError,
    BlobStream,
    MiB,
    validate_key,
    validate_prefix,
)

MIN_PART_SIZE = 5 * MiB  # S3 refuses smaller parts, except the last
MAX_PART_SIZE = 5 * 1024 * MiB  # also the largest single PUT
MAX_PARTS = 10_000
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})

log = logging.getLogger("mip.blob")
# Making clients from one boto3 session is not thread-safe.
_client_lock = threading.Lock()


def client_config(*, custom_endpoint: bool) -> Config:
    options: dict[str, Any] = {
        # Explicit, so that a hung store fails a request in seconds instead of holding a worker.
        "connect_timeout": 5,
        "read_timeout": 30,
        "retries": {"max_attempts": 5, "mode": "standard"},
        # Checksums only where S3 requires them (DeleteObjects): several S3 APIs reject the CRC
        # trailers botocore adds by default, and the objects are AEAD ciphertext, whose tag
        # already catches any corruption on read.
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
    }
    if custom_endpoint:
        # MinIO and most other S3 APIs serve buckets as paths, not as host names.
        options["s3"] = {"addressing_style": "path"}
    return Config(**options)


class S3BlobStore:
    """A BlobStore in one bucket, every key under an optional prefix ("pre/fix" -> "pre/fix/…")."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        multipart_threshold: int = 8 * MiB,
        part_size: int = 8 * MiB,
    ) -> None:
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between 5 MiB and 5 GiB, not {part_size}")
        if not 1 <= multipart_threshold <= MAX_PART_SIZE:
            raise ValueError(f"multipart_threshold must be 1 B to 5 GiB, not {multipart_threshold}")
        self.bucket = bucket
        self.prefix = validate_prefix(prefix).removesuffix("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint_url = endpoint_url
        self.region = region
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self._key_prefix = f"{self.prefix}/" if self.prefix else ""
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use: no credential lookup before the first call."""
        if self._client is None:
            with _client_lock:
                if self._client is None:
                    self._client = _shared_session().client(
                        "s3",
                        endpoint_url=self.endpoint_url,
                        region_name=self.region,
                        config=client_config(custom_endpoint=self.endpoint_url is not None),
                    )
        return self._client

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        object_key = self._object_key(key)
        buffer = bytearray()
        upload: MultipartUpload | None = None
        written = 0
        try:
            for chunk in chunks:
                buffer += chunk
                written += len(chunk)
                if upload is None and len(buffer) >= self.multipart_threshold:
                    upload = MultipartUpload(self, object_key)
                while upload is not None and len(buffer) >= self.part_size:
                    upload.send(_take(buffer, self.part_size))
            if upload is None:
                with self._errors("put", object_key):
                    self.client.put_object(Bucket=self.bucket, Key=object_key, Body=bytes(buffer))
            else:
                if buffer:
                    upload.send(bytes(buffer))
                upload.complete()
        except BaseException:
            # Whatever failed (the caller's chunk iterator included), no parts stay stored.
            if upload is not None:
                upload.abort()
            raise
        return written

    def get(self, key: str) -> Iterator[bytes]:
        object_key = self._object_key(key)
        with self._errors("get", object_key):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=object_key)
            except ClientError as exc:
                if _error_code(exc) in NOT_FOUND_CODES:
                    raise BlobNotFound(f"no blob {key!r}") from None
                raise
        body = response["Body"]
        return BlobStream(self._checked_read(body.read, object_key), body.close)

    def size(self, key: str) -> int | None:
        object_key = self._object_key(key)
        with self._errors("head", object_key):
            try:
                response = self.client.head_object(Bucket=self.bucket, Key=object_key)
            except ClientError as exc:
                if _error_code(exc) in NOT_FOUND_CODES:
                    return None
                raise
        size: int = response["ContentLength"]
        return size

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def delete(self, key: str) -> None:
        object_key = self._object_key(key)
        with self._errors("delete", object_key):
            self.client.delete_object(Bucket=self.bucket, Key=object_key)  # no error if missing

    def delete_prefix(self, prefix: str) -> int:
        location = self._key_prefix + validate_prefix(prefix)
        deleted = 0
        # A listing page holds at most 1000 keys, which is also DeleteObjects' limit per call.
        for page in self._pages(location):
            batch = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if not batch:
                continue
            with self._errors("delete", location):
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            failures = response.get("Errors", [])
            if failures:
                first = failures[0]
                raise BlobStoreError(
                    f"S3 delete of {len(failures)} objects under s3://{self.bucket}/{location} "
                    f"failed, first s3://{self.bucket}/{first.get('Key')}: {first.get('Code')}",
                    details={"operation": "delete", "error_code": first.get("Code")},
                )
            deleted += len(batch)
        return deleted

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        location = self._key_prefix + validate_prefix(prefix)
        return self._list(location)

    def _list(self, location: str) -> Iterator[BlobInfo]:
        strip = len(self._key_prefix)
        for page in self._pages(location):
            for item in page.get("Contents", []):
                yield BlobInfo(item["Key"][strip:], item["Size"])

    def _pages(self, location: str) -> Iterator[dict[str, Any]]:
        with self._errors("list", location):
            paginator = self.client.get_paginator("list_objects_v2")
            yield from paginator.paginate(
                Bucket=self.bucket, Prefix=location, PaginationConfig={"PageSize": 1000}
            )

    def _object_key(self, key: str) -> str:
        return self._key_prefix + validate_key(key)

    def _checked_read(
        self, read: Callable[[int], bytes], object_key: str
    ) -> Callable[[int], bytes]:
        def read_chunk(size: int) -> bytes:
            with self._errors("get", object_key):
                return read(size)

        return read_chunk

    @contextmanager
    def _errors(self, operation: str, object_key: str) -> Iterator[None]:
        """botocore's errors as BlobStoreError: operation, location and S3 code, no credentials."""
        try:
            yield
        except ClientError as exc:
            raise self._error(operation, object_key, _error_code(exc)) from exc
        except BotoCoreError as exc:
            raise self._error(operation, object_key, type(exc).__name__) from exc

    def _error(self, operation: str, object_key: str, code: str) -> BlobStoreError:
        return BlobStoreError(
            f"S3 {operation} of s3://{self.bucket}/{object_key} failed: {code}",
            details={"operation": operation, "error_code": code},
        )


class MultipartUpload:
    """One multipart upload in progress: parts sent so far, then complete() or abort()."""

    def __init__(self, store: S3BlobStore, object_key: str) -> None:
        self._store = store
        self._where = {"Bucket": store.bucket, "Key": object_key}
        self._parts: list[dict[str, Any]] = []
        with store._errors("create multipart upload", object_key):
            response = store.client.create_multipart_upload(**self._where)
        self._upload_id: str = response["UploadId"]

    def send(self, data: bytes) -> None:
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise BlobStoreError(
                f"S3 put of s3://{self._store.bucket}/{self._where['Key']} needs more than "
                f"{MAX_PARTS} parts; raise part_size"
            )
        with self._store._errors("upload part", self._where["Key"]):
            response = self._store.client.upload_part(
                **self._where, UploadId=self._upload_id, PartNumber=number, Body=data
            )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def complete(self) -> None:
        with self._store._errors("complete multipart upload", self._where["Key"]):
            self._store.client.complete_multipart_upload(
                **self._where, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )

    def abort(self) -> None:
        """Best effort: the error that made us abort is the one worth raising."""
        try:
            self._store.client.abort_multipart_upload(**self._where, UploadId=self._upload_id)
        except (ClientError, BotoCoreError) as exc:
            log.warning(
                "could not abort S3 multipart upload; a lifecycle rule will have to",
                extra={"fields": {"bucket": self._store.bucket, "error": type(exc).__name__}},
            )


@functools.cache
def _shared_session() -> Any:
    """One boto3 session per process: it caches the service model and the credentials, which
    makes each further client some 20 times cheaper to create (about 5 ms instead of 100)."""
    return boto3.session.Session()


def _take(buffer: bytearray, size: int) -> bytes:
    """Remove and return the first size bytes of buffer, copying them once."""
    with memoryview(buffer) as view, view[:size] as head:
        part = bytes(head)
    del buffer[:size]
    return part


def _error_code(exc: Any) -> str:
    code: str = exc.response.get("Error", {}).get("Code", "Unknown")
    return code
