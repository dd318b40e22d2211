"""A custom model's vocabulary (asr.vocabulary): parsing, spellings, boost, LM text, respelling,
and the vocabulary a package's decoding carries, down to the shipped base model's transcripts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from asr.audio import decode
from asr.decode import Hypothesis, Word
from asr.inference import KEYTERM_BOOST, DecodeOptions, Transcriber, _respell_terms
from asr.package import PackageError, check_decoding, read_package
from asr.tokenizer import CharTokenizer
from asr.vocabulary import (
    DEFAULT_WEIGHT,
    MAX_TERMS,
    Term,
    Vocabulary,
    VocabularyError,
    match_respellings,
    respell_sounds_like,
)
from tests.asr.test_inference import CONV, _package
from tests.asr.test_package import write
from tests.speech import synth_speech

ENGLISH = CharTokenizer.english()
ROWS: list[dict[str, Any]] = [
    {"term": "metformin", "sounds_like": ["met form in"], "weight": 2},
    {"term": "SQL", "sounds_like": ["sequel", "sql"]},
    {"term": "  COVID-19 ", "sounds_like": ["covid  nineteen"], "weight": 0.5},
    {"term": "Dr. Smith's", "weight": 10},
]


def _letters(i: int) -> str:
    """A distinct word of letters for each ``i`` (terms must be spoken as written)."""
    out = ""
    while True:
        out = "abcdefghijklmnopqrstuvwxyz"[i % 26] + out
        i //= 26
        if not i:
            return out


@pytest.fixture(scope="module")
def base() -> Transcriber:
    """The shipped base model (models/*.dg)."""
    models = Path(__file__).resolve().parents[2] / "models"
    return Transcriber(read_package(sorted(models.glob("*.dg"))[-1]))


@pytest.fixture
def vocabulary() -> Vocabulary:
    return Vocabulary.parse(ROWS)


class TestParse:
    def test_rows_become_terms(self, vocabulary: Vocabulary) -> None:
        assert vocabulary.terms == (
            Term("metformin", ("met form in",), 2.0),
            Term("SQL", ("sequel", "sql"), DEFAULT_WEIGHT),
            Term("COVID-19", ("covid nineteen",), 0.5),  # whitespace squeezed
            Term("Dr. Smith's", (), 10.0),
        )
        assert isinstance(vocabulary.terms[0].weight, float)
        assert len(vocabulary) == 4
        assert [t.term for t in vocabulary] == ["metformin", "SQL", "COVID-19", "Dr. Smith's"]

    def test_round_trip_through_json(self, vocabulary: Vocabulary) -> None:
        rows = json.loads(json.dumps(vocabulary.to_dicts()))
        assert rows[1] == {"term": "SQL", "sounds_like": ["sequel", "sql"], "weight": 1.0}
        assert Vocabulary.parse(rows) == vocabulary
        assert Vocabulary.parse([]) == Vocabulary()

    def test_the_most_terms_pass(self) -> None:
        rows = [{"term": f"term {_letters(i)}"} for i in range(MAX_TERMS)]
        assert len(Vocabulary.parse(rows)) == MAX_TERMS
        with pytest.raises(VocabularyError, match="more than 1000 terms"):
            Vocabulary.parse([*rows, {"term": "one more"}])

    @pytest.mark.parametrize(
        ("rows", "message"),
        [
            ("metformin", r"vocabulary must be a list"),
            ({"term": "metformin"}, r"vocabulary must be a list"),
            (["metformin"], r"vocabulary\[0\] must be an object"),
            ([{"term": "a"}, {"term": "b", "boost": 2}], r"vocabulary\[1\]: unknown fields: boost"),
            ([{"sounds_like": ["x"]}], r"vocabulary\[0\]: term is missing"),
            ([{"term": 7}], r"vocabulary\[0\]: term must be a string"),
            ([{"term": "  \t "}], r"vocabulary\[0\]: term must be 1 to 100 characters, got 0"),
            ([{"term": "x" * 101}], r"term must be 1 to 100 characters, got 101"),
            ([{"term": "a", "sounds_like": "ay"}], r"\[0\]: sounds_like must be a list"),
            ([{"term": "a", "sounds_like": ["ay", 3]}], r"\[0\]: sounds_like\[1\] must be a str"),
            ([{"term": "a", "sounds_like": [" "]}], r"sounds_like\[0\] must be 1 to 100"),
            ([{"term": "a", "sounds_like": ["y" * 101]}], r"sounds_like\[0\] must be 1 to 100"),
            (
                [{"term": "a", "sounds_like": [f"ay {_letters(i)}" for i in range(11)]}],
                r"vocabulary\[0\]: at most 10 sounds_like spellings, got 11",
            ),
            (
                [{"term": "b12", "sounds_like": ["bee 12"]}],
                r"sounds_like\[0\] 'bee 12' holds characters .*'1', '2' \(spell numbers",
            ),
            (
                [{"term": "a", "sounds_like": ["ay", "AY"]}],
                r"sounds_like\[1\] 'AY' is listed twice",
            ),
            ([{"term": "a", "weight": True}], r"vocabulary\[0\]: weight must be a number"),
            ([{"term": "a", "weight": "2"}], r"weight must be a number"),
            ([{"term": "a", "weight": 0}], r"weight must be more than 0 and at most 10"),
            ([{"term": "a", "weight": -1.0}], r"weight must be more than 0"),
            ([{"term": "a", "weight": 10.5}], r"weight must be more than 0"),
            ([{"term": "a", "weight": float("nan")}], r"weight must be more than 0"),
            ([{"term": "a", "weight": float("inf")}], r"weight must be more than 0"),
            ([{"term": "AT&T"}], r"\[0\]: term 'AT&T' holds .*'&'; give sounds_like"),
            ([{"term": "x"}, {"term": "B12"}], r"\[1\]: term 'B12' holds .*'1', '2'"),
            (
                [{"term": "a"}, {"term": "b"}, {"term": " A "}],
                r"vocabulary\[2\]: term 'A' repeats vocabulary\[0\]",
            ),
            (
                [
                    {"term": "SQL", "sounds_like": ["sequel"]},
                    {"term": "Sqlite", "sounds_like": ["Sequel"]},
                ],
                r"vocabulary\[1\]: sounds_like 'Sequel' is also vocabulary\[0\]'s \('SQL'\)",
            ),
        ],
    )
    def test_every_bad_row_is_named(self, rows: Any, message: str) -> None:
        with pytest.raises(VocabularyError, match=message):
            Vocabulary.parse(rows)

    def test_a_vocabulary_error_is_a_value_error(self) -> None:
        assert issubclass(VocabularyError, ValueError)
        with pytest.raises(ValueError, match="term must be a string"):
            Term(None)  # type: ignore[arg-type]


class TestSpellable:
    def test_what_the_tokenizer_spells_passes(self, vocabulary: Vocabulary) -> None:
        vocabulary.check_spellable(ENGLISH)  # digits and "&" are spelt out in sounds_like
        # letters outside the alphabet are fine when a sounds-like spells the term
        Vocabulary.parse([{"term": "Ørsted", "sounds_like": ["er sted"]}]).check_spellable(ENGLISH)
        Vocabulary.parse([{"term": "Müller"}]).check_spellable(ENGLISH)  # accents are dropped

    @pytest.mark.parametrize(
        ("rows", "message"),
        [
            ([{"term": "a"}, {"term": "Ørsted"}], r"vocabulary\[1\]: term 'Ørsted' .*'ø'; give"),
            ([{"term": "Москва"}], r"term 'Москва' holds characters this model cannot spell"),
            (
                [{"term": "Ørsted", "sounds_like": ["ok", "ør sted"]}],
                r"vocabulary\[0\].sounds_like\[1\] 'ør sted' holds .*'ø'",
            ),
            (
                [{"term": "Dr. Smith"}, {"term": "dr smith"}],
                r"vocabulary\[1\]: 'dr smith' and vocabulary\[0\] 'Dr. Smith' are both spelt",
            ),
            (
                [{"term": "sequel"}, {"term": "SQL", "sounds_like": ["sequel"]}],
                r"vocabulary\[1\]: 'SQL' and vocabulary\[0\] 'sequel' are both spelt 'sequel'",
            ),
        ],
    )
    def test_what_it_cannot_spell_is_named(self, rows: list[dict[str, Any]], message: str) -> None:
        vocabulary = Vocabulary.parse(rows)
        with pytest.raises(VocabularyError, match=message):
            vocabulary.check_spellable(ENGLISH)


class TestTrainingAndBoost:
    def test_spellings_are_what_the_decoder_may_spell(self, vocabulary: Vocabulary) -> None:
        assert [t.spellings() for t in vocabulary] == [
            ("metformin", "met form in"),
            ("sql", "sequel"),  # "sql" twice: once
            ("covid nineteen",),  # "COVID-19" itself is not spoken as written
            ("dr smith's",),
        ]

    def test_keywords_scale_the_base_boost_by_weight(self, vocabulary: Vocabulary) -> None:
        assert vocabulary.keywords(4.0) == {
            "metformin": 8.0,
            "met form in": 8.0,
            "sql": 4.0,
            "sequel": 4.0,
            "covid nineteen": 2.0,
            "dr smith's": 40.0,
        }

    def test_lm_sentences_repeat_each_spelling_by_weight(self, vocabulary: Vocabulary) -> None:
        sentences = vocabulary.lm_sentences()
        assert sentences[:6] == ["metformin"] * 2 + ["met form in"] * 2 + ["sql", "sequel"]
        assert sentences[6:7] == ["covid nineteen"]  # weight 0.5: still once
        assert sentences[7:] == ["dr smith's"] * 10
        assert Term("x", weight=2.5).lm_copies() == 3  # rounded half up
        assert Term("x", weight=0.01).lm_copies() == 1
        # normalised as the tokenizer normalises: FinetuneRecipe.lm_sentences takes them as-is
        assert all(ENGLISH.normalize(s) == s for s in sentences)


class TestRespelling:
    def test_sounds_like_shows_the_term(self, vocabulary: Vocabulary) -> None:
        text = "the patient takes met form in daily"
        assert respell_sounds_like(text, vocabulary) == "the patient takes metformin daily"
        text = "run the sequel on covid nineteen data"
        assert respell_sounds_like(text, vocabulary) == "run the SQL on COVID-19 data"

    def test_whole_words_only(self, vocabulary: Vocabulary) -> None:
        for text in ["sequels", "the prequel", "met form", "met form inside", "xmet form in"]:
            assert respell_sounds_like(text, vocabulary) == text
        assert respell_sounds_like("met form in met form in", vocabulary) == "metformin metformin"

    def test_the_term_itself_is_shown_only_when_listed(self) -> None:
        vocabulary = Vocabulary.parse(
            [{"term": "US", "sounds_like": ["u s"]}, {"term": "SQL", "sounds_like": ["sql"]}]
        )
        text = "call us about the u s sql"
        assert respell_sounds_like(text, vocabulary) == "call us about the US SQL"

    def test_longest_run_first_and_multi_word_terms(self) -> None:
        vocabulary = Vocabulary.parse(
            [
                {"term": "SQL", "sounds_like": ["sequel"]},
                {"term": "SQL Server", "sounds_like": ["sequel server", "sequel serve"]},
            ]
        )
        table = vocabulary.respellings()
        assert table[("sequel", "server")] == "SQL Server"
        words = "the sequel server and the sequel".split()
        assert match_respellings(words, table) == [(1, 3, "SQL Server"), (5, 6, "SQL")]
        text = "restart sequel serve now"
        assert respell_sounds_like(text, vocabulary) == "restart SQL Server now"

    def test_words_keep_the_time_of_what_they_replace(self) -> None:
        vocabulary = Vocabulary.parse(
            [
                {"term": "metformin", "sounds_like": ["met form in"]},
                {"term": "SQL Server", "sounds_like": ["sequel"]},
                {"term": "New York City", "sounds_like": ["nyc there"]},
            ]
        )
        spoken = "met form in sequel nyc there ok".split()
        words = tuple(Word(w, i, i + 0.5, 0.1 * (i + 1)) for i, w in enumerate(spoken))
        hypothesis = Hypothesis(" ".join(spoken), words, 0.4)
        got = _respell_terms(hypothesis, vocabulary.respellings())
        assert got.text == "metformin SQL Server New York City ok"
        assert [(w.word, w.start, w.end) for w in got.words] == [
            ("metformin", 0, 2.5),  # three words into one
            ("SQL", 3, 3.25),  # one into two: its time halved
            ("Server", 3.25, 3.5),
            ("New", 4, 4.5),  # two into three: the time evenly
            ("York", 4.5, 5.0),
            ("City", 5.0, 5.5),
            ("ok", 6, 6.5),
        ]
        assert got.words[0].confidence == pytest.approx(0.2)
        assert got.confidence == pytest.approx(sum(w.confidence for w in got.words) / 7)


class TestDecodingSettings:
    def test_decoding_carries_a_canonical_vocabulary(self) -> None:
        settings = {"decoder": "beam", "vocabulary": [{"term": " metformin  "}]}
        checked = check_decoding(settings, ENGLISH)
        assert checked == {
            "decoder": "beam",
            "vocabulary": [{"term": "metformin", "sounds_like": [], "weight": 1.0}],
        }
        assert check_decoding(checked) == checked

    @pytest.mark.parametrize(
        ("vocabulary", "message"),
        [
            ({"term": "x"}, r"decoding.vocabulary has the wrong type"),
            ([{"term": "x", "weight": 0}], r"decoding.vocabulary\[0\]: weight must be more"),
            ([{"term": "x"}, {"term": "Ørsted"}], r"decoding.vocabulary\[1\]: term 'Ørsted'"),
        ],
    )
    def test_bad_vocabulary_is_named(self, vocabulary: Any, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            check_decoding({"vocabulary": vocabulary}, ENGLISH)

    def test_decode_options_take_a_package_decoding(self, vocabulary: Vocabulary) -> None:
        decoding = check_decoding({"lm_weight": 0.5, "vocabulary": ROWS})
        options = DecodeOptions(**decoding)  # as asr.finetune and the Transcriber build them
        assert options.vocabulary == vocabulary
        assert options.to_dict() == {**DecodeOptions(lm_weight=0.5).to_dict(), **decoding}
        assert "vocabulary" not in DecodeOptions().to_dict()

    def test_a_package_round_trips_its_vocabulary(self, tmp_path: Path) -> None:
        decoding = {"snap": False, "vocabulary": ROWS}
        package = read_package(write(tmp_path, decoding=decoding))
        assert package.decoding is not None
        assert package.decoding["snap"] is False
        assert Vocabulary.parse(package.decoding["vocabulary"]) == Vocabulary.parse(ROWS)
        assert Transcriber(package).default_options.vocabulary == Vocabulary.parse(ROWS)

    def test_a_vocabulary_the_model_cannot_spell_is_not_packaged(self, tmp_path: Path) -> None:
        decoding = {"vocabulary": [{"term": "Ørsted"}]}
        with pytest.raises(PackageError, match=r"decoding.vocabulary\[0\]: term 'Ørsted'"):
            write(tmp_path, decoding=decoding)
        assert not list(tmp_path.glob("*.dg"))


class TestTranscriberBoost:
    """What the beam search boosts, on a tiny random model (no audio needed)."""

    def _transcriber(self, decoding: dict[str, Any] | None) -> Transcriber:
        return Transcriber(replace(_package(CONV), decoding=decoding))

    def test_without_a_vocabulary_keywords_pass_as_they_are(self) -> None:
        transcriber = self._transcriber({"decoder": "greedy"})
        assert transcriber.default_options.vocabulary is None
        assert transcriber.boost(transcriber.default_options) == {}
        options = transcriber.options(keywords={"Met-Formin": 3.0})
        assert transcriber.boost(options) == {"Met-Formin": 3.0}

    def test_the_package_vocabulary_is_boosted_on_every_request(self) -> None:
        transcriber = self._transcriber({"decoder": "greedy", "vocabulary": ROWS[:2]})
        everyday = {"metformin": 8.0, "met form in": 8.0, "sql": 4.0, "sequel": 4.0}
        assert KEYTERM_BOOST == 4.0
        assert transcriber.boost(transcriber.default_options) == everyday
        # a request's own weight wins for a term both name, for all of its spellings
        options = transcriber.options(keywords={"MetFormin": 1.0, "ibuprofen": 5.0})
        assert options.vocabulary is transcriber.default_options.vocabulary
        assert transcriber.boost(options) == {
            **everyday,
            "metformin": 1.0,
            "met form in": 1.0,
            "ibuprofen": 5.0,
        }
        # a request naming one spelling changes that spelling only
        options = transcriber.options(keywords={"sequel": -2.0})
        assert transcriber.boost(options) == {**everyday, "sequel": -2.0}

    def test_a_vocabulary_it_cannot_spell_is_refused(self) -> None:
        with pytest.raises(VocabularyError, match="Ørsted"):
            self._transcriber({"vocabulary": [{"term": "Ørsted"}]})


class TestBaseModel:
    """The shipped base model: a word it mishears, listed as a term's sounds-like, shows the
    term in the transcript and in its words."""

    def test_a_misheard_word_shows_the_term(self, base: Transcriber) -> None:
        word = decode(synth_speech("kubernetes")).samples
        said = base.transcribe(word).text  # "cuban its" when this test was written
        assert said
        assert said != "kubernetes"
        rows = [{"term": "K8s", "sounds_like": [said]}, {"term": "metformin"}]
        package = replace(
            base.package, decoding={**(base.package.decoding or {}), "vocabulary": rows}
        )
        custom = Transcriber(package)

        result = custom.transcribe(word)
        assert result.text == "K8s"
        [shown] = result.hypothesis.words
        plain = base.transcribe(word).hypothesis.words
        assert (shown.word, shown.start, shown.end) == ("K8s", plain[0].start, plain[-1].end)

        sentence = decode(synth_speech("we deploy on kubernetes")).samples
        assert base.transcribe(sentence).text.endswith(said)
        result = custom.transcribe(sentence)
        assert result.text.endswith(" K8s")
        assert result.hypothesis.text == result.text
        assert result.hypothesis.words[-1].word == "K8s"

        # explicit options without the vocabulary decode as the plain model does
        assert custom.transcribe(word, DecodeOptions(decoder="greedy")).text == (
            base.transcribe(word, DecodeOptions(decoder="greedy")).text
        )
