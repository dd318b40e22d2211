"""Validate a manifest with great-expectations: which rows may enter a training set, and why not.

    result = validate(manifest, ValidationRules(charset="abcdefghijklmnopqrstuvwxyz' "))
    result.valid, result.quarantine  # passing rows; failing rows + ``failed_expectations``

Every check is a great-expectations expectation run on the manifest in one suite, with
``result_format="COMPLETE"`` so each failure's row is known (``unexpected_index_list``):

- ``consent`` in ``rules.allowed_consent`` (opted_out, erased and expired samples fail);
- ``duration`` between ``min_duration`` and ``max_duration``;
- ``transcript`` not null, not blank (``\\A\\s*\\Z`` must not match) and, with a charset,
  made only of its characters;
- every vocabulary attribute in its vocabulary (missing values pass);
- ``snr_db`` between ``snr_min`` and ``snr_max`` (missing passes);
- one copy per audio fingerprint. GX has no "keep the first" expectation, so a derived column
  ``audio_copy`` numbers the rows sharing an ``audio_sha256`` in (``created``, ``sample_id``)
  order (0 for the earliest, rows without a timestamp last, missing where there is no
  fingerprint) and ``expect_column_values_to_be_in_set(audio_copy, [0])`` fails every later copy.

Transcripts are customer data: results, JSON and HTML carry sample ids and counts only.
"""

from __future__ import annotations

import html
import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from curation.manifests import replace_atomically
from curation.schema import (
    CONSENT_STATES,
    STRING_COLUMNS,
    VOCABULARIES,
    Seconds,
    coerce,
)

with warnings.catch_warnings():
    # great_expectations 1.24 imports the deprecated sre_constants and sre_parse; the project's
    # filterwarnings=error would otherwise turn its import into a failure.
    warnings.filterwarnings("ignore", "module 'sre_.*' is deprecated", DeprecationWarning)
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.expectations.core.expect_column_values_to_be_between import (
        ExpectColumnValuesToBeBetween,
    )
    from great_expectations.expectations.core.expect_column_values_to_be_in_set import (
        ExpectColumnValuesToBeInSet,
    )
    from great_expectations.expectations.core.expect_column_values_to_match_regex import (
        ExpectColumnValuesToMatchRegex,
    )
    from great_expectations.expectations.core.expect_column_values_to_not_be_null import (
        ExpectColumnValuesToNotBeNull,
    )
    from great_expectations.expectations.core.expect_column_values_to_not_match_regex import (
        ExpectColumnValuesToNotMatchRegex,
    )
    from great_expectations.expectations.expectation import Expectation
    from great_expectations.validator.v1_validator import Validator

AUDIO_COPY: Final = "audio_copy"  # derived column: 0 for the earliest row of each fingerprint
EXAMPLES: Final = 20  # failing sample ids kept per expectation
_BLANK: Final = r"\A\s*\Z"


class ValidationError(RuntimeError):
    """great-expectations could not evaluate an expectation (not: the data failed one)."""


@dataclass(frozen=True)
class ValidationRules:
    """What a training-set row must satisfy; the defaults suit 16 kHz English ASR."""

    min_duration: Seconds = 0.5
    max_duration: Seconds = 30.0
    charset: str | None = None  # characters a transcript may use; None: any
    snr_min: float = -10.0  # dB; a missing SNR passes
    snr_max: float = 100.0
    # column -> allowed values; a missing value passes
    vocabularies: Mapping[str, frozenset[str]] = field(default_factory=lambda: VOCABULARIES)
    allowed_consent: tuple[str, ...] = ("opted_in",)
    unique_audio: bool = True  # later copies of the same audio_sha256 fail

    def __post_init__(self) -> None:
        if not self.min_duration <= self.max_duration:
            raise ValueError("min_duration must not exceed max_duration")
        if not self.snr_min <= self.snr_max:
            raise ValueError("snr_min must not exceed snr_max")
        if self.charset == "":
            raise ValueError("charset must name at least one character (None allows any)")
        unknown = [name for name in self.vocabularies if name not in STRING_COLUMNS]
        if unknown:
            raise ValueError(f"vocabularies for non-string columns: {', '.join(unknown)}")
        states = [state for state in self.allowed_consent if state not in CONSENT_STATES]
        if states:
            raise ValueError(f"unknown consent state(s): {', '.join(states)}")


@dataclass(frozen=True)
class ExpectationOutcome:
    """How one expectation went; ``examples`` are failing sample ids (at most 20)."""

    expectation: str  # e.g. "expect_column_values_to_be_in_set"
    column: str
    kwargs: dict[str, Any]  # JSON-able, without GX's batch id
    success: bool
    element_count: int
    unexpected_count: int
    examples: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.expectation}({self.column})"


@dataclass
class ValidationResult:
    """The outcome of :func:`validate`; ``save`` writes JSON, HTML and the quarantine."""

    success: bool
    valid: pd.DataFrame  # schema columns
    quarantine: pd.DataFrame  # schema columns + failed_expectations ("label; label")
    expectations: list[ExpectationOutcome]
    statistics: dict[str, int]  # evaluated, successful, rows, valid_rows, quarantined_rows
    name: str = "training-set"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: statistics and per-expectation counts and failing sample ids."""
        return {
            "name": self.name,
            "success": self.success,
            "statistics": dict(self.statistics),
            "expectations": [
                {**asdict(outcome), "label": outcome.label, "examples": list(outcome.examples)}
                for outcome in self.expectations
            ],
        }

    def save(self, directory: Path) -> dict[str, Path]:
        """Write ``validation.json``, ``validation.html`` and ``quarantine.parquet``."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = {
            "json": directory / "validation.json",
            "html": directory / "validation.html",
            "quarantine": directory / "quarantine.parquet",
        }
        text = json.dumps(self.to_dict(), indent=2)
        replace_atomically(paths["json"], lambda partial: partial.write_text(text, "utf-8"))
        page = render_html(self)
        replace_atomically(paths["html"], lambda partial: partial.write_text(page, "utf-8"))
        replace_atomically(
            paths["quarantine"], lambda partial: self.quarantine.to_parquet(partial, index=False)
        )
        return paths


def validate(
    frame: pd.DataFrame, rules: ValidationRules = ValidationRules(), *, name: str = "training-set"
) -> ValidationResult:
    """Run the rules as one great-expectations suite; split rows into valid and quarantined.

        result = validate(manifest)
        result.statistics["quarantined_rows"], result.quarantine["failed_expectations"]

    ``frame`` is coerced to the schema first; GX context and suite are built per call.
    """
    manifest = coerce(frame)  # RangeIndex: GX's unexpected_index_list are row positions
    batch = _batch(manifest, rules)
    run = _run_suite(batch, _expectations(rules), name)
    sample_ids = manifest["sample_id"].to_numpy()
    outcomes: list[ExpectationOutcome] = []
    failures: list[tuple[str, npt.NDArray[np.int64]]] = []
    for result in run.results:
        config = result.expectation_config
        problem = _exception_message(result.exception_info)
        if problem is not None:
            raise ValidationError(f"{config.type} on {config.kwargs.get('column')}: {problem}")
        rows = np.asarray(result.result.get("unexpected_index_list") or [], dtype=np.int64)
        kwargs = {key: value for key, value in config.kwargs.items() if key != "batch_id"}
        outcome = ExpectationOutcome(
            expectation=config.type,
            column=str(kwargs["column"]),
            kwargs=json.loads(json.dumps(kwargs, default=sorted)),
            success=bool(result.success),
            element_count=int(result.result.get("element_count", len(manifest))),
            unexpected_count=len(rows),
            examples=tuple(str(sample_id) for sample_id in sample_ids[rows[:EXAMPLES]]),
        )
        outcomes.append(outcome)
        if len(rows):
            failures.append((outcome.label, rows))
    valid, quarantine = _split(manifest, failures)
    evaluated = len(outcomes)
    return ValidationResult(
        success=bool(run.success),
        valid=valid,
        quarantine=quarantine,
        expectations=outcomes,
        statistics={
            "evaluated": evaluated,
            "successful": sum(outcome.success for outcome in outcomes),
            "rows": len(manifest),
            "valid_rows": len(valid),
            "quarantined_rows": len(quarantine),
        },
        name=name,
    )


def render_html(result: ValidationResult) -> str:
    """A self-contained page: summary, one table row per expectation, failing sample ids."""
    stats = {key: html.escape(str(value)) for key, value in result.statistics.items()}
    verdict = "passed" if result.success else "failed"
    rows = "\n".join(
        "<tr class='{cls}'><td>{label}</td><td>{verdict}</td><td>{total}</td><td>{bad}</td>"
        "<td><code>{kwargs}</code></td><td>{examples}</td></tr>".format(
            cls="pass" if outcome.success else "fail",
            label=html.escape(outcome.label),
            verdict="pass" if outcome.success else "FAIL",
            total=html.escape(str(outcome.element_count)),
            bad=html.escape(str(outcome.unexpected_count)),
            kwargs=html.escape(json.dumps(_shown_kwargs(outcome.kwargs))),
            examples=html.escape(", ".join(outcome.examples)),
        )
        for outcome in result.expectations
    )
    title = html.escape(f"Validation of {result.name}: {verdict}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }}
tr.fail td {{ background: #fde8e8; }}
tr.pass td {{ background: #e8f6e8; }}
</style></head>
<body>
<h1>{title}</h1>
<p>{stats["rows"]} rows: {stats["valid_rows"]} valid, {stats["quarantined_rows"]} quarantined.
{stats["successful"]} of {stats["evaluated"]} expectations passed.</p>
<table>
<tr><th>expectation</th><th>result</th><th>rows checked</th><th>rows failing</th>
<th>arguments</th><th>failing sample ids (first {EXAMPLES})</th></tr>
{rows}
</table>
</body></html>
"""


def _expectations(rules: ValidationRules) -> list[Expectation]:
    suite: list[Expectation] = [
        ExpectColumnValuesToBeInSet(column="consent", value_set=sorted(rules.allowed_consent)),
        ExpectColumnValuesToBeBetween(
            column="duration", min_value=rules.min_duration, max_value=rules.max_duration
        ),
        ExpectColumnValuesToNotBeNull(column="transcript"),
        ExpectColumnValuesToNotMatchRegex(column="transcript", regex=_BLANK),
    ]
    if rules.charset is not None:
        allowed = "".join(re.escape(char) for char in sorted(set(rules.charset)))
        suite.append(
            ExpectColumnValuesToMatchRegex(column="transcript", regex=rf"\A[{allowed}]*\Z")
        )
    suite.extend(
        ExpectColumnValuesToBeInSet(column=column, value_set=sorted(values))
        for column, values in sorted(rules.vocabularies.items())
    )
    suite.append(
        ExpectColumnValuesToBeBetween(
            column="snr_db", min_value=rules.snr_min, max_value=rules.snr_max
        )
    )
    if rules.unique_audio:
        suite.append(ExpectColumnValuesToBeInSet(column=AUDIO_COPY, value_set=[0]))
    return suite


def _batch(manifest: pd.DataFrame, rules: ValidationRules) -> pd.DataFrame:
    """The columns the suite reads, plus the derived ``audio_copy``; no copy (Copy-on-Write)."""
    columns = ["consent", "duration", "transcript", *sorted(rules.vocabularies), "snr_db"]
    batch = manifest.loc[:, list(dict.fromkeys(columns))]
    # Set-valued columns as categoricals: GX filters and hashes the whole batch once per
    # expectation, and integer codes are far cheaper to move than a million strings.
    for name in ("consent", *rules.vocabularies):
        batch[name] = batch[name].astype("category")
    if rules.unique_audio:
        batch[AUDIO_COPY] = _audio_copy(manifest)
    return batch


def _audio_copy(manifest: pd.DataFrame) -> pd.Series:
    """Per row: how many rows with the same fingerprint come before it (NaN: no fingerprint)."""
    fingerprint = manifest["audio_sha256"]
    copy = pd.Series(np.where(fingerprint.notna(), 0.0, np.nan), index=manifest.index)
    shared = fingerprint.notna() & fingerprint.duplicated(keep=False)
    if shared.any():
        ordered = manifest.loc[shared, ["audio_sha256", "created", "sample_id"]].sort_values(
            ["audio_sha256", "created", "sample_id"], na_position="last", kind="stable"
        )
        rank = ordered.groupby("audio_sha256", sort=False).cumcount()
        copy.loc[rank.index] = rank.to_numpy(dtype=np.float64)
    return copy


def _run_suite(batch: pd.DataFrame, expectations: list[Expectation], name: str) -> Any:
    # A fresh in-memory context per call: cheap (milliseconds) and shares no state between
    # threads. Progress bars off: GX would print tqdm bars to stderr for every run.
    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            analytics_enabled=False,
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        ),
    )
    definition = (
        context.data_sources.add_pandas(name="manifest")
        .add_dataframe_asset(name="rows")
        .add_batch_definition_whole_dataframe(name="all rows")
    )
    suite = gx.ExpectationSuite(name=name, expectations=expectations)
    # GX's own validator, as ValidationDefinition.run and Batch.validate use it. run() also
    # serialises the COMPLETE result into the context's store (3/4 of the time on a million
    # rows, and a copy of failing transcripts); Batch.validate fetches, and so fingerprints,
    # the whole frame twice (about a second per million rows).
    validator = Validator(
        batch_definition=definition,
        batch_parameters={"dataframe": batch},
        result_format="COMPLETE",
    )
    return validator.validate_expectation_suite(suite)


def _split(
    manifest: pd.DataFrame, failures: list[tuple[str, npt.NDArray[np.int64]]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows failing nothing, and failing rows with every label they failed, in suite order."""
    if len(failures) > 63:
        raise ValueError("at most 63 expectations fit the failure bitmask")
    # One bit per expectation; the distinct bitmasks (a handful) are labelled in Python and
    # the labels spread to rows with one take, so no per-row string work.
    bits = np.zeros(len(manifest), dtype=np.int64)
    for position, (_, rows) in enumerate(failures):
        bits[rows] |= np.int64(1) << position
    failing = bits != 0
    codes, masks = pd.factorize(bits[failing])
    labels = np.array(
        [
            "; ".join(label for k, (label, _) in enumerate(failures) if mask >> k & 1)
            for mask in masks
        ],
        dtype=object,
    )
    quarantine = manifest.loc[failing].reset_index(drop=True)
    quarantine["failed_expectations"] = pd.Series(labels[codes], dtype="str")
    return manifest.loc[~failing].reset_index(drop=True), quarantine


def _exception_message(info: Any) -> str | None:
    """GX's exception_info is one dict, or one per metric; the first raised message."""
    if not isinstance(info, Mapping):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            return str(value.get("exception_message"))
    return None


def _shown_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in kwargs.items() if key != "column"}
