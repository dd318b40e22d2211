"""Customers' training-data archives (zip, tar, tar.gz), read in memory and never extracted.

    with open_training_archive(Path("upload.zip"), limits=ArchiveLimits()) as archive:
        archive.problems                  # every refused entry, known before the first pair
        for pair in archive.pairs():      # one audio file in memory at a time
            keep(pair.name, pair.audio, pair.transcript, pair.speaker)

    contents = read_training_archive(upload, limits=ArchiveLimits())  # every pair at once

An audio file pairs with the ``.txt`` of the same name beside it, or with a row of a root
``manifest.csv`` or ``manifest.jsonl``. An entry that cannot be used is an
:class:`EntryProblem` and the rest of the archive is accepted; an archive that cannot be read
safely is refused whole with an :class:`ArchiveError`. This module is the public entry point
(every public name is imported from here); the rules are told in full beside their code:

- :mod:`curation.archive_records`: limits, records, problem codes, the refusals (errors).
- :mod:`curation.archive_names`: safe names, skipped files, what a name is for.
- :mod:`curation.archive_formats`: the zip and tar readers, counting every byte (bombs).
- :mod:`curation.archive_scan`: one pass over the entries, and the problems it finds.
- :mod:`curation.archive_manifest`: the manifest's rows.
- :mod:`curation.archive_pairing`: audio with its transcript, by name or by manifest.

**What is held.** Opening scans everything once, so problems and limits are known before the
first pair: it keeps a name and size per audio entry, every transcript's text and the
manifest, never audio bytes. :meth:`TrainingArchive.pairs` reads the paired audio again, one
file at a time (a zip by entry, a tar by a second pass over its stream, inflated again).
:func:`read_training_archive` holds every pair. Nothing is written to disk.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import closing
from types import TracebackType
from typing import IO, TypeAlias

from curation.archive_formats import (
    Budget,
    CountingFile,
    EntryRefused,
    FormatReader,
    Member,
    TarReader,
    ZipReader,
    detect_format,
    read_entry,
    refusals,
)
from curation.archive_names import AUDIO_SUFFIXES, MANIFEST_NAMES, TRANSCRIPT_SUFFIX
from curation.archive_pairing import PlannedPair, plan_pairs
from curation.archive_records import (
    PROBLEM_CODES,
    ArchiveContents,
    ArchiveError,
    ArchiveFormat,
    ArchiveLimits,
    ArchiveTooLarge,
    BadManifest,
    CorruptArchive,
    EntryProblem,
    MatchMode,
    NotAnArchive,
    ProblemCode,
    ReadStats,
    TrainingPair,
)
from curation.archive_scan import scan_entries

__all__ = [
    "AUDIO_SUFFIXES",
    "MANIFEST_NAMES",
    "PROBLEM_CODES",
    "TRANSCRIPT_SUFFIX",
    "ArchiveContents",
    "ArchiveError",
    "ArchiveFormat",
    "ArchiveLimits",
    "ArchiveSource",
    "ArchiveTooLarge",
    "BadManifest",
    "CorruptArchive",
    "EntryProblem",
    "MatchMode",
    "NotAnArchive",
    "ProblemCode",
    "ReadStats",
    "TrainingArchive",
    "TrainingPair",
    "open_training_archive",
    "read_training_archive",
]

ArchiveSource: TypeAlias = "str | os.PathLike[str] | IO[bytes]"


class TrainingArchive:
    """An archive scanned whole; :meth:`pairs` reads its audio again, one file at a time."""

    def __init__(
        self,
        archive: FormatReader,
        *,
        file: IO[bytes],
        owns_file: bool,
        limits: ArchiveLimits,
        mode: MatchMode,
        planned: list[PlannedPair],
        problems: list[EntryProblem],
        stats: ReadStats,
    ) -> None:
        self.format: ArchiveFormat = archive.format
        self.mode = mode
        self.problems = tuple(problems)
        self.stats = stats
        self._archive = archive
        self._file = file
        self._owns_file = owns_file
        self._limits = limits
        self._planned = planned

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the pairs :meth:`pairs` yields, in that order."""
        return tuple(planned.audio.name for planned in self._planned)

    def pairs(self) -> Iterator[TrainingPair]:
        """Each pair in the archive's order, its audio read now, within the same limits.

        Raises :class:`CorruptArchive` if the archive changed since it was opened; an error
        here refuses the whole archive, pairs already yielded included. One iteration at a
        time: they share the file.
        """
        wanted = {planned.audio.index: planned for planned in self._planned}
        if not wanted:
            return
        last = max(wanted)
        budget = Budget(self._limits, self._archive.source)
        with refusals(budget), closing(self._archive.members(budget)) as members:
            for member in members:
                planned = wanted.get(member.index)
                if planned is not None:
                    yield self._pair(planned, member, budget)
                if member.index >= last:
                    return

    def _pair(self, planned: PlannedPair, member: Member, budget: Budget) -> TrainingPair:
        changed = CorruptArchive(f"the archive changed since it was opened ({planned.audio.name})")
        if member.raw_name != planned.audio.raw_name:
            raise changed
        try:
            with self._archive.content(member, budget) as read:
                audio, size = read_entry(read, self._limits, keep=True)
        except EntryRefused:
            raise changed from None
        if size != planned.audio.size:
            raise changed
        return TrainingPair(planned.audio.name, audio, planned.transcript, planned.speaker)

    def close(self) -> None:
        self._archive.close()
        if self._owns_file:
            self._file.close()

    def __enter__(self) -> TrainingArchive:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def open_training_archive(source: ArchiveSource, *, limits: ArchiveLimits) -> TrainingArchive:
    """Scan ``source`` whole; close the result when done (``with``).

        with open_training_archive(path, limits=ArchiveLimits()) as archive:
            names = archive.names        # what pairs() will yield

    ``source`` is a path or a seekable binary file, read from its current position (and left
    open). Raises :class:`ArchiveError`: NotAnArchive, CorruptArchive, ArchiveTooLarge,
    BadManifest.
    """
    file, owns_file = _opened(source)
    archive: FormatReader | None = None
    try:
        kind = detect_format(file)
        counted = CountingFile(file)
        with refusals(Budget(limits, counted)):
            archive = ZipReader(counted, limits) if kind == "zip" else TarReader(counted, kind)
        budget = Budget(limits, counted)  # the scan's counts, the zip directory left out
        with refusals(budget):
            mode, planned, problems = plan_pairs(scan_entries(archive, budget))
        return TrainingArchive(
            archive,
            file=file,
            owns_file=owns_file,
            limits=limits,
            mode=mode,
            planned=planned,
            problems=problems,
            stats=budget.stats(),
        )
    except BaseException:
        if archive is not None:
            archive.close()
        if owns_file:
            file.close()
        raise


def read_training_archive(source: ArchiveSource, *, limits: ArchiveLimits) -> ArchiveContents:
    """Every pair and problem of ``source`` at once.

        contents = read_training_archive(upload, limits=ArchiveLimits())
        [(pair.name, pair.speaker) for pair in contents.pairs]

    Every pair's audio is in memory: :func:`open_training_archive` holds one at a time.
    """
    with open_training_archive(source, limits=limits) as archive:
        pairs = tuple(archive.pairs())
        return ArchiveContents(archive.format, archive.mode, pairs, archive.problems, archive.stats)


def _opened(source: ArchiveSource) -> tuple[IO[bytes], bool]:
    if isinstance(source, str | os.PathLike):
        return open(source, "rb"), True  # the TrainingArchive closes it
    if not source.seekable():
        raise ValueError("an archive is read from a path or a seekable binary file")
    return source, False
