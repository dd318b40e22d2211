"""Manifests on disk (CSV, Parquet, JSON lines), the synthetic corpus's manifest, and lhotse.

    manifest = read_manifest(Path("train.parquet"))   # exactly schema.COLUMNS, coerced
    write_manifest(manifest, Path("train.jsonl"))      # atomic; reads back equal

Every reader returns :func:`curation.schema.coerce`'d frames and raises
:class:`~curation.schema.ManifestError` naming the file (and the line, for JSON lines) when
the file is missing, unreadable or does not fit the schema. Writers go through a temporary
file and :func:`os.replace`, so a reader never sees half a manifest.

Round trips are exact (missing values, NaN ``snr_db``, microsecond UTC ``created``), with one
limit of the format: CSV cannot tell an empty string from a missing value, so ``""`` reads
back as missing there.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
import pandas as pd
import pyarrow as pa

from curation.schema import (
    ATTRIBUTE_COLUMNS,
    COLUMNS,
    FLOAT_COLUMNS,
    STRING_COLUMNS,
    ManifestError,
    coerce,
)
from durable import atomic_path

# Written this way so every row has the same format and pandas parses the column in one pass.
_CREATED_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%f+00:00"
_CSV_DTYPES: Final = dict.fromkeys(STRING_COLUMNS, "str") | dict.fromkeys(FLOAT_COLUMNS, "float64")
_SYNTH_REQUIRED: Final = ("id", "audio", "text", "duration")
_SYNTH_ATTRIBUTES: Final = ATTRIBUTE_COLUMNS
if TYPE_CHECKING:
    from lhotse import CutSet, Recording

# Attributes carried in a lhotse supervision's ``custom`` dict.
LHOTSE_CUSTOM_FIELDS: Final = (
    *ATTRIBUTE_COLUMNS,
    "organization_id",
    "consent",
    "audio_sha256",
    "created",
)
# How far a cut may run past its audio: lhotse's LHOTSE_AUDIO_DURATION_MISMATCH_TOLERANCE.
_AUDIO_DURATION_TOLERANCE: Final = 0.025


def read_manifest(path: Path) -> pd.DataFrame:
    """The manifest in ``path``, by suffix: ``.csv``, ``.parquet``, ``.jsonl``/``.json`` (lines).

        manifest = read_manifest(Path("train.csv"))
        manifest["duration"].sum()  # seconds

    Other suffixes raise :class:`ManifestError`.
    """
    return _format_of(path)[0](path)


def write_manifest(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``coerce(frame)`` to ``path`` in the format its suffix names; returns ``path``.

    The file appears whole or not at all (temporary file in the same folder, then rename).
    """
    write = _format_of(path)[1]
    manifest = coerce(frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, lambda partial: write(manifest, partial))
    return path


def replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(partial)`` on a temporary file beside ``path``, then rename it to ``path``."""
    with atomic_path(path, mode=0o600, fsync=False) as partial:
        write(partial)


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV manifest: a header row, one sample per row, missing values as empty fields."""
    try:
        # keep_default_na=False: a transcript that says "NA" or "null" is text, not missing.
        raw = pd.read_csv(path, dtype=_CSV_DTYPES, keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} does not exist") from None
    except (OSError, ValueError) as err:  # ParserError, EmptyDataError, UnicodeDecodeError
        raise ManifestError(f"manifest {path} is not a readable CSV file: {err}") from None
    return _coerce_file(raw, path)


def read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet manifest with the schema's columns (extra ones are dropped)."""
    try:
        raw = pd.read_parquet(path)
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} does not exist") from None
    except (OSError, ValueError, pa.ArrowException) as err:
        raise ManifestError(f"manifest {path} is not a readable Parquet file: {err}") from None
    return _coerce_file(raw, path)


def read_jsonl(path: Path) -> pd.DataFrame:
    """A JSON-lines manifest: one object per line with the schema's keys; blank lines skipped.

    An empty file is an empty manifest (the writer writes no line for it).
    """
    rows = _json_lines(path)
    raw = pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(COLUMNS))
    return _coerce_file(raw, path)


def from_synth_manifest(path: Path, *, fingerprint: bool = False) -> pd.DataFrame:
    """The synthetic corpus's ``manifest.jsonl`` (asr/synth.py) as a schema manifest.

        manifest = from_synth_manifest(corpus / "manifest.jsonl", fingerprint=True)
        manifest["audio"].iloc[0]  # absolute path of the WAV file

    ``id``/``text`` become ``sample_id``/``transcript``, ``audio`` (relative to the manifest's
    folder) an absolute path; language is ``en`` and consent ``opted_in`` (the corpus is ours).
    ``audio_sha256`` is the sha256 of each audio file's bytes when ``fingerprint`` is set
    (it reads every file). The generator records no time, so ``created`` is missing.
    """
    rows = _json_lines(path, required=_SYNTH_REQUIRED)
    raw = pd.DataFrame(rows, columns=list(dict.fromkeys([*_SYNTH_REQUIRED, *_SYNTH_ATTRIBUTES])))
    folder = str(path.parent.absolute())
    audio = [os.path.normpath(os.path.join(folder, str(name))) for name in raw["audio"]]
    manifest = pd.DataFrame(
        {
            "sample_id": raw["id"],
            "audio": audio,
            "duration": raw["duration"],
            "transcript": raw["text"],
            "language": "en",
            **{name: raw[name] for name in _SYNTH_ATTRIBUTES},
            "consent": "opted_in",
        }
    )
    if fingerprint:
        manifest["audio_sha256"] = [_file_sha256(Path(name)) for name in audio]
    return _coerce_file(manifest, path)


def to_lhotse(frame: pd.DataFrame) -> CutSet:
    """One lhotse ``MonoCut`` per sample: its audio file, and one supervision with the transcript.

        cuts = to_lhotse(manifest)
        cuts[0].supervisions[0].custom["accent"]  # the schema's attributes live in ``custom``

    The cut lasts the manifest's ``duration``; the supervision spans the cut and carries
    ``language`` and, in ``custom``, :data:`LHOTSE_CUSTOM_FIELDS` (missing values as ``None``,
    ``created`` as an ISO 8601 string). Raises :class:`ManifestError` for a row without audio,
    audio that is not a readable file, or a duration longer than the audio.
    """
    # lhotse (and torch through it) is imported on first use: it takes ~2 s, and most users
    # of this module (the service, the CLI) never convert to lhotse.
    from lhotse import CutSet, MonoCut, SupervisionSegment

    cuts = []
    for row in coerce(frame).to_dict(orient="records"):
        sample_id = str(row["sample_id"])
        recording = _recording(sample_id, _present(row["audio"]))
        duration = float(row["duration"])
        if duration > recording.duration + _AUDIO_DURATION_TOLERANCE:
            raise ManifestError(
                f"sample {sample_id}: duration {duration} s is longer than its audio "
                f"({recording.duration} s)"
            )
        custom = {name: _present(row[name]) for name in LHOTSE_CUSTOM_FIELDS}
        if custom["created"] is not None:
            custom["created"] = row["created"].isoformat()
        supervision = SupervisionSegment(
            id=sample_id,
            recording_id=recording.id,
            start=0.0,
            duration=duration,
            channel=0,
            text=_present(row["transcript"]),
            language=_present(row["language"]),
            custom=custom,
        )
        cuts.append(
            MonoCut(
                id=sample_id,
                start=0.0,
                duration=duration,
                channel=0,
                supervisions=[supervision],
                recording=recording,
            )
        )
    return CutSet.from_cuts(cuts)


def from_lhotse(cuts: CutSet) -> pd.DataFrame:
    """A manifest with one row per cut (the inverse of :func:`to_lhotse`).

        manifest = from_lhotse(CutSet.from_file("cuts.jsonl.gz"))
        manifest.columns.tolist() == list(schema.COLUMNS)

    ``audio`` is the recording's first file or URL source; the transcript joins the cut's
    supervision texts; language and the ``custom`` attributes come from its first supervision.
    """
    rows: list[dict[str, Any]] = []
    for cut in cuts:
        supervisions = sorted(cut.supervisions, key=lambda segment: segment.start)
        first = supervisions[0] if supervisions else None
        custom: Mapping[str, Any] = (first.custom if first is not None else None) or {}
        texts = [segment.text for segment in supervisions if segment.text is not None]
        rows.append(
            {
                "sample_id": cut.id,
                "audio": _audio_source(cut.recording),
                "duration": cut.duration,
                "transcript": " ".join(texts) if texts else None,
                "language": first.language if first is not None else None,
                **{name: custom.get(name) for name in LHOTSE_CUSTOM_FIELDS},
            }
        )
    raw = pd.DataFrame(rows, columns=list(COLUMNS))
    return _coerce_file(raw, Path("<lhotse CutSet>"))


def _format_of(
    path: Path,
) -> tuple[Callable[[Path], pd.DataFrame], Callable[[pd.DataFrame, Path], None]]:
    formats = {
        ".csv": (read_csv, _write_csv),
        ".parquet": (read_parquet, _write_parquet),
        ".jsonl": (read_jsonl, _write_jsonl),
        ".json": (read_jsonl, _write_jsonl),
    }
    try:
        return formats[path.suffix.lower()]
    except KeyError:
        known = ", ".join(formats)
        raise ManifestError(f"manifest {path}: unknown format (suffix one of {known})") from None


def _coerce_file(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``coerce(raw)``, with ``created`` parsed as ISO 8601 and errors naming ``path``."""
    try:
        if "created" in raw.columns and not isinstance(raw["created"].dtype, pd.DatetimeTZDtype):
            raw = raw.assign(created=pd.to_datetime(raw["created"], utc=True, format="ISO8601"))
        return coerce(raw)
    except ManifestError as err:
        raise ManifestError(f"manifest {path}: {err}") from None
    except (TypeError, ValueError) as err:
        raise ManifestError(f"manifest {path}: column created must be ISO 8601: {err}") from None


def _write_csv(manifest: pd.DataFrame, path: Path) -> None:
    manifest.assign(created=_created_text(manifest)).to_csv(path, index=False)


def _write_parquet(manifest: pd.DataFrame, path: Path) -> None:
    manifest.to_parquet(path, index=False)


def _write_jsonl(manifest: pd.DataFrame, path: Path) -> None:
    text = manifest.assign(created=_created_text(manifest))
    # Missing values become None (JSON null); orjson writes floats in shortest round-trip form.
    columns = [text[name].astype(object).where(text[name].notna(), None) for name in COLUMNS]
    lines = [
        orjson.dumps(dict(zip(COLUMNS, values, strict=True)))
        for values in zip(*columns, strict=True)
    ]
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _created_text(manifest: pd.DataFrame) -> pd.Series:
    created: pd.Series = manifest["created"].dt.strftime(_CREATED_FORMAT)
    return created


def _json_lines(path: Path, *, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} does not exist") from None
    except OSError as err:
        raise ManifestError(f"manifest {path} cannot be read: {err}") from None
    rows = []
    # Split on b"\n" only: str.splitlines would also split at U+2028 inside a JSON string.
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            raise ManifestError(f"{path}:{number}: not valid JSON ({err})") from None
        if not isinstance(row, dict):
            raise ManifestError(f"{path}:{number}: expected a JSON object per line")
        missing = [key for key in required if key not in row]
        if missing:
            raise ManifestError(f"{path}:{number}: missing {', '.join(missing)}")
        rows.append(row)
    return rows


def _file_sha256(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as err:
        raise ManifestError(f"cannot fingerprint audio {path}: {err}") from None


def _recording(sample_id: str, audio: Any) -> Recording:
    if audio is None:
        raise ManifestError(f"sample {sample_id} has no audio path (lhotse needs the file)")
    if not Path(audio).is_file():
        raise ManifestError(f"sample {sample_id}: audio {audio} is not a file")
    from lhotse import Recording

    try:
        return Recording.from_file(audio, recording_id=sample_id)
    except Exception as err:  # soundfile/audioread raise their own error types
        raise ManifestError(f"sample {sample_id}: cannot read audio {audio}: {err}") from None


def _audio_source(recording: Recording | None) -> str | None:
    if recording is None or not recording.sources:
        return None
    source = recording.sources[0]
    return str(source.source) if source.type in ("file", "url") else None


def _present(value: Any) -> Any:
    """``value``, or None where pandas marks it missing (NaN, NaT, None)."""
    return None if pd.isna([value])[0] else value
