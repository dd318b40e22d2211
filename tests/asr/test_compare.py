"""Custom against standard model on hand-made transcripts whose errors can be counted by eye."""

from __future__ import annotations

import json
import math
import re
from collections import Counter

import pytest

from asr.compare import Comparison, HeldOutSplit, compare, render_html, split_held_out
from asr.evaluate import evaluate

# 14 reference words, 68 characters (spaces included): 25 + 21 + 11 + 11
REFERENCES = [
    "the patient needs a stent",
    "place the stent today",
    "hello world",
    "a dog barks",
]
# custom: one substitution "stent" -> "stint" (1 word error, 1 character error)
CUSTOM = [
    "the patient needs a stint",
    "place the stent today",
    "hello world",
    "a dog barks",
]
# standard: "stent" -> "stint" twice, "please" inserted, "world" deleted, "dog" -> "dock":
# 5 word errors; characters 1 + (1 + 7 for " please") + 6 (" world") + 2 ("g" -> "ck") = 17
STANDARD = [
    "the patient needs a stint",
    "place the stint today please",
    "hello",
    "a dock barks",
]
SPEAKERS = ["ann", "bob", "ann", None]
FAST = 200  # resamples


def _compare(times: int = 1, **kwargs: object) -> Comparison:
    return compare(
        REFERENCES * times,
        CUSTOM * times,
        STANDARD * times,
        resamples=FAST,
        **kwargs,  # type: ignore[arg-type]
    )


class TestSplitDeterminism:
    def test_same_seed_same_split(self) -> None:
        speakers = [f"s{i % 7}" for i in range(40)]
        first = split_held_out(range(40), speakers=speakers, fraction=0.3, seed=3)
        again = split_held_out(list(range(40)), speakers=speakers, fraction=0.3, seed=3)
        assert first == again

    def test_seeds_differ_and_sides_partition_the_items(self) -> None:
        splits = {
            tuple(split_held_out(range(30), speakers=None, fraction=0.2, seed=s).test)
            for s in range(5)
        }
        assert len(splits) > 1
        split = split_held_out(range(30), speakers=None, fraction=0.2, seed=0)
        assert sorted(split.train + split.test) == list(range(30))
        assert split.train == sorted(split.train)
        assert split.test == sorted(split.test)
        assert len(split.test) == 6  # item by item, the fraction is met exactly
        assert not split.speaker_disjoint


class TestSpeakerDisjointness:
    SPEAKERS = tuple(f"spk{i % 10}" for i in range(100))  # 10 speakers of 10 items each

    def test_no_speaker_on_both_sides(self) -> None:
        for seed in range(10):
            split = split_held_out(range(100), speakers=self.SPEAKERS, fraction=0.2, seed=seed)
            train = {self.SPEAKERS[i] for i in split.train}
            test = {self.SPEAKERS[i] for i in split.test}
            assert not train & test
            assert split.speaker_disjoint
            assert len(split.test) == 20  # whole speakers of 10 items reach 20% exactly

    def test_uneven_speakers_approach_the_fraction(self) -> None:
        speakers = ["a"] * 40 + ["b"] * 25 + ["c"] * 15 + ["d"] * 10 + ["e"] * 6 + ["f"] * 4
        split = split_held_out(range(100), speakers=speakers, fraction=0.25, seed=1)
        assert abs(len(split.test) - 25) <= 5
        assert split.speaker_disjoint

    def test_unknown_speakers_are_split_item_by_item(self) -> None:
        speakers: list[str | None] = ["a"] * 5 + [None] * 5
        split = split_held_out(range(10), speakers=speakers, fraction=0.3, seed=0)
        assert not split.speaker_disjoint
        named = {speakers[i] for i in split.train} & {speakers[i] for i in split.test}
        assert named <= {None}  # "a" stays whole

    def test_one_speaker_falls_back_to_items(self) -> None:
        split = split_held_out(range(5), speakers=["a"] * 5, fraction=0.4, seed=0)
        assert not split.speaker_disjoint
        assert len(split.test) == 2

    @pytest.mark.parametrize("fraction", [0.01, 0.99])
    def test_both_sides_get_an_item(self, fraction: float) -> None:
        for speakers in (None, ["a", "b"], ["a", "a"]):
            split = split_held_out(["x", "y"], speakers=speakers, fraction=fraction, seed=0)
            assert len(split.train) == 1
            assert len(split.test) == 1

    def test_large_speakers_never_empty_the_training_side(self) -> None:
        speakers = ["a"] * 5 + ["b"]
        for seed in range(10):
            split = split_held_out(range(6), speakers=speakers, fraction=0.99, seed=seed)
            assert split.train
            assert split.test
            assert split.speaker_disjoint

    def test_returns_a_held_out_split(self) -> None:
        split = split_held_out(range(6), speakers=["a"] * 5 + ["b"], fraction=0.9, seed=0)
        # "a" alone (5 of 6) is nearest 90% without leaving the training side empty
        assert split == HeldOutSplit(train=[5], test=[0, 1, 2, 3, 4], speaker_disjoint=True)


class TestSplitErrors:
    @pytest.mark.parametrize("items", [[], ["only"]])
    def test_fewer_than_two_items(self, items: list[str]) -> None:
        with pytest.raises(ValueError, match="at least 2 items"):
            split_held_out(items, speakers=None, fraction=0.5, seed=0)

    @pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5, math.nan])
    def test_fraction_outside_open_interval(self, fraction: float) -> None:
        with pytest.raises(ValueError, match="fraction"):
            split_held_out(range(4), speakers=None, fraction=fraction, seed=0)

    def test_speakers_of_another_length(self) -> None:
        with pytest.raises(ValueError, match="one per item"):
            split_held_out(range(4), speakers=["a", "b"], fraction=0.5, seed=0)


class TestKnownRates:
    def test_wer_and_cer_by_hand(self) -> None:
        result = _compare()
        assert (result.utterances, result.words, result.characters) == (4, 14, 68)
        assert result.custom.wer.value == pytest.approx(1 / 14)
        assert result.standard.wer.value == pytest.approx(5 / 14)
        assert result.custom.cer.value == pytest.approx(1 / 68)
        assert result.standard.cer.value == pytest.approx(17 / 68)

    def test_same_rates_as_evaluate(self) -> None:
        result = _compare()
        for hypotheses, score in ((CUSTOM, result.custom), (STANDARD, result.standard)):
            report = evaluate(REFERENCES, hypotheses)
            assert score.wer.value == pytest.approx(report.wer)
            assert score.cer.value == pytest.approx(report.cer)

    def test_transcripts_are_normalised(self) -> None:
        result = compare(["The Stent, please!"], ["the stent please"], ["THE STINT please"])
        assert result.custom.wer.value == 0.0
        assert result.standard.wer.value == pytest.approx(1 / 3)


class TestConfidenceIntervals:
    def test_contains_the_point_estimate(self) -> None:
        result = _compare(times=5)
        for estimate in (
            result.custom.wer,
            result.custom.cer,
            result.standard.wer,
            result.standard.cer,
            result.relative_wer_reduction,
        ):
            assert estimate is not None
            assert estimate.low <= estimate.value <= estimate.high
            assert estimate.low < estimate.high

    def test_narrows_with_more_utterances(self) -> None:
        few, many = _compare(times=2), _compare(times=25)
        for name in ("custom", "standard"):
            narrow = getattr(many, name).wer
            wide = getattr(few, name).wer
            assert narrow.high - narrow.low < wide.high - wide.low

    def test_deterministic_for_a_seed(self) -> None:
        assert _compare(times=3, seed=5) == _compare(times=3, seed=5)
        assert _compare(times=3, seed=5) != _compare(times=3, seed=6)

    def test_wider_at_higher_confidence(self) -> None:
        low, high = _compare(times=3, confidence=0.5), _compare(times=3, confidence=0.99)
        assert high.standard.wer.high - high.standard.wer.low > (
            low.standard.wer.high - low.standard.wer.low
        )


class TestRelativeReduction:
    def test_positive_when_custom_is_better(self) -> None:
        result = _compare(times=5)
        assert result.relative_wer_reduction is not None
        assert result.relative_wer_reduction.value == pytest.approx((5 - 1) / 5)
        assert result.relative_wer_reduction.low > 0
        assert result.custom_better_share > 0.9
        assert result.reduction_resamples == FAST

    def test_negative_when_custom_is_worse(self) -> None:
        result = compare(REFERENCES * 5, STANDARD * 5, CUSTOM * 5, resamples=FAST)
        assert result.relative_wer_reduction is not None
        assert result.relative_wer_reduction.value == pytest.approx((1 - 5) / 1)
        assert result.relative_wer_reduction.high < 0
        assert result.custom_better_share < 0.1

    def test_identical_models_reduce_nothing(self) -> None:
        result = compare(REFERENCES, STANDARD, STANDARD, resamples=FAST)
        assert result.relative_wer_reduction is not None
        reduction = result.relative_wer_reduction
        assert (reduction.value, reduction.low, reduction.high) == (0.0, 0.0, 0.0)
        assert result.custom_better_share == 0.0

    def test_none_when_the_standard_model_is_perfect(self) -> None:
        result = compare(REFERENCES, CUSTOM, REFERENCES, resamples=FAST)
        assert result.relative_wer_reduction is None
        assert result.reduction_resamples == 0


class TestPerSpeaker:
    def test_wer_per_speaker(self) -> None:
        result = _compare(speakers=SPEAKERS)
        rows = {s.speaker: s for s in result.speakers}
        expected = {
            "ann": (2, 7, 1 / 7, 2 / 7),
            "bob": (1, 4, 0, 2 / 4),
            "unknown": (1, 3, 0, 1 / 3),
        }
        for speaker, (utterances, words, custom_wer, standard_wer) in expected.items():
            row = rows[speaker]
            assert (row.utterances, row.words) == (utterances, words)
            assert row.custom_wer == pytest.approx(custom_wer)
            assert row.standard_wer == pytest.approx(standard_wer)
        assert [s.speaker for s in result.speakers] == ["ann", "bob", "unknown"]

    def test_no_speakers_no_rows(self) -> None:
        assert _compare().speakers == []


class TestErrorTables:
    def test_counts_per_model(self) -> None:
        result = _compare()
        assert result.standard.substitutions == [("stent", "stint", 2), ("dog", "dock", 1)]
        assert result.standard.deletions == [("world", 1)]
        assert result.standard.insertions == [("please", 1)]
        assert result.custom.substitutions == [("stent", "stint", 1)]
        assert (result.custom.deletions, result.custom.insertions) == ([], [])

    def test_counts_add_up_over_utterances(self) -> None:
        result = _compare(times=3)
        assert result.standard.substitutions[0] == ("stent", "stint", 6)

    def test_top_errors_keeps_the_most_common(self) -> None:
        result = _compare(top_errors=1)
        assert result.standard.substitutions == [("stent", "stint", 2)]
        assert _compare(top_errors=0).standard.deletions == []


class TestCompareErrors:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"custom": CUSTOM[:3]}, "3 custom for 4 references"),
            ({"standard": "hello"}, "not a str"),
            ({"speakers": ["a"]}, "1 speakers for 4 references"),
            ({"resamples": 0}, "resamples"),
            ({"confidence": 1.0}, "confidence"),
            ({"top_errors": -1}, "top_errors"),
        ],
    )
    def test_bad_arguments(self, kwargs: dict[str, object], message: str) -> None:
        arguments: dict[str, object] = {
            "references": REFERENCES,
            "custom": CUSTOM,
            "standard": STANDARD,
        }
        with pytest.raises(ValueError, match=message):
            compare(**(arguments | kwargs))  # type: ignore[arg-type]

    def test_nothing_to_score(self) -> None:
        with pytest.raises(ValueError, match="no utterances"):
            compare([], [], [])
        with pytest.raises(ValueError, match="empty once normalised"):
            compare(["!!", ""], ["a", ""], ["", ""])


class TestToDict:
    def test_plain_json_with_rounded_rates(self) -> None:
        data = _compare(speakers=SPEAKERS).to_dict()
        loaded = json.loads(json.dumps(data))
        assert loaded["custom"]["wer"]["value"] == round(1 / 14, 4)
        assert loaded["relative_wer_reduction"]["value"] == 0.8
        assert loaded["standard"]["substitutions"][0] == {
            "reference": "stent",
            "hypothesis": "stint",
            "count": 2,
        }
        assert loaded["standard"]["deletions"] == [{"reference": "world", "count": 1}]
        assert loaded["standard"]["insertions"] == [{"hypothesis": "please", "count": 1}]
        assert loaded["speakers"][1] == {
            "speaker": "bob",
            "utterances": 1,
            "words": 4,
            "custom_wer": 0.0,
            "standard_wer": 0.5,
        }

    def test_no_reduction_is_null(self) -> None:
        data = compare(REFERENCES, CUSTOM, REFERENCES, resamples=FAST).to_dict()
        assert data["relative_wer_reduction"] is None


@pytest.fixture(scope="module")
def page() -> str:
    """A page whose title, speaker names and transcripts all carry markup."""
    references = [*REFERENCES, "it's <script>alert(1)</script> here"]
    custom = [*CUSTOM, "its <script>alert(1)</script> here"]
    standard = [*STANDARD, "it's script alert here"]
    speakers = [*SPEAKERS, "<script>alert('x')</script> $\\frac{"]  # "$": not mathtext either
    result = compare(references, custom, standard, speakers=speakers, resamples=FAST)
    return render_html(result, title="Acme <img src=x onerror=alert(1)>")


class TestHtml:
    def test_customer_text_cannot_inject_markup(self, page: str) -> None:
        assert "<script" not in page.lower()
        assert "<img" not in page
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page  # the speaker
        assert "Acme &lt;img src=x onerror=alert(1)&gt;" in page  # the title
        assert "<td>it&#x27;s</td><td>its</td>" in page  # a transcript word, apostrophe escaped

    def test_self_contained_with_inline_svg(self, page: str) -> None:
        assert page.startswith("<!DOCTYPE html>")
        assert '<meta charset="utf-8">' in page
        assert page.count("<svg") == 2  # WER chart and per-speaker chart
        assert "<?xml" not in page
        # nothing to fetch: the only URLs left are the SVG namespace names
        without_namespaces = re.sub(r'xmlns(:\w+)?="[^"]*"', "", page)
        assert not re.search(r"<link|src=\"|<iframe|@import|https?://", without_namespaces)
        ids = Counter(re.findall(r'\bid="([^"]+)"', page))
        assert ids
        assert max(ids.values()) == 1  # the two charts' ids do not clash

    def test_tables(self, page: str) -> None:
        for heading in ("Summary", "Word error rate per speaker", "Substitutions", "Deletions"):
            assert heading in page
        assert '<td>stent</td><td>stint</td><td class="n">2</td>' in page
        assert '<td>world</td><td class="n">1</td>' in page

    def test_without_speakers_no_speaker_chart(self) -> None:
        page = render_html(_compare(), title="plain")
        assert page.count("<svg") == 1
        assert "per speaker" not in page
