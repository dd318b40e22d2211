"""Evaluation figures on hand-made transcript pairs whose errors can be counted by eye."""

from __future__ import annotations

import json
from typing import ClassVar

import jiwer
import pytest

from asr.evaluate import EvalReport, GroupScore, evaluate, snr_band

# utterance 0: "sat" -> "sit" (substitution), "the" deleted: 2 errors in 6 words, 5 in 22 chars
# utterance 1: no error in 2 words (11 chars)
# utterance 2: "dog" -> "dock" (substitution), "now" inserted: 2 errors in 3 words
REFERENCES = ["the cat sat on the mat", "hello world", "a dog barks"]
HYPOTHESES = ["the cat sit on mat", "hello world", "a dock barks now"]


class TestCorpusRates:
    def test_known_wer_and_cer(self) -> None:
        report = evaluate(REFERENCES, HYPOTHESES)
        assert (report.utterances, report.words) == (3, 11)
        assert report.wer == pytest.approx(4 / 11)
        # characters, spaces included: 5 + 0 + 6 ("g" -> "ck" is 2, " now" 4) over 22 + 11 + 11
        assert report.cer == pytest.approx(11 / 44)

    def test_is_total_errors_over_total_words_not_a_mean(self) -> None:
        report = evaluate(REFERENCES, HYPOTHESES)
        mean_of_rates = (2 / 6 + 0 / 2 + 2 / 3) / 3
        assert report.wer != pytest.approx(mean_of_rates)
        assert report.wer == pytest.approx(jiwer.wer(REFERENCES, HYPOTHESES))
        assert report.cer == pytest.approx(jiwer.cer(REFERENCES, HYPOTHESES))

    def test_both_sides_are_normalised(self) -> None:
        report = evaluate(["The CAT, sat!", "It's   café-time"], ["the cat sat", "its cafe time"])
        # only the apostrophe differs once normalised: "it's" vs "its"
        assert report.words == 6
        assert report.wer == pytest.approx(1 / 6)
        assert report.cer == pytest.approx(1 / len("the cat sat" + "it's cafe time"))

    def test_perfect_transcripts_score_zero(self) -> None:
        report = evaluate(REFERENCES, REFERENCES)
        assert (report.wer, report.cer, report.substitutions) == (0.0, 0.0, [])

    def test_empty_reference_counts_its_insertions(self) -> None:
        report = evaluate(["hello world", ""], ["hello world", "uh huh"])
        assert report.words == 2
        assert report.wer == pytest.approx(2 / 2)


class TestGroups:
    ATTRIBUTES: ClassVar[dict[str, list[str | None]]] = {
        "accent": ["en-us", "en-gb", None],
        "sex": ["f", "f", "m"],
    }

    def test_per_group_numbers(self) -> None:
        report = evaluate(REFERENCES, HYPOTHESES, attributes=self.ATTRIBUTES)
        by_key = {(g.attribute, g.value): g for g in report.groups}
        assert by_key["accent", "en-us"] == GroupScore("accent", "en-us", 1, 6, 2 / 6, 5 / 22)
        assert by_key["accent", "en-gb"] == GroupScore("accent", "en-gb", 1, 2, 0.0, 0.0)
        assert by_key["sex", "f"].wer == pytest.approx(2 / 8)  # corpus-level inside the group
        assert by_key["sex", "m"].wer == pytest.approx(2 / 3)

    def test_none_is_unknown_and_sorted_last(self) -> None:
        report = evaluate(REFERENCES, HYPOTHESES, attributes=self.ATTRIBUTES)
        accents = [g.value for g in report.groups if g.attribute == "accent"]
        assert accents == ["en-gb", "en-us", "unknown"]
        unknown = report.groups[accents.index("unknown")]
        assert (unknown.utterances, unknown.words) == (1, 3)
        assert unknown.wer == pytest.approx(2 / 3)

    def test_groups_match_scoring_the_subset_alone(self) -> None:
        report = evaluate(REFERENCES, HYPOTHESES, attributes=self.ATTRIBUTES)
        alone = evaluate(REFERENCES[:2], HYPOTHESES[:2])
        female = next(g for g in report.groups if (g.attribute, g.value) == ("sex", "f"))
        assert (female.wer, female.cer, female.words) == (alone.wer, alone.cer, alone.words)

    def test_snr_bands_group_measured_snrs(self) -> None:
        bands = [snr_band(s) for s in (None, 5.0, 25.0)]
        report = evaluate(REFERENCES, HYPOTHESES, attributes={"snr_band": bands})
        assert [g.value for g in report.groups] == ["0-10", "20+", "clean"]


class TestSubstitutions:
    def test_counted_across_utterances_and_ranked(self) -> None:
        refs = ["the cat sat", "a cat sat", "my cat ran", "a dog"]
        hyps = ["the cut sat", "a cut sit", "my cut ran", "a dock"]
        report = evaluate(refs, hyps)
        assert report.substitutions == [("cat", "cut", 3), ("dog", "dock", 1), ("sat", "sit", 1)]

    def test_top_limits_the_list(self) -> None:
        refs = ["the cat sat", "a cat sat", "a dog"]
        hyps = ["the cut sat", "a cut sit", "a dock"]
        assert evaluate(refs, hyps, top_substitutions=1).substitutions == [("cat", "cut", 2)]
        assert evaluate(refs, hyps, top_substitutions=0).substitutions == []

    def test_deletions_and_insertions_are_not_substitutions(self) -> None:
        assert evaluate(["one two"], ["one"]).substitutions == []
        assert evaluate(["one"], ["one two"]).substitutions == []


class TestTermRecall:
    def test_hits_over_occurrences(self) -> None:
        refs = ["insert the stent now", "the stent moved", "check the catheter"]
        hyps = ["insert the stint now", "the stent moved", "check the catheter"]
        report = evaluate(refs, hyps, terms={"stent", "catheter"})
        assert report.term_recall == pytest.approx(2 / 3)  # stent 1 of 2, catheter 1 of 1

    def test_needs_the_same_position(self) -> None:
        # "stent" is in the hypothesis, but the alignment pairs it with nothing: not a hit
        report = evaluate(["stent placed today"], ["placed today stent"], terms=["stent"])
        assert report.term_recall == 0.0

    def test_multi_word_terms_need_every_word(self) -> None:
        refs = ["the blood pressure is high", "blood pressure is fine"]
        hyps = ["the blood pleasure is high", "blood pressure is fine"]
        report = evaluate(refs, hyps, terms=["Blood-Pressure"])
        assert report.term_recall == pytest.approx(1 / 2)

    def test_none_without_terms_or_occurrences(self) -> None:
        assert evaluate(REFERENCES, HYPOTHESES).term_recall is None
        assert evaluate(REFERENCES, HYPOTHESES, terms=["stent"]).term_recall is None

    def test_rejects_an_empty_term(self) -> None:
        with pytest.raises(ValueError, match="empty once normalised"):
            evaluate(REFERENCES, HYPOTHESES, terms=["?!"])


class TestBadInput:
    def test_mismatched_lengths(self) -> None:
        with pytest.raises(ValueError, match="3 references but 2 hypotheses"):
            evaluate(REFERENCES, HYPOTHESES[:2])

    def test_all_references_empty(self) -> None:
        with pytest.raises(ValueError, match="every reference is empty"):
            evaluate(["", "  ", "!!"], ["a", "", "b"])

    def test_attribute_of_the_wrong_length(self) -> None:
        with pytest.raises(ValueError, match="attribute 'accent' has 2 values for 3 utterances"):
            evaluate(REFERENCES, HYPOTHESES, attributes={"accent": ["a", "b"]})

    def test_a_string_instead_of_a_list(self) -> None:
        with pytest.raises(ValueError, match="not a string"):
            evaluate("the cat", "the cat")

    def test_negative_top_substitutions(self) -> None:
        with pytest.raises(ValueError, match="top_substitutions"):
            evaluate(REFERENCES, HYPOTHESES, top_substitutions=-1)


class TestReportOutput:
    def report(self) -> EvalReport:
        attributes = {"accent": ["en-us", "en-gb", None]}
        return evaluate(REFERENCES, HYPOTHESES, attributes=attributes, terms=["cat"])

    def test_dict_is_json(self) -> None:
        data = json.loads(json.dumps(self.report().to_dict()))
        assert data["wer"] == pytest.approx(4 / 11)
        assert data["groups"][0] == {
            "attribute": "accent",
            "value": "en-gb",
            "utterances": 1,
            "words": 2,
            "wer": 0.0,
            "cer": 0.0,
        }
        assert {"reference": "sat", "hypothesis": "sit", "count": 1} in data["substitutions"]
        assert data["term_recall"] == 1.0

    def test_markdown_has_a_table_per_attribute_and_the_substitutions(self) -> None:
        text = self.report().to_markdown()
        assert "**WER 36.4%**" in text
        assert "Term recall: 100.0%" in text
        assert "| accent | utterances | words | WER | CER |" in text
        assert "| en-us | 1 | 6 | 33.3% | 22.7% |" in text
        assert "| unknown | 1 | 3 | 66.7% |" in text
        assert "| dog | dock | 1 |" in text


class TestSnrBand:
    @pytest.mark.parametrize(
        ("snr_db", "band"),
        [
            (None, "clean"),
            (-3.0, "0-10"),
            (0.0, "0-10"),
            (9.99, "0-10"),
            (10.0, "10-20"),
            (19.9, "10-20"),
            (20.0, "20+"),
            (45.0, "20+"),
        ],
    )
    def test_bands(self, snr_db: float | None, band: str) -> None:
        assert snr_band(snr_db) == band

    def test_rejects_nan(self) -> None:
        with pytest.raises(ValueError, match="NaN"):
            snr_band(float("nan"))
