"""The rows of a root ``manifest.csv`` or ``manifest.jsonl``, each checked on its own.

    rows, problems = manifest_rows("manifest.csv", text)  # problems: bad_manifest_row, by line
    [(row.audio, row.transcript or row.transcript_file, row.speaker) for row in rows]

A row names its ``audio``, then ``transcript`` (the text) or ``transcript_file`` (a ``.txt``
in the archive), and an optional ``speaker``, paths relative to the root. Values are text,
stripped; an empty one is missing. A CSV's header names the columns (any case, surrounding
spaces dropped) and must have ``audio`` and a transcript column, or the archive is refused
(:class:`BadManifest`), as it is when the CSV is empty or cannot be parsed. A JSON line is
one object; blank lines are skipped. A row that cannot be used (no audio, both transcripts
or neither, a value that is not text, more fields than the header, a line that is not a
JSON object) is a ``bad_manifest_row`` problem with its line, and the other rows are kept.
Whether a row's files are in the archive is for pairing (:mod:`curation.archive_pairing`).

A part of :mod:`curation.archives`; nothing here is its public API.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from curation.archive_records import BadManifest, EntryProblem


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """A usable row, its values stripped, as written (not yet checked against the archive)."""

    line: int
    audio: str
    transcript: str | None
    transcript_file: str | None
    speaker: str | None


def manifest_rows(name: str, text: str) -> tuple[list[ManifestRow], list[EntryProblem]]:
    records = _csv_records(name, text) if name.endswith(".csv") else _jsonl_records(text)
    rows: list[ManifestRow] = []
    problems: list[EntryProblem] = []
    for line, record in records:
        row = _row(line, record) if not isinstance(record, str) else record
        if isinstance(row, str):
            problems.append(EntryProblem(name, "bad_manifest_row", row, line))
        else:
            rows.append(row)
    return rows, problems


def _csv_records(name: str, text: str) -> list[tuple[int, Mapping[str, object] | str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    records: list[tuple[int, Mapping[str, object] | str]] = []
    try:
        if not reader.fieldnames:
            raise BadManifest(f"{name} is empty")
        columns = [column.strip().lower() for column in reader.fieldnames]
        if "audio" not in columns or not {"transcript", "transcript_file"} & set(columns):
            raise BadManifest(
                f"{name} needs the columns audio and transcript or transcript_file "
                f"(it has {', '.join(columns)})"
            )
        reader.fieldnames = columns
        for record in reader:
            extra = None in record  # restkey: more fields than the header
            records.append(
                (reader.line_num, "has more fields than the header" if extra else record)
            )
    except csv.Error as err:  # a quote left open, a field over csv's size limit
        raise BadManifest(f"{name}, line {reader.line_num}: {err}") from None
    return records


def _jsonl_records(text: str) -> list[tuple[int, Mapping[str, object] | str]]:
    records: list[tuple[int, Mapping[str, object] | str]] = []
    # Split on "\n" only: U+2028 inside a JSON string is not a line break.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            records.append((number, f"is not valid JSON ({err})"))
            continue
        records.append((number, value if isinstance(value, dict) else "is not a JSON object"))
    return records


def _row(line: int, record: Mapping[str, object]) -> ManifestRow | str:
    """A manifest row, or why it is bad."""
    values: dict[str, str | None] = {}
    for key in ("audio", "transcript", "transcript_file", "speaker"):
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            return f"{key} must be text"
        values[key] = value.strip() or None if value is not None else None
    audio, transcript = values["audio"], values["transcript"]
    transcript_file = values["transcript_file"]
    if audio is None:
        return "has no audio"
    if transcript is not None and transcript_file is not None:
        return "gives both transcript and transcript_file"
    if transcript is None and transcript_file is None:
        return "has no transcript or transcript_file"
    return ManifestRow(line, audio, transcript, transcript_file, values["speaker"])
