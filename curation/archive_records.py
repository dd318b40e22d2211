"""What :mod:`curation.archives` takes and gives: limits, pairs, problems, counts, refusals.

    limits = ArchiveLimits(max_entry_bytes=100 * 2**20)  # every limit has a default
    codes = {problem.code for problem in contents.problems}  # from PROBLEM_CODES, stable

**Refusals.** The whole archive is refused with an :class:`ArchiveError` carrying a ``code``
and the ``stats`` read until then: :class:`NotAnArchive`, :class:`CorruptArchive` (damaged,
truncated, a header that lies, changed between passes), :class:`ArchiveTooLarge` (entries,
total bytes, compression ratio of a compressed tar) and :class:`BadManifest`. An entry that
cannot be used refuses only itself: it is an :class:`EntryProblem`
(:mod:`curation.archive_scan` says which codes mean what).

A part of :mod:`curation.archives`; import these names from there.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

ArchiveFormat: TypeAlias = Literal["zip", "tar", "tar.gz"]
MatchMode: TypeAlias = Literal["names", "manifest"]
ProblemCode: TypeAlias = Literal[
    "unsafe_path",
    "link",
    "audio_without_transcript",
    "transcript_without_audio",
    "unsupported_file",
    "unreadable_entry",
    "duplicate_name",
    "bad_manifest_row",
    "not_utf8",
    "entry_too_large",
]
PROBLEM_CODES: Final[tuple[ProblemCode, ...]] = typing.get_args(ProblemCode)


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may hold before it, or one of its entries, is refused."""

    max_total_bytes: int = 2 * 2**30  # produced by decompression in one pass over the archive
    max_entry_bytes: int = 512 * 2**20  # one entry; two hours of 16 kHz 16-bit WAV is 230 MB
    max_entries: int = 100_000  # entries of every kind, directories included
    # Uncompressed over compressed bytes: deflate reaches ~1030 on zeros, speech WAV ~1.1-3.
    max_ratio: float | None = 200.0
    ratio_grace_bytes: int = 2**20  # the ratio is checked past this: tiny files compress oddly

    def __post_init__(self) -> None:
        sizes = (self.max_total_bytes, self.max_entry_bytes, self.max_entries)
        if min(sizes) < 1 or self.ratio_grace_bytes < 0:
            raise ValueError("archive limits must be positive")
        if self.max_ratio is not None and self.max_ratio <= 1:
            raise ValueError("max_ratio must be above 1 (or None for no ratio check)")


@dataclass(frozen=True, slots=True)
class TrainingPair:
    """One audio file and its transcript; ``repr`` leaves out the audio and the text."""

    name: str
    audio: bytes = field(repr=False)
    transcript: str = field(repr=False)
    speaker: str | None = None


@dataclass(frozen=True, slots=True)
class EntryProblem:
    """Why an entry (or a manifest row, with its ``line``) is not used."""

    name: str
    code: ProblemCode
    message: str
    line: int | None = None


@dataclass(frozen=True, slots=True)
class ReadStats:
    """What one pass read: entries seen, bytes decompressed, bytes read from the file."""

    entries: int
    bytes_read: int
    compressed_bytes_read: int


@dataclass(frozen=True, slots=True)
class ArchiveContents:
    """Everything :func:`read_training_archive` found; ``stats`` is the scan's."""

    format: ArchiveFormat
    mode: MatchMode
    pairs: tuple[TrainingPair, ...]
    problems: tuple[EntryProblem, ...]
    stats: ReadStats


class ArchiveError(ValueError):
    """An archive refused whole; ``code`` is stable, ``stats`` what was read until then.

    ArchiveError
    ├── NotAnArchive      not_an_archive: neither zip nor tar (plain or gzip)
    ├── CorruptArchive    corrupt_archive: damaged, truncated, lying, or changed while read
    ├── ArchiveTooLarge   too_many_entries · total_too_large · ratio_too_high
    └── BadManifest       bad_manifest: the root manifest cannot be used at all
    """

    code: str = "archive_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.stats = ReadStats(entries=0, bytes_read=0, compressed_bytes_read=0)


class NotAnArchive(ArchiveError):
    code = "not_an_archive"


class CorruptArchive(ArchiveError):
    code = "corrupt_archive"


class ArchiveTooLarge(ArchiveError):
    def __init__(
        self,
        message: str,
        *,
        code: Literal["too_many_entries", "total_too_large", "ratio_too_high"],
    ) -> None:
        super().__init__(message)
        self.code = code


class BadManifest(ArchiveError):
    code = "bad_manifest"
