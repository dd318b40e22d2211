"""The text corpora: the Debian-sourced general English, the medical templates, splits and files."""

from __future__ import annotations

import collections
import random
from pathlib import Path
from typing import ClassVar

import pytest

from asr.corpus import (
    MAX_WORDS,
    MIN_WORDS,
    CorpusError,
    general_sentences,
    load_sentences,
    medical_sentences,
    medical_terms,
    split_sentences,
    vocabulary,
)
from asr.tokenizer import CharTokenizer, is_encodable

TOKENIZER = CharTokenizer.english()
MEDICAL_FILE = Path(__file__).parents[2] / "asr" / "corpora" / "medical.txt"


class TestGeneralSentences:
    def test_is_broad_enough_to_train_a_base_model(self) -> None:
        sentences = general_sentences()
        assert len(sentences) >= 20_000
        assert len(vocabulary(sentences)) >= 10_000

    def test_every_sentence_is_normalised_and_4_to_14_words(self) -> None:
        for sentence in general_sentences():
            assert is_encodable(sentence, TOKENIZER), sentence
            assert sentence == " ".join(sentence.split())  # single spaces, none at the ends
            assert MIN_WORDS <= len(sentence.split()) <= MAX_WORDS, sentence

    def test_is_sorted_and_distinct(self) -> None:
        sentences = general_sentences()
        assert sentences == sorted(set(sentences))

    def test_words_come_from_the_dictionary(self) -> None:
        dictionary = Path("/usr/share/dict/american-english").read_text(encoding="utf-8")
        words = {line.lower() for line in dictionary.splitlines()}
        for word in vocabulary(general_sentences()):
            assert word in words or word.removesuffix("'s") in words, word

    def test_includes_both_sources(self) -> None:
        sentences = set(general_sentences())
        assert "the baby cried the whole trip home" in sentences  # WordNet example (cry)
        assert "when all other means of communication fail try words" in sentences  # fortune

    def test_changing_the_returned_list_does_not_change_the_next_one(self) -> None:
        first = general_sentences()
        first.clear()
        assert len(general_sentences()) >= 20_000

    @pytest.mark.parametrize(
        ("argument", "package"),
        [
            ("wordnet_dir", "wordnet-base"),
            ("fortunes_dir", "fortunes"),
            ("dictionary", "wamerican"),
        ],
    )
    def test_a_missing_source_names_the_package_to_install(
        self, tmp_path: Path, argument: str, package: str
    ) -> None:
        with pytest.raises(CorpusError, match=f"install the Debian package {package}"):
            general_sentences(**{argument: tmp_path / "missing"})


class TestMedicalSentences:
    def test_the_term_list_is_real_single_words(self) -> None:
        lines = MEDICAL_FILE.read_text(encoding="utf-8").splitlines()
        terms = [line for line in lines if line and not line.startswith("#")]
        assert terms == medical_terms()
        assert 130 <= len(terms) == len(set(terms))
        assert all(term.isalpha() and term.islower() for term in terms)
        assert {"metformin", "lisinopril", "hypertension", "tachycardia"} <= set(terms)

    def test_every_term_appears_in_several_sentences(self) -> None:
        counts = collections.Counter(w for s in medical_sentences() for w in set(s.split()))
        rare = {term: counts[term] for term in medical_terms() if counts[term] < 3}
        assert not rare

    def test_sentences_are_normalised_sorted_and_distinct(self) -> None:
        sentences = medical_sentences()
        assert len(sentences) >= 500
        assert sentences == sorted(set(sentences))
        assert all(s == TOKENIZER.normalize(s) and len(s.split()) >= MIN_WORDS for s in sentences)

    def test_is_deterministic(self) -> None:
        assert medical_sentences() == medical_sentences()


class TestLoadSentences:
    def test_named_corpora(self) -> None:
        assert load_sentences("medical") == medical_sentences()
        assert load_sentences("general") == general_sentences()

    def test_a_file_is_normalised_and_blank_lines_skipped(self, tmp_path: Path) -> None:
        path = tmp_path / "legal.txt"
        path.write_text("The Court's ruling, in 2024.\n\n   \nAppeal DENIED!\n", encoding="utf-8")
        assert load_sentences(str(path)) == ["the court's ruling in", "appeal denied"]

    def test_a_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(CorpusError, match="does not exist"):
            load_sentences(str(tmp_path / "nothing.txt"))

    def test_an_unknown_name(self) -> None:
        with pytest.raises(CorpusError, match="unknown corpus 'legal'"):
            load_sentences("legal")

    def test_a_file_without_sentences(self, tmp_path: Path) -> None:
        path = tmp_path / "empty.txt"
        path.write_text("\n 123 \n...\n", encoding="utf-8")
        with pytest.raises(CorpusError, match="no sentences"):
            load_sentences(str(path))

    def test_a_file_that_is_not_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "latin1.txt"
        path.write_bytes("caf\xe9 au lait\n".encode("latin-1"))
        with pytest.raises(CorpusError, match="not UTF-8"):
            load_sentences(str(path))


class TestSplitSentences:
    SENTENCES: ClassVar[list[str]] = [f"sentence number {i} of the list" for i in range(2_000)]

    def test_is_disjoint_and_complete_in_input_order(self) -> None:
        train, test = split_sentences(self.SENTENCES, test_fraction=0.2)
        assert not set(train) & set(test)
        assert sorted(train + test) == sorted(self.SENTENCES)
        assert train == [s for s in self.SENTENCES if s in set(train)]
        assert 0.17 < len(test) / len(self.SENTENCES) < 0.23

    def test_a_sentence_stays_on_its_side_whatever_the_order_or_company(self) -> None:
        train, test = split_sentences(self.SENTENCES, test_fraction=0.2)
        shuffled = self.SENTENCES[::-1][:1_500]
        random.Random(3).shuffle(shuffled)
        train2, test2 = split_sentences(shuffled, test_fraction=0.2)
        assert set(test2) == set(test) & set(shuffled)
        assert set(train2) == set(train) & set(shuffled)

    def test_the_salt_draws_another_split(self) -> None:
        _, plain = split_sentences(self.SENTENCES, test_fraction=0.2)
        _, salted = split_sentences(self.SENTENCES, test_fraction=0.2, salt="v2")
        assert set(plain) != set(salted)

    def test_edges_and_bad_fractions(self) -> None:
        assert split_sentences(self.SENTENCES, test_fraction=0.0) == (self.SENTENCES, [])
        assert split_sentences(self.SENTENCES, test_fraction=1.0) == ([], self.SENTENCES)
        with pytest.raises(ValueError, match="test_fraction"):
            split_sentences(self.SENTENCES, test_fraction=1.5)


class TestVocabulary:
    def test_distinct_words(self) -> None:
        assert vocabulary(["the cat sat", "the dog's bowl"]) == {
            "the",
            "cat",
            "sat",
            "dog's",
            "bowl",
        }
