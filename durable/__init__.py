"""Atomic file writes: a temporary file, fsynced, renamed over the target; the folder fsynced.

    write_atomic(Path("models/en.dg"), blob_chunks, mode=0o644)   # bytes, or an iterable of them
    with atomic_path(Path("train.parquet")) as partial: frame.to_parquet(partial)

A reader sees the old file or the whole new one, never part of one. With ``fsync=True`` (the
default) the new file is on disk when the call returns; ``fsync=False`` keeps the atomicity
(against a crashed process) without the cost of the syncs. The temporary file is a dot-name,
``.<name>.<random>.tmp``, in ``temp_dir`` or else the target's folder: either way it must be on
the target's filesystem, or the rename fails. On any failure, the caller's chunk iterator or
writer raising included, it is removed and the exception propagates; only a killed process
leaves one behind. It is created 0600 and given ``mode`` just before the rename.

A library: imports nothing from ``app``, ``asr`` or ``curation``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "fsync_folder", "write_atomic"]

StrPath = str | os.PathLike[str]


def write_atomic(
    path: StrPath,
    data: bytes | bytearray | memoryview | Iterable[bytes],
    *,
    mode: int = 0o644,
    temp_dir: StrPath | None = None,
    fsync: bool = True,
) -> int:
    """Replace ``path`` with ``data`` (bytes, or chunks of bytes streamed in); returns its size."""
    target = Path(path)
    chunks = [data] if isinstance(data, bytes | bytearray | memoryview) else data
    fd, temp = _create_temp(target, temp_dir)
    try:
        with open(fd, "wb") as handle:
            written = 0
            for chunk in chunks:
                written += handle.write(chunk)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_folder(target.parent)
    return written


@contextmanager
def atomic_path(
    path: StrPath,
    *,
    mode: int = 0o644,
    temp_dir: StrPath | None = None,
    fsync: bool = True,
) -> Iterator[Path]:
    """A temporary path for a writer that wants a filename; a clean exit renames it to ``path``.

    The file exists (empty, 0600) when yielded: write it by name, truncating it.
    """
    target = Path(path)
    fd, temp = _create_temp(target, temp_dir)
    os.close(fd)
    try:
        yield temp
        if fsync:
            _fsync_file(temp)
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_folder(target.parent)


def fsync_folder(path: StrPath) -> None:
    """Make the folder's entries (a file created, renamed or removed in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_temp(target: Path, temp_dir: StrPath | None) -> tuple[int, Path]:
    folder = target.parent if temp_dir is None else temp_dir
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    return fd, Path(name)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
