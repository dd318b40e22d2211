"""Validation through great-expectations: each rule fails its crafted row, the rest stay valid."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from curation import schema
from curation.validation import (
    AUDIO_COPY,
    ExpectationOutcome,
    ValidationResult,
    ValidationRules,
    validate,
)

CHARSET = "abcdefghijklmnopqrstuvwxyz' "
RULES = ValidationRules(charset=CHARSET)
# Distinctive words: no report may contain them (transcripts are customer data).
SECRET = "confidential patient words"


def clean_rows(count: int, *, prefix: str = "ok") -> pd.DataFrame:
    """``count`` rows that pass every rule, each with its own audio fingerprint."""
    return pd.DataFrame(
        {
            "sample_id": [f"{prefix}{i:03d}" for i in range(count)],
            "audio": [f"/data/{prefix}{i}.wav" for i in range(count)],
            "duration": np.linspace(0.5, 30.0, count),
            "transcript": [f"{SECRET} number {'one' * (i + 1)}" for i in range(count)],
            "language": "en",
            "accent": "us",
            "age_group": "adult",
            "sex": "female",
            "noise_type": "white",
            "snr_db": np.linspace(-10.0, 100.0, count),
            "environment": "room",
            "domain": "medical",
            "organization_id": "org-1",
            "consent": "opted_in",
            "audio_sha256": [f"{prefix}-sha-{i}" for i in range(count)],
            "created": pd.date_range("2024-01-01", periods=count, freq="h", tz="UTC"),
        }
    )


# One crafted row per failure: sample id -> (column changes, the one label it must fail).
CRAFTED: dict[str, tuple[dict[str, str | float | None], str]] = {
    "opted-out": ({"consent": "opted_out"}, "expect_column_values_to_be_in_set(consent)"),
    "erased": ({"consent": "erased"}, "expect_column_values_to_be_in_set(consent)"),
    "expired": ({"consent": "expired"}, "expect_column_values_to_be_in_set(consent)"),
    "too-short": ({"duration": 0.49}, "expect_column_values_to_be_between(duration)"),
    "too-long": ({"duration": 30.01}, "expect_column_values_to_be_between(duration)"),
    "no-text": ({"transcript": None}, "expect_column_values_to_not_be_null(transcript)"),
    "blank-text": ({"transcript": "   "}, "expect_column_values_to_not_match_regex(transcript)"),
    "empty-text": ({"transcript": ""}, "expect_column_values_to_not_match_regex(transcript)"),
    "shouting": ({"transcript": "HELLO there"}, "expect_column_values_to_match_regex(transcript)"),
    "digits": ({"transcript": "room 101"}, "expect_column_values_to_match_regex(transcript)"),
    "newline": ({"transcript": "two\nlines"}, "expect_column_values_to_match_regex(transcript)"),
    "bad-accent": ({"accent": "martian"}, "expect_column_values_to_be_in_set(accent)"),
    "bad-age": ({"age_group": "toddler"}, "expect_column_values_to_be_in_set(age_group)"),
    "bad-sex": ({"sex": "F"}, "expect_column_values_to_be_in_set(sex)"),
    "bad-noise": ({"noise_type": "rain"}, "expect_column_values_to_be_in_set(noise_type)"),
    "bad-env": ({"environment": "space"}, "expect_column_values_to_be_in_set(environment)"),
    "loud-snr": ({"snr_db": 100.5}, "expect_column_values_to_be_between(snr_db)"),
    "quiet-snr": ({"snr_db": -10.5}, "expect_column_values_to_be_between(snr_db)"),
}


def crafted_manifest() -> pd.DataFrame:
    rows = clean_rows(len(CRAFTED) + 4)
    for position, (sample_id, (changes, _)) in enumerate(CRAFTED.items()):
        rows.loc[position, "sample_id"] = sample_id
        for column, value in changes.items():
            rows.loc[position, column] = value
    return schema.coerce(rows)


@pytest.fixture(scope="module")
def crafted() -> ValidationResult:
    return validate(crafted_manifest(), RULES)


def outcome(result: ValidationResult, label: str) -> ExpectationOutcome:
    [found] = [item for item in result.expectations if item.label == label]
    return found


class TestEachExpectationFails:
    @pytest.mark.parametrize("sample_id", list(CRAFTED))
    def test_crafted_row_is_quarantined_with_its_expectation(
        self, crafted: ValidationResult, sample_id: str
    ) -> None:
        label = CRAFTED[sample_id][1]
        quarantine = crafted.quarantine.set_index("sample_id")
        assert quarantine.loc[sample_id, "failed_expectations"] == label
        failed = outcome(crafted, label)
        assert not failed.success
        assert sample_id in failed.examples

    def test_other_rows_stay_valid(self, crafted: ValidationResult) -> None:
        assert crafted.valid["sample_id"].tolist() == ["ok018", "ok019", "ok020", "ok021"]
        assert list(crafted.valid.columns) == list(schema.COLUMNS)
        expected = crafted_manifest().iloc[-4:].reset_index(drop=True)
        pd.testing.assert_frame_equal(crafted.valid, expected)

    def test_counts_and_statistics(self, crafted: ValidationResult) -> None:
        assert not crafted.success
        assert outcome(crafted, "expect_column_values_to_be_in_set(consent)").unexpected_count == 3
        assert outcome(crafted, "expect_column_values_to_be_in_set(sex)").element_count == 22
        assert crafted.statistics == {
            "evaluated": 12,
            "successful": 1,  # only the duplicate check: every fingerprint is distinct
            "rows": 22,
            "valid_rows": 4,
            "quarantined_rows": 18,
        }
        assert list(crafted.quarantine.columns) == [*schema.COLUMNS, "failed_expectations"]

    def test_outcome_kwargs_are_json(self, crafted: ValidationResult) -> None:
        duration = outcome(crafted, "expect_column_values_to_be_between(duration)")
        assert duration.kwargs == {"column": "duration", "min_value": 0.5, "max_value": 30.0}
        consent = outcome(crafted, "expect_column_values_to_be_in_set(consent)")
        assert consent.kwargs["value_set"] == ["opted_in"]
        json.dumps([item.kwargs for item in crafted.expectations])


class TestCleanManifest:
    def test_everything_passes(self) -> None:
        manifest = schema.coerce(clean_rows(5))
        result = validate(manifest, RULES)
        assert result.success
        pd.testing.assert_frame_equal(result.valid, manifest)
        assert result.quarantine.empty
        assert result.statistics["successful"] == result.statistics["evaluated"] == 12

    def test_missing_attributes_and_snr_are_allowed(self) -> None:
        rows = clean_rows(3)
        for column in (*schema.CATEGORICAL_ATTRIBUTES, "snr_db", "audio_sha256", "created"):
            rows[column] = None
        result = validate(rows, RULES)
        assert result.success
        assert len(result.valid) == 3  # rows without a fingerprint are never duplicates

    def test_without_charset_any_text_passes(self) -> None:
        rows = clean_rows(2).assign(transcript=["Room 101!", "Ünïcödé?"])
        result = validate(rows)
        assert result.success
        assert "expect_column_values_to_match_regex" not in {
            item.expectation for item in result.expectations
        }

    def test_charset_with_regex_metacharacters(self) -> None:
        rows = clean_rows(3).assign(transcript=["a-b]", "^a", "\\"])
        result = validate(rows, ValidationRules(charset="ab-]\\"))
        assert result.quarantine["sample_id"].tolist() == ["ok001"]

    def test_other_consent_rules(self) -> None:
        rows = clean_rows(2).assign(consent=["opted_in", "expired"])
        result = validate(rows, ValidationRules(allowed_consent=("opted_in", "expired")))
        assert result.success


class TestDuplicateAudio:
    def test_earliest_copy_is_kept(self) -> None:
        rows = clean_rows(5)
        rows["audio_sha256"] = ["same", "same", "other", "same", "same"]
        rows["created"] = pd.to_datetime(
            pd.Series(["2024-05-03", "2024-05-01", "2024-01-01", None, "2024-05-01"]), utc=True
        )
        result = validate(rows, RULES)
        # ok001 and ok004 share the earliest time: the smaller sample id wins; no time is last.
        assert result.valid["sample_id"].tolist() == ["ok001", "ok002"]
        quarantine = result.quarantine.set_index("sample_id")["failed_expectations"]
        label = f"expect_column_values_to_be_in_set({AUDIO_COPY})"
        assert quarantine.to_dict() == {"ok000": label, "ok003": label, "ok004": label}
        assert outcome(result, label).unexpected_count == 3

    def test_can_be_switched_off(self) -> None:
        rows = clean_rows(3).assign(audio_sha256="same")
        result = validate(rows, ValidationRules(unique_audio=False))
        assert result.success
        assert AUDIO_COPY not in {item.column for item in result.expectations}


class TestSeveralFailures:
    def test_a_row_lists_every_failed_expectation_in_suite_order(self) -> None:
        rows = clean_rows(3)
        rows.loc[1, "consent"] = "erased"
        rows.loc[1, "duration"] = 99.0
        rows.loc[1, "sex"] = "x"
        result = validate(rows, RULES)
        assert result.quarantine["failed_expectations"].tolist() == [
            "expect_column_values_to_be_in_set(consent); "
            "expect_column_values_to_be_between(duration); "
            "expect_column_values_to_be_in_set(sex)"
        ]

    def test_examples_stop_at_twenty(self) -> None:
        rows = clean_rows(30).assign(consent="opted_out")
        result = validate(rows, RULES)
        consent = outcome(result, "expect_column_values_to_be_in_set(consent)")
        assert consent.unexpected_count == 30
        assert consent.examples == tuple(f"ok{i:03d}" for i in range(20))


class TestEmptyManifest:
    def test_no_rows(self, tmp_path: Path) -> None:
        result = validate(schema.empty_manifest(), RULES)
        assert result.success
        assert result.valid.empty
        assert result.quarantine.empty
        assert list(result.quarantine.columns) == [*schema.COLUMNS, "failed_expectations"]
        assert result.statistics["rows"] == 0
        paths = result.save(tmp_path)
        assert pd.read_parquet(paths["quarantine"]).empty


class TestSave:
    def test_json_html_and_quarantine(self, tmp_path: Path) -> None:
        rows = clean_rows(4)
        rows.loc[2, ["sample_id", "consent"]] = ["<script>alert(1)</script>", "opted_out"]
        result = validate(rows, RULES, name="train & <v2>")
        paths = result.save(tmp_path / "report")
        assert set(paths) == {"json", "html", "quarantine"}

        report = json.loads(paths["json"].read_text())
        assert report == result.to_dict()
        assert report["name"] == "train & <v2>"
        assert report["statistics"]["quarantined_rows"] == 1
        [consent] = [item for item in report["expectations"] if item["column"] == "consent"]
        assert consent["examples"] == ["<script>alert(1)</script>"]
        assert consent["unexpected_count"] == 1
        assert not consent["success"]

        page = paths["html"].read_text()
        assert "<script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "train &amp; &lt;v2&gt;" in page
        assert "expect_column_values_to_be_in_set(consent)" in page

        quarantine = pd.read_parquet(paths["quarantine"])
        assert quarantine["sample_id"].tolist() == ["<script>alert(1)</script>"]
        assert quarantine["failed_expectations"].tolist() == [
            "expect_column_values_to_be_in_set(consent)"
        ]

    def test_reports_never_contain_transcripts(
        self, crafted: ValidationResult, tmp_path: Path
    ) -> None:
        paths = crafted.save(tmp_path)
        for key in ("json", "html"):
            text = paths[key].read_text()
            for word in ("confidential", "patient", "HELLO", "room 101", "lines"):
                assert word not in text, (key, word)
        assert SECRET in pd.read_parquet(paths["quarantine"])["transcript"].iloc[-1]


class TestQuiet:
    def test_no_output_on_stdout_or_stderr(self, capfd: pytest.CaptureFixture[str]) -> None:
        validate(clean_rows(3).assign(consent="erased"), RULES)
        out, err = capfd.readouterr()
        assert (out, err) == ("", "")


class TestRules:
    @pytest.mark.parametrize(
        ("make", "message"),
        [
            (lambda: ValidationRules(min_duration=5.0, max_duration=1.0), "min_duration"),
            (lambda: ValidationRules(snr_min=50.0, snr_max=0.0), "snr_min"),
            (lambda: ValidationRules(charset=""), "charset"),
            (
                lambda: ValidationRules(vocabularies={"duration": frozenset({"1"})}),
                "non-string columns: duration",
            ),
            (
                lambda: ValidationRules(allowed_consent=("opted_in", "maybe")),
                "unknown consent state",
            ),
        ],
    )
    def test_inconsistent_rules_are_refused(
        self, make: Callable[[], ValidationRules], message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            make()

    def test_invalid_manifest_is_refused_before_gx(self) -> None:
        with pytest.raises(schema.ManifestError, match="sample_id must be unique"):
            validate(clean_rows(2).assign(sample_id="same"))
