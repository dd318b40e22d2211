"""Blobs as files under one directory, each written atomically: temp file, fsync, rename, fsync dir.

root/                 0700
  .tmp/               puts in flight, and what a crash between write and rename leaves behind
  samples/org-1/abc   0600, one file per key, '/' in the key = a folder

A key "a" and a key "a/b" cannot both exist here (a name is either a file or a folder); a put
that would need both fails with BlobStoreError. The service's keys (ids under fixed folders)
never do this. Empty folders stay after deletes: pruning them would race with concurrent puts.
"""

from __future__ import annotations

import builtins
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from app.kit.blob import (
    SEGMENT_PATTERN,
    BlobInfo,
    BlobNotFound,
    BlobStoreError,
    BlobStream,
    InvalidBlobKey,
    validate_key,
    validate_prefix,
)
from durable import fsync_folder, write_atomic

TEMP_DIR = ".tmp"  # no key segment can start with '.', so no key can reach it
# A key whose path is a folder, or runs through a file ("a/b" when "a" is a file), is not a blob.
ABSENT = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


class LocalBlobStore:
    """A BlobStore in a local directory (see the module docstring for the layout)."""

    def __init__(self, root: Path) -> None:
        Path(root).mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root = Path(root).resolve()
        self.url = self.root.as_uri()
        self._temp_dir = self.root / TEMP_DIR
        self._temp_dir.mkdir(mode=0o700, exist_ok=True)

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        target = self._path(key)
        caller_errors: builtins.list[OSError] = []
        try:
            self._make_folders(target.parent)
            # The temp file is 0600 from the start, under root so that the rename stays on one
            # filesystem; whatever fails (the caller's chunk iterator included), it is removed.
            return write_atomic(
                target,
                _noting_errors(chunks, caller_errors),
                mode=0o600,
                temp_dir=self._temp_dir,
            )
        except OSError as exc:
            if exc in caller_errors:
                raise  # the caller's chunks failed, not the store
            raise self._error("put", key, exc) from exc

    def get(self, key: str) -> Iterator[bytes]:
        path = self._path(key)
        try:
            handle = open(path, "rb", buffering=0)  # BlobStream closes it
        except ABSENT:
            raise BlobNotFound(f"no blob {key!r}") from None
        except OSError as exc:
            raise self._error("get", key, exc) from exc
        return BlobStream(self._checked_read(handle.read, key), handle.close)

    def size(self, key: str) -> int | None:
        path = self._path(key)
        try:
            info = path.stat()
        except ABSENT:
            return None
        except OSError as exc:
            raise self._error("size", key, exc) from exc
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except ABSENT:
            pass
        except OSError as exc:
            raise self._error("delete", key, exc) from exc

    def delete_prefix(self, prefix: str) -> int:
        # Listed in full first: removing entries from a folder while scanning it is unspecified.
        doomed = builtins.list(self.list(prefix))
        for info in doomed:
            self.delete(info.key)
        return len(doomed)

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        validate_prefix(prefix)
        folder_key = prefix.rpartition("/")[0]
        folder = self._path(folder_key) if folder_key else self.root
        return self._walk(folder, folder_key, prefix)

    def stale_temp_files(self) -> builtins.list[Path]:
        """Files in the temp folder: puts in flight, or left by a crash before their rename."""
        return sorted(path for path in self._temp_dir.iterdir() if path.is_file())

    def remove_stale_temp_files(self, older_than_seconds: float) -> int:
        """Remove temp files last written more than older_than_seconds ago; returns how many.

        Pick an age no put can reach, so that only a crashed put's leftovers go.
        """
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in self.stale_temp_files():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # its put finished (renamed) or failed (removed) meanwhile
        return removed

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*validate_key(key).split("/"))
        # The key rules already keep the path under root; a symlink planted inside root must not
        # lead outside it either.
        if not path.resolve().is_relative_to(self.root):
            raise InvalidBlobKey(f"blob key {key!r} resolves outside the store root")
        return path

    def _walk(self, folder: Path, folder_key: str, prefix: str) -> Iterator[BlobInfo]:
        try:
            with os.scandir(folder) as scan:
                entries = builtins.list(scan)
        except ABSENT:
            return
        # Sorting a folder as name + "/" and a file as name yields whole keys in string order,
        # the order S3 lists in.
        entries.sort(key=lambda e: e.name + "/" if e.is_dir(follow_symlinks=False) else e.name)
        for entry in entries:
            if not SEGMENT_PATTERN.fullmatch(entry.name):
                continue  # .tmp, and anything not written by this store
            key = f"{folder_key}/{entry.name}" if folder_key else entry.name
            if entry.is_dir(follow_symlinks=False):
                if (key + "/").startswith(prefix) or prefix.startswith(key + "/"):
                    yield from self._walk(Path(entry.path), key, prefix)
            elif entry.is_file(follow_symlinks=False) and key.startswith(prefix):
                try:
                    yield BlobInfo(key, entry.stat(follow_symlinks=False).st_size)
                except FileNotFoundError:
                    continue  # deleted while listing

    def _make_folders(self, folder: Path) -> None:
        missing: builtins.list[Path] = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for created in reversed(missing):
            try:
                created.mkdir(mode=0o700)
            except FileExistsError:
                continue  # a concurrent put made it
            fsync_folder(created.parent)

    def _checked_read(
        self, read: Callable[[int], bytes | None], key: str
    ) -> Callable[[int], bytes]:
        def read_chunk(size: int) -> bytes:
            with self._os_errors("get", key):
                return read(size) or b""

        return read_chunk

    @contextmanager
    def _os_errors(self, operation: str, key: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise self._error(operation, key, exc) from exc

    def _error(self, operation: str, key: str, exc: OSError) -> BlobStoreError:
        reason = exc.strerror or type(exc).__name__
        return BlobStoreError(
            f"blob {operation} of {key!r} in {self.url} failed: {reason}",
            details={"operation": operation, "key": key, "reason": reason},
        )


def _noting_errors(chunks: Iterable[bytes], errors: builtins.list[OSError]) -> Iterator[bytes]:
    """The chunks; an OSError the caller's iterator raises is noted in errors, then propagates."""
    try:
        yield from chunks
    except OSError as exc:
        errors.append(exc)
        raise
