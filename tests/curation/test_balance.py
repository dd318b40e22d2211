"""Balancing: targets, caps, floors, deficits, budget, determinism and the spec file."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from curation import schema
from curation.balance import DROP_REASONS, BalanceError, BalanceResult, BalanceSpec, balance

Group = tuple[str | None, ...]


def manifest(
    groups: Mapping[Group, int],
    columns: Sequence[str] = ("accent",),
    *,
    seconds: float = 10.0,
    prefix: str = "s",
) -> pd.DataFrame:
    """``count`` rows per attribute combination; durations cycle seconds ± 40%."""
    rows: dict[str, list[object]] = {name: [] for name in columns}
    for values, count in groups.items():
        for name, value in zip(columns, values, strict=True):
            rows[name] += [value] * count
    size = sum(groups.values())
    spread = np.tile([0.6, 0.8, 1.0, 1.2, 1.4], size // 5 + 1)[:size]
    return schema.coerce(
        pd.DataFrame(
            {"sample_id": [f"{prefix}{i:06d}" for i in range(size)], "duration": seconds * spread}
            | rows
        )
    )


def shares(result: BalanceResult, dimension: str) -> dict[str, float]:
    after = result.after[result.after["dimension"] == dimension]
    return dict(zip(after["value"], after["share"], strict=True))


def hours_of(result: BalanceResult, dimension: str) -> dict[str, float]:
    after = result.after[result.after["dimension"] == dimension]
    return dict(zip(after["value"], after["hours"], strict=True))


SKEWED = manifest({("us",): 850, ("rp",): 50, ("indian",): 50, ("irish",): 50})  # 10 s average
LONGEST = 14.0 / 3600  # hours of the longest utterance in these manifests


class TestUniformTargets:
    def test_skewed_accents_come_out_equal(self) -> None:
        result = balance(SKEWED, BalanceSpec(("accent",), hours=0.4, seed=1))
        for share in shares(result, "accent").values():
            assert share == pytest.approx(0.25, abs=0.01)
        assert result.summary["max_abs_share_error"]["accent"] < 0.01
        assert result.deficit.empty

    def test_two_dimensions_at_once(self) -> None:
        frame = manifest(
            {("us", "male"): 700, ("us", "female"): 150, ("rp", "male"): 60, ("rp", "female"): 90},
            ("accent", "sex"),
        )
        result = balance(frame, BalanceSpec(("accent", "sex"), hours=0.5, seed=3))
        assert shares(result, "accent") == pytest.approx({"rp": 0.5, "us": 0.5}, abs=0.01)
        assert shares(result, "sex") == pytest.approx({"female": 0.5, "male": 0.5}, abs=0.01)

    def test_explicit_value_list_drops_other_values(self) -> None:
        spec = BalanceSpec(("accent",), hours=0.2, targets={"accent": ("rp", "irish")})
        result = balance(SKEWED, spec)
        assert set(result.selected["accent"]) == {"rp", "irish"}
        assert shares(result, "accent")["rp"] == pytest.approx(0.5, abs=0.02)
        dropped_us = result.dropped[result.dropped["sample_id"].isin(SKEWED["sample_id"][:850])]
        assert set(dropped_us["reason"]) == {"over_target"}


class TestGivenTargets:
    def test_shares_follow_the_mapping(self) -> None:
        frame = manifest({("female",): 300, ("male",): 300, (None,): 100}, ("sex",))
        spec = BalanceSpec(("sex",), hours=1.0, targets={"sex": {"female": 0.7, "male": 0.3}})
        result = balance(frame, spec)
        assert shares(result, "sex") == pytest.approx(
            {"female": 0.7, "male": 0.3, "unknown": 0.0}, abs=0.01
        )

    def test_value_absent_from_input_is_a_deficit(self) -> None:
        frame = manifest({("female",): 300, ("male",): 300}, ("sex",))
        spec = BalanceSpec(
            ("sex",), hours=1.0, targets={"sex": {"female": 0.4, "male": 0.4, "unknown": 0.2}}
        )
        result = balance(frame, spec)
        row = result.deficit.set_index("value").loc["unknown"]
        assert row["target_hours"] == pytest.approx(0.2)
        assert row["available_hours"] == 0
        assert row["missing_hours"] == pytest.approx(0.2)
        # the shortfall went to the values that had hours: the budget is still spent
        assert result.summary["selected_hours"] == pytest.approx(1.0, abs=LONGEST)


class TestProportionalTargets:
    def test_follows_the_reference_mix(self) -> None:
        reference = manifest({("us",): 60, ("rp",): 40}, prefix="ref")
        spec = BalanceSpec(("accent",), hours=0.2, targets={"accent": "proportional"})
        result = balance(SKEWED, spec, reference=reference)
        assert shares(result, "accent") == pytest.approx(
            {"us": 0.6, "rp": 0.4, "indian": 0.0, "irish": 0.0}, abs=0.02
        )

    def test_needs_a_reference(self) -> None:
        spec = BalanceSpec(("accent",), hours=0.2, targets={"accent": "proportional"})
        with pytest.raises(BalanceError, match="reference="):
            balance(SKEWED, spec)


class TestCaps:
    def test_cap_bends_the_target(self) -> None:
        reference = manifest({("us",): 85, ("rp",): 15}, prefix="ref")
        spec = BalanceSpec(
            ("accent",),
            hours=0.25,
            targets={"accent": "proportional"},
            max_share={"accent": 0.6},
        )
        result = balance(SKEWED, spec, reference=reference)
        got = shares(result, "accent")
        assert got["us"] <= 0.6 + 1e-9
        assert got["rp"] == pytest.approx(0.4, abs=0.02)

    def test_cap_holds_when_other_values_lack_hours(self) -> None:
        # uniform wants 25% each; the minorities hold 0.14 h each, so the budget would
        # pull "us" far above 40% — the cap shrinks the set instead.
        spec = BalanceSpec(("accent",), hours=2.0, max_share={"accent": 0.4})
        result = balance(SKEWED, spec)
        assert max(shares(result, "accent").values()) <= 0.4 + 1e-9
        assert result.summary["selected_hours"] < 2.0
        assert "cap" in set(result.dropped["reason"])
        assert hours_of(result, "accent")["rp"] == pytest.approx(50 * 10 / 3600)

    def test_cap_on_one_dimension_of_two(self) -> None:
        frame = manifest(
            {("us", "male"): 800, ("us", "female"): 100, ("rp", "male"): 50, ("rp", "female"): 50},
            ("accent", "sex"),
        )
        spec = BalanceSpec(("accent", "sex"), hours=1.5, max_share={"sex": 0.55})
        result = balance(frame, spec)
        assert max(shares(result, "sex").values()) <= 0.55 + 1e-9
        # with hours to spare, the uncapped dimension still meets its target
        spec = BalanceSpec(("accent", "sex"), hours=0.25, max_share={"sex": 0.55})
        result = balance(frame, spec)
        assert shares(result, "accent") == pytest.approx({"rp": 0.5, "us": 0.5}, abs=0.01)
        assert max(shares(result, "sex").values()) <= 0.55 + 1e-9

    @pytest.mark.parametrize("hours", [0.3, 0.5, 0.8])
    def test_caps_hold_and_budget_is_spent_when_goals_conflict(self, hours: float) -> None:
        # Each rare value sits with the other dimensions' common values, so the three uniform
        # goals cannot all be met; the two caps must still hold, and the set stays as large
        # as they allow: rp and babble (1000 s each) may not fall under 40%, so 2500 s at most.
        dims = ("accent", "noise_type", "age_group")
        frame = manifest(
            {
                ("rp", "none", "adult"): 100,
                ("us", "babble", "adult"): 100,
                ("us", "none", "senior"): 100,
                ("us", "none", "adult"): 700,
            },
            dims,
        )
        spec = BalanceSpec(dims, hours=hours, max_share={"accent": 0.6, "noise_type": 0.6})
        result = balance(frame, spec)
        assert max(shares(result, "accent").values()) <= 0.6 + 1e-9
        assert max(shares(result, "noise_type").values()) <= 0.6 + 1e-9
        reachable = min(hours, 2500 / 3600)
        assert reachable - LONGEST <= result.summary["selected_hours"] <= reachable + 1e-9

    def test_caps_that_bind_together(self) -> None:
        # Independent 80/20 attributes, every value capped at 50%: one cap alone would allow
        # 4000 s (all 2000 s of "rp" twice over), together they allow only ~2276 s, since
        # rows rare in one dimension are mostly common in the others.
        dims = ("accent", "noise_type", "age_group")
        counts: dict[Group, int] = {
            (a, n, g): round(1000 * pa * pn * pg)
            for a, pa in (("us", 0.8), ("rp", 0.2))
            for n, pn in (("none", 0.8), ("babble", 0.2))
            for g, pg in (("adult", 0.8), ("senior", 0.2))
        }
        frame = manifest(counts, dims)
        result = balance(frame, BalanceSpec(dims, hours=1.0, max_share=dict.fromkeys(dims, 0.5)))
        selected = result.summary["selected_hours"]
        assert 2276 / 3600 - LONGEST <= selected <= 2276 / 3600
        for name in dims:  # 50% exactly needs equal hours; whole utterances allow one over
            assert max(shares(result, name).values()) <= 0.5 + LONGEST / selected

    def test_caps_that_cannot_hold_together(self) -> None:
        # Each cap needs its rare value at 40% or more; three disjoint 40% make 120%.
        dims = ("accent", "noise_type", "age_group")
        frame = manifest(
            {
                ("rp", "none", "adult"): 10,
                ("us", "babble", "adult"): 10,
                ("us", "none", "senior"): 10,
                ("us", "none", "adult"): 100,
            },
            dims,
        )
        spec = BalanceSpec(dims, hours=1.0, max_share=dict.fromkeys(dims, 0.6))
        with pytest.raises(BalanceError, match="cannot hold together"):
            balance(frame, spec)


class TestMinimumShares:
    def test_floor_lifts_a_rare_value(self) -> None:
        reference = manifest({("adult",): 95, ("senior",): 5}, ("age_group",), prefix="ref")
        frame = manifest({("adult",): 900, ("senior",): 100}, ("age_group",))
        spec = BalanceSpec(
            ("age_group",),
            hours=1.0,
            targets={"age_group": "proportional"},
            min_share={"age_group": 0.2},
        )
        result = balance(frame, spec, reference=reference)
        assert shares(result, "age_group")["senior"] == pytest.approx(0.2, abs=0.01)

    def test_floor_without_hours_is_a_deficit(self) -> None:
        frame = manifest({("adult",): 990, ("senior",): 10}, ("age_group",))
        spec = BalanceSpec(
            ("age_group",),
            hours=2.0,
            targets={"age_group": {"adult": 1.0, "senior": 0.0}},
            min_share={"age_group": 0.3},
        )
        result = balance(frame, spec)
        senior = result.deficit.set_index("value").loc["senior"]
        assert senior["target_hours"] == pytest.approx(0.6)
        assert senior["missing_hours"] == pytest.approx(0.6 - 100 / 3600)


class TestDeficit:
    def test_missing_hours_of_a_short_group(self) -> None:
        # indian holds 50 rows = 500 s; uniform over 4 accents with 1 h wants 0.25 h of it.
        result = balance(SKEWED, BalanceSpec(("accent",), hours=1.0))
        deficit = result.deficit.set_index("value")
        assert set(deficit.index) == {"rp", "indian", "irish"}
        for value in ("rp", "indian", "irish"):
            assert deficit.loc[value, "available_hours"] == pytest.approx(500 / 3600)
            assert deficit.loc[value, "selected_hours"] == pytest.approx(500 / 3600)
            assert deficit.loc[value, "missing_hours"] == pytest.approx(0.25 - 500 / 3600)
        # the shortfall went to "us", which had spare hours
        assert hours_of(result, "accent")["us"] == pytest.approx(1.0 - 1500 / 3600, abs=LONGEST)

    def test_no_deficit_when_hours_suffice(self) -> None:
        result = balance(SKEWED, BalanceSpec(("accent",), hours=0.3))
        assert list(result.deficit.columns) == [
            "dimension",
            "value",
            "target_hours",
            "available_hours",
            "selected_hours",
            "missing_hours",
        ]
        assert result.deficit.empty


class TestBudget:
    @pytest.mark.parametrize("hours", [0.05, 0.3, 1.0, 2.0])
    def test_never_over_and_within_one_utterance(self, hours: float) -> None:
        frame = manifest(
            {
                ("us", "adult"): 700,
                ("rp", "adult"): 150,
                ("us", "senior"): 100,
                ("rp", "senior"): 50,
            },
            ("accent", "age_group"),
        )
        result = balance(frame, BalanceSpec(("accent", "age_group"), hours=hours, seed=5))
        selected = result.summary["selected_hours"]
        assert selected <= hours + 1e-9
        assert selected >= hours - LONGEST
        assert result.selected["duration"].sum() / 3600 == pytest.approx(selected)

    def test_budget_above_input_takes_everything(self) -> None:
        result = balance(SKEWED, BalanceSpec(("accent",), hours=100.0))
        assert len(result.selected) == len(SKEWED)
        assert result.dropped.empty

    def test_zero_hours_selects_nothing(self) -> None:
        result = balance(SKEWED, BalanceSpec(("accent",), hours=0.0))
        assert result.selected.empty
        assert len(result.dropped) == len(SKEWED)
        assert set(result.dropped["reason"]) <= set(DROP_REASONS)


class TestDeterminism:
    SPEC = BalanceSpec(("accent",), hours=0.3, seed=11)

    def test_row_order_does_not_matter(self) -> None:
        shuffled = SKEWED.sample(frac=1.0, random_state=4)
        first = balance(SKEWED, self.SPEC).selected
        second = balance(shuffled, self.SPEC).selected
        pd.testing.assert_frame_equal(first, second)

    def test_same_seed_same_selection(self) -> None:
        first = balance(SKEWED, self.SPEC).selected["sample_id"].tolist()
        assert balance(SKEWED, self.SPEC).selected["sample_id"].tolist() == first

    def test_unicode_ids_of_any_length(self) -> None:
        ids = [f"{'é' * (i % 7)}sample-{i}-{'日本' * (i % 3)}" for i in range(len(SKEWED))]
        frame = SKEWED.assign(sample_id=ids)
        first = balance(frame, self.SPEC).selected
        second = balance(frame.iloc[::-1], self.SPEC).selected
        pd.testing.assert_frame_equal(first, second)
        assert len(first) > 0

    def test_other_seed_other_selection(self) -> None:
        other = BalanceSpec(("accent",), hours=0.3, seed=12)
        first = set(balance(SKEWED, self.SPEC).selected["sample_id"])
        assert set(balance(SKEWED, other).selected["sample_id"]) != first


class TestMissingValues:
    FRAME = manifest({("female",): 200, ("male",): 200, (None,): 200}, ("sex",))

    def test_missing_forms_its_own_group(self) -> None:
        result = balance(self.FRAME, BalanceSpec(("sex",), hours=0.3))
        assert shares(result, "sex") == pytest.approx(
            {"female": 1 / 3, "male": 1 / 3, "unknown": 1 / 3}, abs=0.02
        )
        assert result.selected["sex"].isna().sum() > 0  # the rows keep their missing value

    def test_label_is_configurable(self) -> None:
        result = balance(self.FRAME, BalanceSpec(("sex",), hours=0.3, missing="n/a"))
        assert set(result.after["value"]) == {"female", "male", "n/a"}


class TestSnrBand:
    def test_bands_balance_like_columns(self) -> None:
        snr = [np.nan] * 600 + [5.0] * 100 + [15.0] * 100 + [25.0] * 200
        frame = SKEWED.assign(snr_db=snr)
        result = balance(frame, BalanceSpec(("snr_band",), hours=0.4))
        assert shares(result, "snr_band") == pytest.approx(
            {"clean": 0.25, "0-10dB": 0.25, "10-20dB": 0.25, "20+dB": 0.25}, abs=0.01
        )


class TestEmptyInput:
    def test_empty_manifest(self) -> None:
        spec = BalanceSpec(
            ("accent", "sex"), hours=1.0, targets={"sex": {"female": 0.5, "male": 0.5}}
        )
        result = balance(schema.empty_manifest(), spec)
        assert result.selected.empty
        assert list(result.selected.columns) == list(schema.COLUMNS)
        assert result.dropped.empty
        assert result.summary["selected_hours"] == 0
        assert dict(zip(result.deficit["value"], result.deficit["missing_hours"], strict=True)) == {
            "female": 0.5,
            "male": 0.5,
        }


class TestReport:
    def test_every_row_is_selected_or_dropped_with_a_reason(self) -> None:
        result = balance(SKEWED, BalanceSpec(("accent",), hours=0.3))
        ids = set(result.selected["sample_id"]) | set(result.dropped["sample_id"])
        assert ids == set(SKEWED["sample_id"])
        assert len(result.selected) + len(result.dropped) == len(SKEWED)
        assert set(result.dropped["reason"]) == {"over_target", "over_budget"}

    def test_to_dict_is_json(self) -> None:
        result = balance(SKEWED, BalanceSpec(("accent",), hours=1.0))
        report = json.loads(json.dumps(result.to_dict()))
        assert report["summary"]["input_rows"] == 1000
        assert report["summary"]["budget_hours"] == 1.0
        assert {row["value"] for row in report["deficit"]} == {"rp", "indian", "irish"}
        assert sum(report["dropped"].values()) == len(result.dropped)

    def test_before_shows_the_input_skew(self) -> None:
        result = balance(SKEWED, BalanceSpec(("accent",), hours=0.3))
        before = dict(zip(result.before["value"], result.before["share"], strict=True))
        assert before["us"] == pytest.approx(0.85, abs=0.01)
        assert set(result.before["target_share"]) == {0.25}

    def test_duplicate_ids_are_refused(self) -> None:
        frame = pd.concat([SKEWED, SKEWED.head(1)], ignore_index=True)
        with pytest.raises(schema.ManifestError, match="unique"):
            balance(frame, BalanceSpec(("accent",), hours=0.3))


class TestInvalidSpecs:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"dimensions": ("colour",)}, "unknown dimension"),
            ({"dimensions": ()}, "non-empty"),
            ({"dimensions": ("sex", "sex")}, "repeat"),
            ({"hours": -1.0}, ">= 0"),
            ({"hours": float("nan")}, "finite"),
            ({"targets": {"sex": {"female": 0.5, "male": 0.4}}}, "sum to 1"),
            ({"targets": {"sex": "even"}}, "uniform"),
            ({"targets": {"accent": "uniform"}}, "not in dimensions"),
            ({"max_share": {"sex": 0.4}, "min_share": {"sex": 0.5}}, "exceeds max_share"),
            ({"max_share": {"sex": 1.5}}, "between 0 and 1"),
            ({"max_share": {"sex": 0.0}}, "above 0"),
            ({"targets": {"sex": ("female", "male")}, "max_share": {"sex": 0.4}}, "cannot hold"),
            ({"targets": {"sex": ("female", "male")}, "min_share": {"sex": 0.6}}, "exceeds 1"),
            ({"seed": 1.5}, "integer"),
        ],
    )
    def test_refused_with_a_reason(self, kwargs: dict[str, object], message: str) -> None:
        arguments: dict[str, object] = {"dimensions": ("sex",), "hours": 1.0} | kwargs
        with pytest.raises(BalanceError, match=message):
            BalanceSpec(**arguments)  # type: ignore[arg-type]  # bad types on purpose

    def test_cap_the_data_cannot_meet(self) -> None:
        frame = manifest({("female",): 10, ("male",): 10}, ("sex",))
        with pytest.raises(BalanceError, match=r"max_share 0\.4"):
            balance(frame, BalanceSpec(("sex",), hours=0.01, max_share={"sex": 0.4}))


class TestSpecJson:
    SPEC = BalanceSpec(
        ("accent", "sex", "snr_band"),
        hours=10.0,
        targets={"accent": ("us", "rp"), "sex": {"female": 0.5, "male": 0.5}},
        max_share={"accent": 0.7},
        min_share={"sex": 0.2},
        seed=7,
        missing="n/a",
    )

    def test_round_trip(self) -> None:
        assert BalanceSpec.from_json(self.SPEC.to_json()) == self.SPEC

    def test_reads_a_target_file(self, tmp_path: Path) -> None:
        path = tmp_path / "target.json"
        path.write_text(
            json.dumps(
                {
                    "hours": 10,
                    "dimensions": ["accent", "sex"],
                    "targets": {"accent": "uniform", "sex": {"female": 0.5, "male": 0.5}},
                }
            )
        )
        spec = BalanceSpec.from_json(path)
        assert spec.dimensions == ("accent", "sex")
        assert spec.targets["sex"] == {"female": 0.5, "male": 0.5}
        assert spec.seed == 0

    def test_reads_a_parsed_object(self) -> None:
        spec = BalanceSpec.from_json({"dimensions": ["sex"], "hours": 2, "seed": 3})
        assert spec == BalanceSpec(("sex",), hours=2, seed=3)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("{not json", "readable JSON"),
            ("[1, 2]", "JSON object"),
            ('{"hours": 1}', "needs 'dimensions'"),
            ('{"hours": 1, "dimensions": ["sex"], "colour": 1}', "unknown key"),
            ('{"hours": "ten", "dimensions": ["sex"]}', "number"),
        ],
    )
    def test_bad_files_are_refused(self, text: str, message: str) -> None:
        with pytest.raises(BalanceError, match=message):
            BalanceSpec.from_json(text)
