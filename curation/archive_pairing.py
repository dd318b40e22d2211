"""Audio files paired with their transcripts: by name, or by the root manifest's rows only.

    mode, planned, problems = plan_pairs(scan)  # mode: "names" or "manifest"
    [(pair.audio.name, pair.speaker) for pair in planned]  # the audio is read later, by index

**Pairing.** Without a manifest an audio file (``.wav``, ``.mp3``, ``.flac``) pairs with the
``.txt`` of the same name in the same folder: ``a/b/call-01.wav`` with ``a/b/call-01.txt``.
With ``manifest.csv`` or ``manifest.jsonl`` at the root, pairs come from the manifest only
(its rows: :mod:`curation.archive_manifest`), paths relative to the root and normalized as
entry names are (:mod:`curation.archive_names`). An audio file the manifest does not list is
reported ``audio_without_transcript`` and not used: there is no text for it, and the reseller
either forgot a row or sent the file by mistake. A ``.txt`` no row names is
``transcript_without_audio``. A pair's ``name`` is its audio file's; transcripts are
stripped of surrounding whitespace.

**Duplicates and refusals.** Entries sharing a name are ``duplicate_name`` and none of them
is used; so are, when pairing by name, audio files or transcripts sharing a stem (``a.wav``
and ``a.flac``). A manifest that lists one audio file twice uses neither row. A pair whose
audio or transcript is refused is dropped and reported once, under that refusal.

A part of :mod:`curation.archives`; nothing here is its public API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from curation.archive_manifest import ManifestRow, manifest_rows
from curation.archive_names import (
    AUDIO_SUFFIXES,
    TRANSCRIPT_SUFFIX,
    UnsafePath,
    name_stem,
    normalized,
    role_of,
    shown_name,
)
from curation.archive_records import EntryProblem, MatchMode, ProblemCode
from curation.archive_scan import AudioEntry, Scan


@dataclass(frozen=True, slots=True)
class PlannedPair:
    """A pair to read: its audio entry (read again later), transcript text and speaker."""

    audio: AudioEntry
    transcript: str
    speaker: str | None


def plan_pairs(scan: Scan) -> tuple[MatchMode, list[PlannedPair], list[EntryProblem]]:
    problems = list(scan.problems)
    refused = dict(scan.refused)
    for name, count in scan.seen.items():
        if count > 1:
            message = f"{count} entries have this name; none of them is used"
            problems.append(EntryProblem(name, "duplicate_name", message))
            refused[name] = "duplicate_name"
    audio = [entry for entry in scan.audio if entry.name not in refused]
    texts = {name: text for name, text in scan.transcripts.items() if name not in refused}
    if scan.manifest is None:
        planned, more = _pair_by_name(audio, texts, refused)
        return "names", planned, problems + more
    planned, more = _pair_by_manifest(scan.manifest, audio, texts, refused)
    return "manifest", planned, problems + more


def _pair_by_name(
    audio: list[AudioEntry], texts: dict[str, str], refused: Mapping[str, ProblemCode]
) -> tuple[list[PlannedPair], list[EntryProblem]]:
    # A refused half takes its pair with it; the refusal is the only problem reported.
    spoken_for = {name_stem(name) for name in refused if role_of(name) in ("audio", "transcript")}
    audio_by_stem: dict[str, list[AudioEntry]] = {}
    for entry in audio:
        audio_by_stem.setdefault(name_stem(entry.name), []).append(entry)
    texts_by_stem: dict[str, list[str]] = {}
    for name in texts:
        texts_by_stem.setdefault(name_stem(name), []).append(name)
    planned: list[PlannedPair] = []
    problems: list[EntryProblem] = []
    for stem, entries in audio_by_stem.items():
        transcripts = texts_by_stem.get(stem, [])
        if len(entries) > 1 or len(transcripts) > 1:
            names = [entry.name for entry in entries] + transcripts
            message = f"{', '.join(names)} share one name; none of them is used"
            problems.append(EntryProblem(names[0], "duplicate_name", message))
        elif transcripts:
            planned.append(PlannedPair(entries[0], texts[transcripts[0]].strip(), None))
        elif stem not in spoken_for:
            message = f"no {stem}{TRANSCRIPT_SUFFIX} beside it"
            problems.append(EntryProblem(entries[0].name, "audio_without_transcript", message))
    for stem, transcripts in texts_by_stem.items():
        if stem not in audio_by_stem and stem not in spoken_for:
            message = f"no audio file named {stem} ({', '.join(AUDIO_SUFFIXES)}) beside it"
            problems.extend(
                EntryProblem(name, "transcript_without_audio", message) for name in transcripts
            )
    return planned, problems


def _pair_by_manifest(
    manifest: tuple[str, str],
    audio: list[AudioEntry],
    texts: dict[str, str],
    refused: Mapping[str, ProblemCode],
) -> tuple[list[PlannedPair], list[EntryProblem]]:
    manifest_name = manifest[0]
    rows, problems = manifest_rows(*manifest)
    audio_by_name = {entry.name: entry for entry in audio}
    first_line: dict[str, int] = {}
    contested: set[str] = set()
    accepted: dict[str, PlannedPair] = {}
    named_texts: set[str] = set()
    for row in rows:
        resolved = _resolve(row, audio_by_name, texts, refused, named_texts)
        if isinstance(resolved, str):
            problems.append(EntryProblem(manifest_name, "bad_manifest_row", resolved, row.line))
        elif (name := resolved.audio.name) in first_line:
            message = f"lists {name} again (first on line {first_line[name]}); neither row is used"
            problems.append(EntryProblem(manifest_name, "bad_manifest_row", message, row.line))
            contested.add(name)
        else:
            first_line[name] = row.line
            accepted[name] = resolved
    planned = [
        accepted[entry.name]
        for entry in audio
        if entry.name in accepted and entry.name not in contested
    ]
    problems.extend(
        EntryProblem(entry.name, "audio_without_transcript", f"not listed in {manifest_name}")
        for entry in audio
        if entry.name not in first_line
    )
    problems.extend(
        EntryProblem(name, "transcript_without_audio", f"not named in {manifest_name}")
        for name in texts
        if name not in named_texts
    )
    return planned, problems


def _resolve(
    row: ManifestRow,
    audio_by_name: Mapping[str, AudioEntry],
    texts: Mapping[str, str],
    refused: Mapping[str, ProblemCode],
    named_texts: set[str],
) -> PlannedPair | str:
    """The row's pair, or why it has none."""
    try:
        audio_name = normalized(row.audio)
    except UnsafePath as why:
        return f"audio {shown_name(row.audio)}: {why}"
    if audio_name in refused:
        return f"audio {audio_name} is refused ({refused[audio_name]})"
    if (audio := audio_by_name.get(audio_name)) is None:
        return f"audio {audio_name} is not an audio file in the archive"
    if row.transcript_file is None:  # then manifest_rows made sure there is a transcript
        return PlannedPair(audio, row.transcript or "", row.speaker)
    try:
        text_name = normalized(row.transcript_file)
    except UnsafePath as why:
        return f"transcript_file {shown_name(row.transcript_file)}: {why}"
    named_texts.add(text_name)
    if text_name in refused:
        return f"transcript_file {text_name} is refused ({refused[text_name]})"
    if (text := texts.get(text_name)) is None:
        return f"transcript_file {text_name} is not a {TRANSCRIPT_SUFFIX} file in the archive"
    return PlannedPair(audio, text.strip(), row.speaker)
