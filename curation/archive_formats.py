"""Zip and tar (plain or gzip) read entry by entry, every byte decompression produces counted.

    source, kind = CountingFile(file), detect_format(file)  # the format by its first bytes
    reader = ZipReader(source, limits) if kind == "zip" else TarReader(source, kind)
    for member in reader.members(Budget(limits, source)): ...  # Member: index, name, kind

**Bombs.** Sizes in headers never decide how much is read: every byte decompression produces
is counted, an entry stops being read one byte past ``max_entry_bytes`` and the archive one
byte past ``max_total_bytes``. zipfile also stops at the size a zip header declares and then
checks the CRC, so a header that understates its entry ends in :class:`CorruptArchive`. The
ratio is checked once ``ratio_grace_bytes`` have come out of a zip entry, or out of a
compressed tar's whole stream (it cannot skip an entry without inflating it). A zip's entry
count is checked in its end-of-central-directory record before zipfile loads the directory.

A zip entry is read from its own stream, any time; a tar member only while it is the current
one of a forward pass over the stream (:meth:`FormatReader.content`), so reading a tar's
audio again means a second pass. :func:`refusals` turns the standard library's errors on
damaged data into :class:`CorruptArchive` and stamps every refusal with what was read.

A part of :mod:`curation.archives`; nothing here is its public API.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import IO, Final, Literal, Protocol, TypeAlias, cast

from curation.archive_names import shown_name
from curation.archive_records import (
    ArchiveError,
    ArchiveFormat,
    ArchiveLimits,
    ArchiveTooLarge,
    CorruptArchive,
    NotAnArchive,
    ReadStats,
)

# One read's size: the memory a read takes, and how far a chunked copy goes between checks.
_CHUNK: Final = 64 * 1024
# zipfile reads compressed bytes ahead, up to the size asked: small reads keep the ratio's count
# of compressed bytes within ~12 KB of what was really inflated.
_ZIP_READ: Final = 8 * 1024
# tarfile reads a long-name or pax header whole; real ones are a few hundred bytes.
_MAX_TAR_HEADER: Final = 2**20
_EOCD: Final = struct.Struct("<4s4H2LH")  # end of central directory record
_EOCD64: Final = struct.Struct("<4sQ2H2L4Q")  # its zip64 form, right before the locator
_EOCD64_LOCATOR_SIZE: Final = 20
# A directory record is 46 bytes plus its name and extra fields; real names need far less.
_MAX_DIRECTORY_RECORD: Final = 1024
_Kind: TypeAlias = Literal["file", "dir", "link", "unreadable"]
_Read: TypeAlias = Callable[[int], bytes]


def detect_format(file: IO[bytes]) -> Literal["zip", "tar", "tar.gz"]:
    """The format by its first bytes, whatever the file is called."""
    start = file.tell()
    head = file.read(tarfile.BLOCKSIZE)
    file.seek(start)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    if head[257:262] == b"ustar":
        return "tar"
    if head.startswith((b"BZh", b"\xfd7zXZ\x00")):
        raise NotAnArchive("a bzip2 or xz stream: only gzip-compressed tar archives are read")
    raise NotAnArchive("neither a zip nor a tar archive (plain or gzip-compressed)")


@dataclass(frozen=True, slots=True)
class Member:
    """One entry as the format lists it, its name as stored (checked later)."""

    index: int
    raw_name: str
    kind: _Kind
    detail: str = ""  # what a link or an unreadable entry is


class FormatReader(Protocol):
    """One archive format read as members, over a counted source."""

    format: ArchiveFormat
    source: CountingFile

    def members(self, budget: Budget) -> Generator[Member, None, None]: ...

    def content(self, member: Member, budget: Budget) -> AbstractContextManager[_Read]:
        """A reader of ``member``'s bytes; a tar's only while it is the current member."""
        ...

    def close(self) -> None: ...


class CountingFile:
    """The archive file, counting the bytes read from it (compressed bytes, for the ratio)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self.bytes_read = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._file.read(size)
        self.bytes_read += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def seekable(self) -> bool:
        return True


class Budget:
    """One pass's counts; ArchiveTooLarge past the total or the entry count."""

    def __init__(self, limits: ArchiveLimits, source: CountingFile) -> None:
        self.limits = limits
        self._source = source
        self._start = source.bytes_read
        self.entries = 0
        self.bytes_read = 0

    @property
    def compressed_read(self) -> int:
        return self._source.bytes_read - self._start

    def count_entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            message = f"more than {self.limits.max_entries} entries"
            raise ArchiveTooLarge(message, code="too_many_entries")

    def allowance(self, size: int) -> int:
        """How much of a ``size``-byte read may go ahead: up to one byte past the total."""
        return min(size, self.limits.max_total_bytes - self.bytes_read + 1)

    def add(self, size: int) -> None:
        self.bytes_read += size
        if self.bytes_read > self.limits.max_total_bytes:
            message = f"more than {self.limits.max_total_bytes} bytes uncompressed"
            raise ArchiveTooLarge(message, code="total_too_large")

    def stats(self) -> ReadStats:
        return ReadStats(self.entries, self.bytes_read, self.compressed_read)


# Raised by the standard library on damaged data; they become CorruptArchive.
_LIBRARY_ERRORS: Final = (
    zipfile.BadZipFile,
    tarfile.TarError,
    gzip.BadGzipFile,
    EOFError,
    zlib.error,
    struct.error,
    UnicodeDecodeError,  # a zip name flagged UTF-8 that is not
)


@contextmanager
def refusals(budget: Budget) -> Iterator[None]:
    """Damaged data as CorruptArchive, and every refusal stamped with what was read."""
    try:
        yield
    except ArchiveError as err:
        err.stats = budget.stats()
        raise
    except _LIBRARY_ERRORS as err:
        refusal = CorruptArchive(f"the archive is damaged: {err}")
        refusal.stats = budget.stats()
        raise refusal from err


class EntryRefused(Exception):
    """One entry is refused (too large); the rest of the archive goes on."""


def read_entry(read: _Read, limits: ArchiveLimits, *, keep: bool) -> tuple[bytes, int]:
    """An entry's bytes (when ``keep``) and size; never reads more than one byte past the limit."""
    chunks = []
    size = 0
    while chunk := read(min(_CHUNK, limits.max_entry_bytes + 1 - size)):
        size += len(chunk)
        if size > limits.max_entry_bytes:
            raise EntryRefused(f"larger than the limit of {limits.max_entry_bytes} bytes")
        if keep:
            chunks.append(chunk)
    return b"".join(chunks), size


def _inflates_too_far(limits: ArchiveLimits, produced: int, consumed: int) -> bool:
    return (
        limits.max_ratio is not None
        and produced > limits.ratio_grace_bytes
        and produced > limits.max_ratio * max(consumed, 1)
    )


class ZipReader:
    format: ArchiveFormat = "zip"

    def __init__(self, source: CountingFile, limits: ArchiveLimits) -> None:
        _check_directory(source, limits)
        self.source = source
        # zipfile uses only read, seek, tell and seekable, which CountingFile has.
        self._zip = zipfile.ZipFile(cast(IO[bytes], source))
        self._infos = self._zip.infolist()

    def members(self, budget: Budget) -> Generator[Member, None, None]:
        for index, info in enumerate(self._infos):
            budget.count_entry()
            # orig_filename: zipfile cuts ``filename`` at a NUL, hiding it.
            yield Member(index, info.orig_filename, *_zip_kind(info))

    @contextmanager
    def content(self, member: Member, budget: Budget) -> Iterator[_Read]:
        with self._zip.open(self._infos[member.index]) as stream:
            yield _ZipEntry(stream, budget, self.source).read

    def close(self) -> None:
        self._zip.close()


class _ZipEntry:
    """A zip entry's bytes as inflated, counted; refused once it inflates too far."""

    def __init__(self, stream: IO[bytes], budget: Budget, source: CountingFile) -> None:
        self._stream = stream
        self._budget = budget
        self._source = source
        self._start = source.bytes_read
        self._produced = 0

    def read(self, size: int) -> bytes:
        data = self._stream.read(self._budget.allowance(min(size, _ZIP_READ)))
        self._produced += len(data)
        self._budget.add(len(data))
        limits = self._budget.limits
        if _inflates_too_far(limits, self._produced, self._source.bytes_read - self._start):
            raise EntryRefused(
                f"inflating more than {limits.max_ratio:g} times its compressed size"
            )
        return data


def _check_directory(source: CountingFile, limits: ArchiveLimits) -> None:
    """Refuse too many entries from the end record, before zipfile loads the directory whole
    (a ZipInfo of several hundred bytes per record of 46)."""
    end = source.seek(0, os.SEEK_END)
    tail_size = min(end, _EOCD.size + 0xFFFF + _EOCD64_LOCATOR_SIZE + _EOCD64.size)
    source.seek(end - tail_size)
    tail = source.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        raise CorruptArchive("the zip archive has no end-of-central-directory record (truncated?)")
    entries, size = _EOCD.unpack_from(tail, at)[4:6]
    record = at - _EOCD64_LOCATOR_SIZE - _EOCD64.size
    if record >= 0 and tail.startswith(b"PK\x06\x06", record):
        entries, size = _EOCD64.unpack_from(tail, record)[7:9]
    if entries > limits.max_entries or size > limits.max_entries * _MAX_DIRECTORY_RECORD:
        message = f"the zip archive lists {entries} entries in {size} bytes"
        raise ArchiveTooLarge(
            f"{message} (limit {limits.max_entries} entries)", code="too_many_entries"
        )


def _zip_kind(info: zipfile.ZipInfo) -> tuple[_Kind, str]:
    file_type = stat.S_IFMT(info.external_attr >> 16)  # the Unix mode, where one is recorded
    if info.is_dir() or file_type == stat.S_IFDIR:
        return "dir", ""
    if file_type == stat.S_IFLNK:
        return "link", "a symbolic link"
    if file_type not in (0, stat.S_IFREG):
        return "link", "a device, FIFO or socket"
    if info.flag_bits & 0x1:
        return "unreadable", "encrypted"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # zipfile inflates bzip2 and LZMA without an output bound: one small read could
        # produce gigabytes before any count sees them.
        return "unreadable", f"compression method {info.compress_type} (read: stored, deflate)"
    return "file", ""


class TarReader:
    def __init__(self, source: CountingFile, kind: Literal["tar", "tar.gz"]) -> None:
        self.format: ArchiveFormat = kind
        self.source = source
        self._start = source.tell()
        self._current: tuple[int, tarfile.TarInfo, _TarStream] | None = None

    def members(self, budget: Budget) -> Generator[Member, None, None]:
        with self._stream(budget) as stream:
            if stream.peek(tarfile.BLOCKSIZE)[257:262] != b"ustar":
                raise NotAnArchive("gzip-compressed data that is not a tar archive")
            tar = tarfile.TarFile(
                fileobj=stream, mode="r", encoding="utf-8", errors="surrogateescape"
            )
            info = tar.next()  # the first member, read by the constructor
            index = 0
            while info is not None:
                budget.count_entry()
                self._current = (index, info, stream)
                yield Member(index, info.name, *_tar_kind(info))
                info = _next_member(tar, stream)
                index += 1
            self._current = None
            stream.drain()  # a gzip stream's length and CRC are checked at its end

    @contextmanager
    def content(self, member: Member, budget: Budget) -> Iterator[_Read]:
        if self._current is None or self._current[0] != member.index:
            raise RuntimeError("a tar member is read only while it is the current one")
        _, info, stream = self._current
        stream.seek(info.offset_data)
        left = info.size

        def read(size: int) -> bytes:
            nonlocal left
            wanted = min(size, left)
            data = stream.read(wanted)
            if len(data) < wanted:
                raise CorruptArchive(f"the tar archive ends inside {shown_name(info.name)}")
            left -= len(data)
            return data

        yield read

    def close(self) -> None:
        self._current = None

    @contextmanager
    def _stream(self, budget: Budget) -> Iterator[_TarStream]:
        self.source.seek(self._start)
        if self.format == "tar":
            yield _TarStream(self.source, budget, compressed=False)
            return
        with gzip.GzipFile(fileobj=self.source, mode="rb") as inflated:
            yield _TarStream(inflated, budget, compressed=True)


def _next_member(tar: tarfile.TarFile, stream: _TarStream) -> tarfile.TarInfo | None:
    """The member after the current one; None at the end-of-archive marker, which must be there.

    TarFile.next() also ends quietly at a truncated or damaged header; this does not.
    """
    stream.seek(tar.offset)
    header = stream.peek(tarfile.BLOCKSIZE)
    if header == bytes(tarfile.BLOCKSIZE):
        return None
    if len(header) < tarfile.BLOCKSIZE:
        raise CorruptArchive("the tar archive ends before its end-of-archive marker (truncated?)")
    try:
        return tarfile.TarInfo.fromtarfile(tar)
    except tarfile.TarError as err:
        raise CorruptArchive(f"a damaged tar header at byte {tar.offset}: {err}") from None


def _tar_kind(info: tarfile.TarInfo) -> tuple[_Kind, str]:
    if info.isdir():
        return "dir", ""
    if info.issym():
        return "link", f"a symbolic link to {shown_name(info.linkname)}"
    if info.islnk():
        return "link", f"a hard link to {shown_name(info.linkname)}"
    if info.ischr() or info.isblk() or info.isfifo():
        return "link", "a device or FIFO"
    if info.issparse():
        return "unreadable", "a sparse file"
    if info.isfile():
        return "file", ""
    return "unreadable", f"a tar member of type {info.type!r}"


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class _TarStream:
    """The uncompressed tar bytes, forward only, every byte counted: headers and skipped
    data too, since a compressed tar cannot skip an entry without inflating it."""

    def __init__(self, source: _Readable, budget: Budget, *, compressed: bool) -> None:
        self._source = source
        self._budget = budget
        self._compressed = compressed
        self._ahead = bytearray()
        self._position = 0

    def peek(self, size: int) -> bytes:
        budget = self._budget
        while len(self._ahead) < size:
            data = self._source.read(budget.allowance(min(size - len(self._ahead), _CHUNK)))
            if not data:
                break
            budget.add(len(data))
            if self._compressed and _inflates_too_far(
                budget.limits, budget.bytes_read, budget.compressed_read
            ):
                ratio = budget.limits.max_ratio
                message = f"the archive inflates more than {ratio:g} times its compressed size"
                raise ArchiveTooLarge(message, code="ratio_too_high")
            self._ahead += data
        return bytes(self._ahead[:size])

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            raise io.UnsupportedOperation("a tar stream is read in bounded pieces")
        if size > _MAX_TAR_HEADER:  # only tarfile asks for more than a chunk: a header's data
            raise CorruptArchive(f"a tar extended header of {size} bytes")
        data = self.peek(size)
        del self._ahead[: len(data)]
        self._position += len(data)
        return data

    def seek(self, position: int, whence: int = os.SEEK_SET, /) -> int:
        if whence != os.SEEK_SET or position < self._position:
            raise io.UnsupportedOperation("a tar stream is read forward only")
        while self._position < position and self.read(min(_CHUNK, position - self._position)):
            pass
        return self._position

    def tell(self) -> int:
        return self._position

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    def write(self, data: bytes, /) -> int:
        raise io.UnsupportedOperation("a tar stream is read only")

    def close(self) -> None:
        """Nothing: whoever opened the source closes it."""
