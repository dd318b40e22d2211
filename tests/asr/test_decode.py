"""CTC decoding on hand-made model output: (T, V) log probabilities built frame by frame.

A frame is written as a dict of probabilities ({"a": 0.4, "_": 0.6}, "_" the blank); the mass
left over is spread over the other symbols by a seeded Dirichlet draw, which plays the part of
a trained model's noise. ``path("_hh_ii_")`` gives one peaky frame per character.
"""

from __future__ import annotations

import json
import math
import random
import string
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
import torch

from asr.decode import (
    DecodeError,
    Hypothesis,
    Lexicon,
    beam_search,
    greedy,
    join_hypotheses,
    pause_segments,
    snap_to_lexicon,
    speech_spans,
)
from asr.lm import UNK, LMError, WordLM
from asr.tokenizer import CharTokenizer

TOK = CharTokenizer.english()
FRAME = 0.04  # seconds per frame: 10 ms features subsampled 4x


def frames(columns: Sequence[Mapping[str, float]], *, seed: int = 0) -> torch.Tensor:
    """(T, V) log probs: each frame's listed symbols ("_" = blank) take their probability."""
    rng = np.random.default_rng(seed)
    rows = []
    for column in columns:
        ids = {0 if s == "_" else TOK.symbols.index(s): p for s, p in column.items()}
        others = [i for i in range(TOK.vocab_size) if i not in ids]
        probs = np.zeros(TOK.vocab_size)
        leftover = max(1.0 - sum(ids.values()), 1e-4)  # a real model never gives exact zeros
        probs[others] = rng.dirichlet(np.ones(len(others))) * leftover
        probs[list(ids)] = list(ids.values())
        rows.append(np.log(probs / probs.sum()))
    return torch.tensor(np.array(rows), dtype=torch.float32)


def path(labels: str, *, peak: float = 0.9, seed: int = 0) -> torch.Tensor:
    """One frame per character of ``labels`` ("_" = blank), each with ``peak`` on its label."""
    return frames([{c: peak} for c in labels], seed=seed)


def random_path(words: list[str], rng: random.Random) -> str:
    """A plausible alignment: each character held 1-3 frames, blanks between and around."""
    labels = "_" * rng.randint(0, 3)
    for i, word in enumerate(words):
        if i:
            labels += "_" * rng.randint(0, 2) + " " * rng.randint(1, 2) + "_" * rng.randint(0, 2)
        for c in word:
            labels += c * rng.randint(1, 3) + "_" * rng.randint(1, 2)
    return labels + "_" * rng.randint(0, 3)


def both(log_probs: torch.Tensor, *, time_offset: float = 0.0) -> list[Hypothesis]:
    """The best path and the best labelling."""
    return [
        greedy(log_probs, TOK, frame_seconds=FRAME, time_offset=time_offset),
        beam_search(log_probs, TOK, frame_seconds=FRAME, time_offset=time_offset),
    ]


class TestGreedy:
    def test_reads_a_hand_made_path(self) -> None:
        hyp = greedy(path("__hh_e_ll_ll_oo__  _ww_oo_rr_ll_dd__"), TOK, frame_seconds=FRAME)
        assert hyp.text == "hello world"
        assert [w.word for w in hyp.words] == ["hello", "world"]

    def test_collapses_repeats_and_drops_blanks(self) -> None:
        assert greedy(path("_aaa___bb"), TOK, frame_seconds=FRAME).text == "ab"
        assert greedy(path("a_a"), TOK, frame_seconds=FRAME).text == "aa"

    def test_all_blank_and_empty_output_give_no_words(self) -> None:
        for log_probs in (path("_____"), torch.zeros((0, TOK.vocab_size))):
            hyp = greedy(log_probs, TOK, frame_seconds=FRAME)
            assert hyp == Hypothesis("", (), 0.0)

    def test_leading_and_doubled_spaces_make_no_empty_words(self) -> None:
        hyp = greedy(path("  _a_  _b_ "), TOK, frame_seconds=FRAME)
        assert hyp.text == "a b"
        assert len(hyp.words) == 2


class TestBeamSearchOnPeakyInput:
    @pytest.mark.parametrize("seed", range(6))
    def test_equals_greedy_text_and_timings(self, seed: int) -> None:
        rng = random.Random(seed)
        words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dogs", "all", "week"]
        log_probs = path(random_path(rng.sample(words, 5), rng), peak=0.85, seed=seed)
        best_path, best_labelling = both(log_probs)
        assert best_labelling.text == best_path.text
        assert best_labelling.words == best_path.words

    def test_empty_input_gives_empty_hypothesis(self) -> None:
        empty = torch.zeros((0, TOK.vocab_size))
        assert beam_search(empty, TOK, frame_seconds=FRAME) == Hypothesis("", (), 0.0)


class TestBeamSearchSumsPaths:
    def test_finds_the_labelling_greedy_misses(self) -> None:
        # each letter has 0.4 on two frames against a blank at 0.6: the best single path is all
        # blanks, but the three paths spelling the letter ("hh", "h_", "_h") sum to 0.64 > 0.36
        log_probs = frames([{"h": 0.4, "_": 0.6}] * 2 + [{"i": 0.4, "_": 0.6}] * 2)
        best_path, best_labelling = both(log_probs)
        assert best_path.text == ""
        assert best_labelling.text == "hi"

    def test_beam_width_one_still_decodes(self) -> None:
        hyp = beam_search(path("_hh_ii_"), TOK, frame_seconds=FRAME, beam_width=1)
        assert hyp.text == "hi"


def cut_or_cat(*, extra: str = "") -> torch.Tensor:
    """Acoustics between "cut" (0.5) and "cat" (0.4), optionally followed by more letters."""
    columns: list[Mapping[str, float]] = [{"_": 0.9}, {"c": 0.9}, {"_": 0.9}]
    columns += [{"u": 0.5, "a": 0.4}, {"_": 0.9}, {"t": 0.9}, {"_": 0.9}]
    columns += [{c: 0.9} if c != "_" else {"_": 0.9} for c in extra]
    return frames(columns)


class TestKeywordBoosting:
    def test_boost_flips_an_ambiguous_word_to_the_term(self) -> None:
        assert beam_search(cut_or_cat(), TOK, frame_seconds=FRAME).text == "cut"
        boosted = beam_search(cut_or_cat(), TOK, frame_seconds=FRAME, boost={"cat": 2.0})
        assert boosted.text == "cat"

    def test_negative_weight_suppresses_a_word(self) -> None:
        hyp = beam_search(cut_or_cat(), TOK, frame_seconds=FRAME, boost={"cut": -2.0})
        assert hyp.text == "cat"

    def test_partial_matches_earn_nothing(self) -> None:
        # "cat" spells most of "catalog", but only the whole term is rewarded
        hyp = beam_search(cut_or_cat(), TOK, frame_seconds=FRAME, boost={"catalog": 4.0})
        assert hyp.text == "cut"

    def test_terms_are_normalised_like_transcripts(self) -> None:
        hyp = beam_search(cut_or_cat(), TOK, frame_seconds=FRAME, boost={"CAT!": 2.0})
        assert hyp.text == "cat"

    def test_multi_word_term(self) -> None:
        columns: list[Mapping[str, float]] = [{c: 0.9} for c in "_b_i_g_ _"]
        columns += [{"c": 0.9}, {"_": 0.9}, {"u": 0.5, "a": 0.4}, {"_": 0.9}, {"t": 0.9}]
        log_probs = frames(columns)
        assert beam_search(log_probs, TOK, frame_seconds=FRAME).text == "big cut"
        hyp = beam_search(log_probs, TOK, frame_seconds=FRAME, boost={"big cat": 2.0})
        assert hyp.text == "big cat"
        # the same words in another order are not the term
        other = beam_search(log_probs, TOK, frame_seconds=FRAME, boost={"cat big": 2.0})
        assert other.text == "big cut"

    def test_rejects_unusable_terms(self) -> None:
        with pytest.raises(DecodeError, match="no characters"):
            beam_search(cut_or_cat(), TOK, frame_seconds=FRAME, boost={"!!!": 2.0})
        with pytest.raises(DecodeError, match="finite"):
            beam_search(cut_or_cat(), TOK, frame_seconds=FRAME, boost={"cat": math.inf})


class TestLanguageModelInBeamSearch:
    def test_lm_picks_the_known_word_sequence(self) -> None:
        log_probs = frames(
            [{c: 0.9} for c in "_t_h_e_ _c_"]
            + [{"u": 0.5, "a": 0.4}]
            + [{c: 0.9} for c in "_t_ _s_a_t_"]
        )
        lm = WordLM.from_sentences(["the cat sat", "the cat ran", "a dog sat on the mat"])
        assert beam_search(log_probs, TOK, frame_seconds=FRAME).text == "the cut sat"
        with_lm = beam_search(log_probs, TOK, frame_seconds=FRAME, lm=lm)
        assert with_lm.text == "the cat sat"

    def test_lm_scores_the_last_word_at_the_end(self) -> None:
        lm = WordLM.from_sentences(["a cat", "the cat sat"])
        hyp = beam_search(cut_or_cat(), TOK, frame_seconds=FRAME, lm=lm, lm_weight=1.0)
        assert hyp.text == "cat"

    def test_rejects_a_negative_lm_weight(self) -> None:
        lm = WordLM.from_sentences(["the cat sat"])
        with pytest.raises(DecodeError, match="lm_weight"):
            beam_search(cut_or_cat(), TOK, frame_seconds=FRAME, lm=lm, lm_weight=-1.0)


class TestOutOfVocabularyPenalty:
    """A spelling that leaves every lexicon word pays ``oov_penalty`` (natural-log units)."""

    def test_a_lexicon_word_beats_a_slightly_likelier_non_word(self) -> None:
        lexicon = Lexicon.of(["cat", "the"])
        assert beam_search(cut_or_cat(), TOK, frame_seconds=FRAME, lexicon=lexicon).text == "cut"
        hyp = beam_search(cut_or_cat(), TOK, frame_seconds=FRAME, lexicon=lexicon, oov_penalty=2.0)
        assert hyp.text == "cat"

    def test_a_prefix_of_a_word_is_no_word(self) -> None:
        # "cat" spells the start of "cats" and pays when it ends there, like "cut" does
        hyp = beam_search(
            cut_or_cat(), TOK, frame_seconds=FRAME, lexicon=Lexicon.of(["cats"]), oov_penalty=2.0
        )
        assert hyp.text == "cut"

    def test_a_clearly_heard_word_outside_the_lexicon_stays(self) -> None:
        # a penalty, not a ban: the beam keeps a word the acoustics are sure of
        log_probs = path("_z_o_r_b_ _c_a_t_")
        lexicon = Lexicon.of(["cat", "zoo"])
        hyp = beam_search(log_probs, TOK, frame_seconds=FRAME, lexicon=lexicon, oov_penalty=3.0)
        assert hyp.text == "zorb cat"

    def test_boosted_terms_are_known_words(self) -> None:
        lexicon = Lexicon.of(["cut"])
        # "cat" would pay 3 and earn 2: without the rule the non-word "cut" would win
        hyp = beam_search(
            cut_or_cat(),
            TOK,
            frame_seconds=FRAME,
            lexicon=lexicon,
            oov_penalty=3.0,
            boost={"cat": 2.0},
        )
        assert hyp.text == "cat"

    def test_the_words_of_a_boosted_multi_word_term_are_known(self) -> None:
        # "bog" is a little likelier than "big", and a lexicon word; "big" is only known as the
        # start of the term "big cat", which must not cost it the penalty at its space
        columns: list[Mapping[str, float]] = [{"_": 0.9}, {"b": 0.9}, {"_": 0.9}]
        columns += [{"o": 0.5, "i": 0.4}, {"_": 0.9}, {"g": 0.9}, {"_": 0.9}, {" ": 0.9}]
        columns += [{c: 0.9} for c in "_c_a_t_"]
        log_probs = frames(columns)
        lexicon = Lexicon.of(["bog", "cat"])
        options = {"frame_seconds": FRAME, "lexicon": lexicon, "oov_penalty": 3.0}
        assert beam_search(log_probs, TOK, **options).text == "bog cat"  # type: ignore[arg-type]
        boosted = beam_search(log_probs, TOK, boost={"big cat": 2.0}, **options)  # type: ignore[arg-type]
        assert boosted.text == "big cat"

    def test_no_penalty_leaves_the_search_unchanged(self) -> None:
        rng = random.Random(7)
        for seed in range(5):
            log_probs = path(random_path(["the", "cat", "sat"], rng), peak=0.6, seed=seed)
            plain = beam_search(log_probs, TOK, frame_seconds=FRAME)
            lexicon = Lexicon.of(["dog"])
            same = beam_search(log_probs, TOK, frame_seconds=FRAME, lexicon=lexicon)
            assert same == plain

    def test_lexicon_holds_every_prefix(self) -> None:
        lexicon = Lexicon.of(["cat", "cab"])
        assert lexicon.words == {"cat", "cab"}
        assert lexicon.following == {"": "c", "c": "a", "ca": "bt", "cat": "", "cab": ""}

    @pytest.mark.parametrize("penalty", [-1.0, math.inf, math.nan])
    def test_rejects_a_negative_or_infinite_penalty(self, penalty: float) -> None:
        with pytest.raises(DecodeError, match="oov_penalty"):
            beam_search(
                cut_or_cat(),
                TOK,
                frame_seconds=FRAME,
                lexicon=Lexicon.of(["cat"]),
                oov_penalty=penalty,
            )


class TestWordTimings:
    LABELS = "_hh_ii__ __tt_hh_ee_rr_ee__"  # "hi" on frames 1-5, "there" on frames 11-24

    def test_match_the_frames_of_the_path(self) -> None:
        for hyp in both(path(self.LABELS)):
            hi, there = hyp.words
            assert [hi.word, there.word] == ["hi", "there"]
            assert hi.start == pytest.approx(1 * FRAME)
            assert hi.end == pytest.approx(6 * FRAME)  # last frame of "i" is 5
            assert there.start == pytest.approx(11 * FRAME)
            assert there.end == pytest.approx(25 * FRAME)

    def test_time_offset_shifts_every_word(self) -> None:
        plain = greedy(path(self.LABELS), TOK, frame_seconds=FRAME)
        for hyp in both(path(self.LABELS), time_offset=10.0):
            assert [w.start for w in hyp.words] == pytest.approx(
                [w.start + 10 for w in plain.words]
            )
            assert [w.end for w in hyp.words] == pytest.approx([w.end + 10 for w in plain.words])

    @pytest.mark.parametrize("seed", range(4))
    def test_monotone_and_within_the_audio(self, seed: int) -> None:
        rng = random.Random(seed)
        words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
        log_probs = path(random_path(rng.sample(words, 6), rng), peak=0.6, seed=seed)
        duration = len(log_probs) * FRAME
        for hyp in both(log_probs):
            assert len(hyp.words) == 6
            for word in hyp.words:
                assert 0.0 <= word.start < word.end <= duration + 1e-9
            for before, after in zip(hyp.words, hyp.words[1:], strict=False):
                assert before.end <= after.start


class TestConfidence:
    def test_in_unit_interval_and_close_to_the_peak(self) -> None:
        for hyp in both(path("_hh_ii__ __tt_hh_ee_rr_ee__", peak=0.9)):
            assert all(0.0 <= w.confidence <= 1.0 for w in hyp.words)
            assert hyp.confidence == pytest.approx(0.9, abs=1e-3)
            mean = sum(w.confidence for w in hyp.words) / len(hyp.words)
            assert hyp.confidence == pytest.approx(mean)

    def test_lower_for_flatter_posteriors(self) -> None:
        labels = "_cc_aa_tt_"
        sharp, flat = both(path(labels, peak=0.95)), both(path(labels, peak=0.45))
        for sharp_hyp, flat_hyp in zip(sharp, flat, strict=True):
            assert flat_hyp.text == sharp_hyp.text == "cat"
            assert flat_hyp.confidence < sharp_hyp.confidence - 0.3


class TestBadInput:
    @pytest.mark.parametrize(
        ("log_probs", "message"),
        [
            (torch.zeros(10), "must be \\(T, V\\)"),
            (torch.zeros((2, 10, TOK.vocab_size)), "must be \\(T, V\\)"),
            (torch.zeros((10, TOK.vocab_size + 1)), "30 symbols per frame, the tokenizer has 29"),
            (torch.full((10, TOK.vocab_size), math.nan), "NaN"),
            (torch.zeros((10, TOK.vocab_size), dtype=torch.int64), "floating point"),
        ],
    )
    def test_shapes_and_values(self, log_probs: torch.Tensor, message: str) -> None:
        with pytest.raises(DecodeError, match=message):
            greedy(log_probs, TOK, frame_seconds=FRAME)
        with pytest.raises(DecodeError, match=message):
            beam_search(log_probs, TOK, frame_seconds=FRAME)

    def test_not_a_tensor(self) -> None:
        with pytest.raises(DecodeError, match=r"torch\.Tensor"):
            greedy(np.zeros((3, TOK.vocab_size)), TOK, frame_seconds=FRAME)  # type: ignore[arg-type]

    def test_options(self) -> None:
        with pytest.raises(DecodeError, match="frame_seconds"):
            greedy(path("_a_"), TOK, frame_seconds=0.0)
        with pytest.raises(DecodeError, match="beam_width"):
            beam_search(path("_a_"), TOK, frame_seconds=FRAME, beam_width=0)


class TestBeamSearchOnModelLikeOutput:
    # How fast this runs is a figure of bench/asr.py (beam_search_ms_10s), not a test.
    def test_ten_seconds_of_output_with_lm_and_boost(self) -> None:
        # model-like output: the label leads each frame by a logit margin, all others are noise
        rng = random.Random(0)
        labels = random_path(["the", "quick", "brown", "fox", "jumps"] * 4, rng)[:250]
        ids = torch.tensor([0 if c == "_" else TOK.symbols.index(c) for c in labels])
        logits = torch.randn(250, TOK.vocab_size, generator=torch.Generator().manual_seed(0))
        logits[torch.arange(250), ids] += 6.0
        log_probs = torch.log_softmax(logits, dim=1)
        lm = WordLM.from_sentences(["the quick brown fox jumps"])
        hyp = beam_search(log_probs, TOK, frame_seconds=FRAME, lm=lm, boost={"fox": 2.0})
        assert hyp.text.startswith("the quick brown fox")
        assert hyp.words[-1].end <= 250 * FRAME


class TestSnapToLexicon:
    LEXICON = frozenset({"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "cat"})

    def test_corrects_near_misses(self) -> None:
        text = snap_to_lexicon("the quack brwn fox jums ovr the lazzy dog", self.LEXICON)
        assert text == "the quick brown fox jumps over the lazy dog"

    def test_keeps_far_and_short_words(self) -> None:
        # "zebra" is 4 edits from anything; "ox" is too short to correct at ratio 0.34
        assert snap_to_lexicon("the zebra ox", self.LEXICON) == "the zebra ox"

    def test_ratio_bounds_the_distance(self) -> None:
        # one edit in five letters: a distance ratio of 0.2
        assert snap_to_lexicon("quack", self.LEXICON, max_distance_ratio=0.2) == "quick"
        assert snap_to_lexicon("quack", self.LEXICON, max_distance_ratio=0.19) == "quack"
        # a swap is two edits (Levenshtein, not Damerau): too many for five letters at 0.34
        assert snap_to_lexicon("qiuck", self.LEXICON) == "qiuck"

    def test_ties_prefer_the_same_first_letter(self) -> None:
        # "cog" is one edit from both words: the one sharing its first letter wins
        lexicon = {"dog", "cot"}
        assert snap_to_lexicon("cog", lexicon) == "cot"
        assert snap_to_lexicon("dot", lexicon) == "dog"

    def test_accepts_any_collection(self) -> None:
        assert snap_to_lexicon("lazi dogg", ["lazy", "dog"]) == "lazy dog"

    def test_rejects_a_bad_ratio(self) -> None:
        with pytest.raises(ValueError, match="max_distance_ratio"):
            snap_to_lexicon("fox", self.LEXICON, max_distance_ratio=1.5)

    def test_a_large_lexicon(self) -> None:  # its speed: bench/asr.py, snap_ms_50k_words
        rng = random.Random(0)
        lexicon: set[str] = set()
        while len(lexicon) < 50_000:
            size = min(max(int(rng.gauss(7, 2.5)), 2), 14)
            lexicon.add("".join(rng.choices(string.ascii_lowercase, k=size)))
        words = frozenset(lexicon)
        chosen = rng.sample(sorted(words), 15)
        misspelt = [w[:-1] + ("a" if w[-1] != "a" else "b") if len(w) > 3 else w for w in chosen]
        snapped = snap_to_lexicon(" ".join(misspelt), words)
        assert len(snapped.split()) == len(misspelt)
        assert all(w in words for w in snapped.split())


class TestWordLMNormalisation:
    SENTENCES = ("the cat sat on the mat", "the dog sat", "a cat ran", "the cat ran home")

    @pytest.mark.parametrize("previous", [None, "the", "cat", "home", "never-seen"])
    def test_vocabulary_plus_unknown_sums_to_one(self, previous: str | None) -> None:
        lm = WordLM.from_sentences(self.SENTENCES)
        total = sum(math.exp(lm.log_prob(w, previous)) for w in lm.vocabulary)
        total += math.exp(lm.log_prob("zebra", previous))  # any unseen word is the <unk> class
        assert total == pytest.approx(1.0, abs=1e-9)

    def test_seen_bigrams_beat_unseen_ones(self) -> None:
        lm = WordLM.from_sentences(self.SENTENCES)
        assert lm.log_prob("cat", "the") > lm.log_prob("sat", "the")
        assert lm.log_prob("the", None) > lm.log_prob("cat", None)
        assert lm.log_prob("zebra", "the") < lm.log_prob("mat", "the") < 0.0

    def test_vocabulary(self) -> None:
        lm = WordLM.from_sentences(self.SENTENCES)
        assert lm.vocabulary == {"the", "cat", "sat", "on", "mat", "dog", "a", "ran", "home"}


class TestWordLMSerialisation:
    def test_round_trips_through_json(self) -> None:
        lm = WordLM.from_sentences([*TestWordLMNormalisation.SENTENCES * 3, "one more line"])
        restored = WordLM.from_dict(json.loads(json.dumps(lm.to_dict())))
        assert restored.vocabulary == lm.vocabulary
        for previous in [None, "the", "more", "unseen"]:
            for word in [*sorted(lm.vocabulary), "zebra"]:
                assert restored.log_prob(word, previous) == lm.log_prob(word, previous)

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"type": "kenlm"}, "not a word-bigram-kn"),
            ({"type": "word-bigram-kn", "bigrams": {}, "discounts": [0.5]}, "two discounts"),
            ({"type": "word-bigram-kn", "bigrams": {}, "discounts": ["a", 1]}, "numbers"),
            ({"type": "word-bigram-kn", "bigrams": {}, "discounts": [0.5, 1.5]}, "no words"),
            (
                {"type": "word-bigram-kn", "bigrams": {"<s>": {"a": 1}}, "discounts": [0.5, 1.5]},
                "discounts must lie",
            ),
            (
                {"type": "word-bigram-kn", "bigrams": {"<s>": {"a": "1"}}, "discounts": [0.5, 0.5]},
                "must be integers",
            ),
            (
                {"type": "word-bigram-kn", "bigrams": {"<s>": {"a": 0}}, "discounts": [0.5, 0.5]},
                "must be positive",
            ),
            (
                {"type": "word-bigram-kn", "bigrams": {"<s>": [1]}, "discounts": [0.5, 0.5]},
                "map words",
            ),
        ],
    )
    def test_rejects_damaged_descriptions(self, data: dict[str, object], message: str) -> None:
        with pytest.raises(LMError, match=message):
            WordLM.from_dict(data)

    def test_rejects_empty_and_reserved_input(self) -> None:
        with pytest.raises(LMError, match="no words"):
            WordLM.from_sentences(["", "   "])
        with pytest.raises(LMError, match="reserved"):
            WordLM.from_sentences([f"a {UNK} b"])


class TestPauseSegments:
    def test_cuts_in_the_middle_of_long_blank_runs_only(self) -> None:
        lp = path("__hi" + "_" * 10 + "yo_" + "_" * 3 + "ok" + "_" * 12)
        assert pause_segments(lp, blank_id=0, min_pause_frames=10) == [(0, 9), (9, 34)]
        # Every frame belongs to exactly one segment, in order.
        assert pause_segments(lp, blank_id=0, min_pause_frames=3) == [(0, 9), (9, 18), (18, 34)]

    def test_leading_and_trailing_silence_and_no_speech_are_not_cut(self) -> None:
        assert pause_segments(path("_" * 20 + "a" + "_" * 20), blank_id=0, min_pause_frames=5) == [
            (0, 41)
        ]
        assert pause_segments(path("_" * 30), blank_id=0, min_pause_frames=5) == [(0, 30)]
        assert pause_segments(path(""), blank_id=0, min_pause_frames=5) == []
        with pytest.raises(DecodeError, match="min_pause_frames"):
            pause_segments(path("ab"), blank_id=0, min_pause_frames=0)

    def test_joined_segments_keep_words_apart_with_absolute_times(self) -> None:
        # "me" then a long pause then "please": without a space symbol between them, one pass
        # reads one word; segment by segment they are two, timed where they were spoken.
        lp = path("_mm_ee" + "_" * 15 + "pp_ll_ee_aa_ss_ee__")
        assert greedy(lp, TOK, frame_seconds=FRAME).text == "meplease"
        parts = [
            greedy(lp[a:b], TOK, frame_seconds=FRAME, time_offset=a * FRAME)
            for a, b in pause_segments(lp, blank_id=0, min_pause_frames=10)
        ]
        joined = join_hypotheses(parts)
        assert joined.text == "me please"
        assert [w.word for w in joined.words] == ["me", "please"]
        assert joined.words[1].start == pytest.approx(21 * FRAME)
        assert joined.words[0].end <= joined.words[1].start
        assert joined.confidence == pytest.approx(sum(w.confidence for w in joined.words) / 2)
        assert join_hypotheses([]) == Hypothesis("", (), 0.0)


class TestSpeechSpans:
    def test_trims_each_segment_to_its_speech_with_a_margin(self) -> None:
        # Segments: [0, 11) "__hi" + pause half, [11, 36) pause half + "yo" + silence.
        lp = path("___hi" + "_" * 12 + "yo" + "_" * 17)
        assert pause_segments(lp, blank_id=0, min_pause_frames=10) == [(0, 11), (11, 36)]
        assert speech_spans(lp, blank_id=0, min_pause_frames=10, margin_frames=0) == [
            (3, 5),
            (17, 19),
        ]
        assert speech_spans(lp, blank_id=0, min_pause_frames=10, margin_frames=2) == [
            (1, 7),
            (15, 21),
        ]

    def test_the_margin_never_reaches_past_the_segment(self) -> None:
        lp = path("a" + "_" * 12 + "b")
        assert speech_spans(lp, blank_id=0, min_pause_frames=10, margin_frames=100) == [
            (0, 7),
            (7, 14),
        ]

    def test_silence_has_no_spans_and_a_negative_margin_is_refused(self) -> None:
        assert speech_spans(path("_" * 40), blank_id=0, min_pause_frames=5, margin_frames=2) == []
        assert speech_spans(path(""), blank_id=0, min_pause_frames=5, margin_frames=2) == []
        with pytest.raises(DecodeError, match="margin_frames"):
            speech_spans(path("ab"), blank_id=0, min_pause_frames=5, margin_frames=-1)
