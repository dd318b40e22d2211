"""One pass over an archive's entries: each is audio, a transcript, the manifest or a problem.

    scan = scan_entries(reader, Budget(limits, source))  # reader: a ZipReader or TarReader
    scan.audio, scan.transcripts, scan.manifest           # audio: names and sizes, no bytes

**Problems.** An entry that cannot be used is an :class:`EntryProblem` with a stable ``code``
(:data:`PROBLEM_CODES`) and the rest of the archive is accepted. The scan finds
``unsafe_path`` (absolute, ``..``, a drive letter, a backslash, control characters), ``link``
(symbolic and hard links, devices, FIFOs), ``unsupported_file`` (other suffixes, nested
archives), ``unreadable_entry`` (encrypted, a compression method other than stored or
deflate, a sparse tar member), ``not_utf8`` and ``entry_too_large``; pairing
(:mod:`curation.archive_pairing`) adds ``duplicate_name``, ``bad_manifest_row`` and the two
orphans. Directories, hidden files (a part starting with ``.``), ``__MACOSX/``, ``Thumbs.db``
and ``desktop.ini`` are skipped without a problem. A manifest that is too large, not UTF-8 or
not the only one refuses the whole archive (:class:`BadManifest`). Transcripts and the
manifest are UTF-8, a leading byte-order mark dropped.

A part of :mod:`curation.archives`; nothing here is its public API.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from curation.archive_formats import Budget, EntryRefused, FormatReader, Member, read_entry
from curation.archive_names import (
    Role,
    UnsafePath,
    is_junk,
    normalized,
    role_of,
    shown_name,
    why_unsupported,
)
from curation.archive_records import BadManifest, EntryProblem, ProblemCode


@dataclass(frozen=True, slots=True)
class AudioEntry:
    """An audio entry as the scan found it: where it is and its size, not its bytes."""

    index: int
    raw_name: str
    name: str
    size: int


@dataclass
class Scan:
    """What one pass found; ``refused`` maps a name to its problem, ``seen`` counts names."""

    problems: list[EntryProblem] = field(default_factory=list)
    audio: list[AudioEntry] = field(default_factory=list)
    transcripts: dict[str, str] = field(default_factory=dict)
    refused: dict[str, ProblemCode] = field(default_factory=dict)
    seen: Counter[str] = field(default_factory=Counter)
    manifest: tuple[str, str] | None = None

    def refuse(self, name: str, code: ProblemCode, message: str) -> None:
        self.problems.append(EntryProblem(name, code, message))
        self.refused[name] = code


def scan_entries(archive: FormatReader, budget: Budget) -> Scan:
    scan = Scan()
    for member in archive.members(budget):
        if member.kind == "dir":
            continue
        try:
            name = normalized(member.raw_name)
        except UnsafePath as why:
            shown = shown_name(member.raw_name)
            scan.problems.append(EntryProblem(shown, "unsafe_path", f"{why}; not used"))
            continue
        if is_junk(name):
            continue
        scan.seen[name] += 1
        if member.kind == "link":
            scan.refuse(name, "link", f"{member.detail}; links are never followed")
        elif member.kind == "unreadable":
            scan.refuse(name, "unreadable_entry", member.detail)
        elif (role := role_of(name)) is None:
            scan.problems.append(EntryProblem(name, "unsupported_file", why_unsupported(name)))
        else:
            _take(scan, archive, member, name, role, budget)
    return scan


def _take(
    scan: Scan, archive: FormatReader, member: Member, name: str, role: Role, budget: Budget
) -> None:
    try:
        with archive.content(member, budget) as read:
            data, size = read_entry(read, budget.limits, keep=role != "audio")
    except EntryRefused as why:
        if role == "manifest":
            raise BadManifest(f"{name} is {why}") from None
        scan.refuse(name, "entry_too_large", f"{why}; not read further")
        return
    if role == "audio":
        scan.audio.append(AudioEntry(member.index, member.raw_name, name, size))
        return
    text = _decoded(data)
    if role == "transcript":
        if text is None:
            scan.refuse(name, "not_utf8", "the transcript is not UTF-8 text")
        else:
            scan.transcripts[name] = text
        return
    if scan.manifest is not None:
        raise BadManifest(f"the archive holds more than one manifest ({scan.manifest[0]}, {name})")
    if text is None:
        raise BadManifest(f"{name} is not UTF-8 text")
    scan.manifest = (name, text)


def _decoded(data: bytes) -> str | None:
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return None
