"""The manifest: one row per audio sample, as a pandas DataFrame with a fixed schema.

    manifest = coerce(pd.DataFrame(rows))      # checks columns, fixes dtypes
    manifest["duration"].sum() / 3600          # hours

Columns (``COLUMNS``; every loader returns exactly these, in this order):

========================  ===================  ===========================================
column                    dtype                meaning
========================  ===================  ===========================================
sample_id                 str                  stable id of the sample (unique)
audio                     str or missing       where the audio is (path/URI); missing
                                               when it is only in the encrypted store
duration                  float64              seconds
transcript                str or missing       the reference text
language                  str or missing       BCP-47 tag, e.g. ``en``
accent                    str or missing       ``VOCABULARIES["accent"]``
age_group                 str or missing       ``VOCABULARIES["age_group"]``
sex                       str or missing       ``VOCABULARIES["sex"]``
noise_type                str or missing       ``VOCABULARIES["noise_type"]``
snr_db                    float64 (NaN)        measured signal-to-noise ratio, dB
environment               str or missing       ``VOCABULARIES["environment"]``
domain                    str or missing       open: a lowercase slug (``medical``)
organization_id           str or missing       the tenant the sample came from
consent                   str                  ``CONSENT_STATES``
audio_sha256              str or missing       fingerprint of the decoded audio bytes
created                   datetime64[us, UTC]  when the sample was kept
========================  ===================  ===========================================

The controlled vocabularies live here (not in the service) so the library and the sample
store agree on them: a value outside them would make a new, empty group when balancing.
"""

from __future__ import annotations

import hashlib
from typing import Final

import pandas as pd

# Re-exported: the manifest's vocabularies live in a module without pandas (the service's
# command line loads them).
from curation.vocabulary import ATTRIBUTE_COLUMNS as ATTRIBUTE_COLUMNS
from curation.vocabulary import CATEGORICAL_ATTRIBUTES as CATEGORICAL_ATTRIBUTES
from curation.vocabulary import CONSENT_STATES as CONSENT_STATES
from curation.vocabulary import SNR_BANDS as SNR_BANDS
from curation.vocabulary import VOCABULARIES as VOCABULARIES

Seconds = float
Hours = float

STRING_COLUMNS: Final = (
    "sample_id",
    "audio",
    "transcript",
    "language",
    "accent",
    "age_group",
    "sex",
    "noise_type",
    "environment",
    "domain",
    "organization_id",
    "consent",
    "audio_sha256",
)
FLOAT_COLUMNS: Final = ("duration", "snr_db")
DATETIME_COLUMNS: Final = ("created",)
COLUMNS: Final = (
    "sample_id",
    "audio",
    "duration",
    "transcript",
    "language",
    "accent",
    "age_group",
    "sex",
    "noise_type",
    "snr_db",
    "environment",
    "domain",
    "organization_id",
    "consent",
    "audio_sha256",
    "created",
)
REQUIRED_COLUMNS: Final = ("sample_id", "duration")


class ManifestError(ValueError):
    """A manifest that does not fit the schema; the message says which column and why."""


def empty_manifest() -> pd.DataFrame:
    """A manifest with no rows and every column in its dtype."""
    return coerce(pd.DataFrame({"sample_id": [], "duration": []}))


def coerce(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with exactly :data:`COLUMNS` (missing optional ones added empty).

    Raises :class:`ManifestError` for a missing required column, a duplicate or empty
    ``sample_id``, a non-numeric or negative duration, or an unparseable ``created``.
    Extra columns are dropped; ``consent`` defaults to ``opted_in`` where missing.
    """
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        raise ManifestError(f"manifest lacks required column(s): {', '.join(missing)}")
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for name in STRING_COLUMNS:
        if name in frame.columns:
            out[name] = frame[name].reset_index(drop=True).astype("str")  # missing stays NaN
        else:
            out[name] = pd.Series([None] * len(frame), dtype="str")
    for name in FLOAT_COLUMNS:
        if name in frame.columns:
            try:
                out[name] = pd.to_numeric(frame[name].reset_index(drop=True), errors="raise")
            except (TypeError, ValueError) as err:
                raise ManifestError(f"column {name} must be numeric: {err}") from None
            out[name] = out[name].astype("float64")
        else:
            out[name] = pd.Series([float("nan")] * len(frame), dtype="float64")
    if "created" in frame.columns:
        try:
            created = pd.to_datetime(frame["created"].reset_index(drop=True), utc=True)
        except (TypeError, ValueError) as err:
            raise ManifestError(f"column created must be a timestamp: {err}") from None
        out["created"] = created.astype("datetime64[us, UTC]")
    else:
        out["created"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[us, UTC]")
    out["consent"] = out["consent"].fillna("opted_in")
    _check_ids_and_durations(out)
    return out.loc[:, list(COLUMNS)]


def _check_ids_and_durations(frame: pd.DataFrame) -> None:
    ids = frame["sample_id"]
    if ids.isna().any() or (ids.str.len() == 0).any():
        raise ManifestError("sample_id must be set on every row")
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        raise ManifestError(f"sample_id must be unique; repeated: {', '.join(duplicated[:5])}")
    durations = frame["duration"]
    if durations.isna().any() or (durations < 0).any():
        raise ManifestError("duration must be a non-negative number of seconds on every row")


def content_hash(frame: pd.DataFrame) -> str:
    """sha256 over the manifest's rows in ``sample_id`` order: equal content, equal hash.

    Row order and extra columns do not change it; any value in :data:`COLUMNS` does.
    """
    ordered = coerce(frame).sort_values("sample_id", kind="stable").reset_index(drop=True)
    digest = hashlib.sha256()
    digest.update(",".join(COLUMNS).encode())
    row_hashes = pd.util.hash_pandas_object(ordered, index=False).to_numpy()
    digest.update(row_hashes.tobytes())
    return digest.hexdigest()


def snr_band(snr_db: pd.Series) -> pd.Series:
    """The SNR band of each value ("clean" where no SNR was measured)."""
    out = pd.Series("clean", index=snr_db.index, dtype="str")
    for name, low, high in SNR_BANDS:
        out[(snr_db >= low) & (snr_db < high)] = name
    return out


def hours(frame: pd.DataFrame) -> Hours:
    return float(frame["duration"].sum()) / 3600.0
