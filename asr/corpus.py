"""Text for the synthetic speech corpus: broad everyday English and a medical domain.

    sentences = load_sentences("general")           # ~30k normalised sentences, sorted
    train, test = split_sentences(sentences, test_fraction=0.1, salt="base-v1")

``general`` comes from Debian packages, so it needs no network: the quoted example sentences of
WordNet's glosses (``wordnet-base``) and the sentences of the fortune files (``fortunes``), kept
only where every word is in the ``wamerican`` dictionary (which drops names, typos, ASCII art and
code). ``medical`` is made from templates over the term list in ``corpora/medical.txt``. Every
sentence is normalised with ``CharTokenizer.english().normalize``: lower case, letters, the
apostrophe and single spaces.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from asr.tokenizer import CharTokenizer

MIN_WORDS = 4
MAX_WORDS = 14
CORPORA = ("general", "medical")

_TOKENIZER = CharTokenizer.english()
_CORPORA_DIR = Path(__file__).parent / "corpora"
_WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
_QUOTED = re.compile(r'"([^"]+)"')
_OVERSTRIKE = re.compile(".\x08")  # old fortune files underline with "_\bX"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_TERM = re.compile(r"^[a-z]+$")


class CorpusError(ValueError):
    """A corpus that cannot be read: a missing source package or file, or an empty corpus."""


def general_sentences(
    *,
    wordnet_dir: Path = Path("/usr/share/wordnet"),
    fortunes_dir: Path = Path("/usr/share/games/fortunes"),
    dictionary: Path = Path("/usr/share/dict/american-english"),
) -> list[str]:
    """Sorted distinct everyday sentences of 4-14 dictionary words (WordNet examples, fortunes)."""
    return list(_general_sentences(wordnet_dir, fortunes_dir, dictionary))


@functools.lru_cache(maxsize=4)
def _general_sentences(wordnet_dir: Path, fortunes_dir: Path, dictionary: Path) -> tuple[str, ...]:
    # Cached as a tuple so no caller can change what the next one gets.
    _require(wordnet_dir, "WordNet", "wordnet-base")
    _require(fortunes_dir, "the fortune files", "fortunes")
    _require(dictionary, "the word list", "wamerican")
    words = {line.strip().lower() for line in dictionary.read_text(encoding="utf-8").splitlines()}
    raw = [*_wordnet_examples(wordnet_dir), *_fortune_sentences(fortunes_dir)]
    kept = set()
    for text in raw:
        sentence = _TOKENIZER.normalize(text)
        if _length_ok(sentence) and all(_known(w, words) for w in sentence.split()):
            kept.add(sentence)
    if not kept:
        raise CorpusError(f"no usable sentences in {wordnet_dir} and {fortunes_dir}")
    return tuple(sorted(kept))


def medical_terms() -> list[str]:
    """Every term of ``corpora/medical.txt``, in file order."""
    return [term for terms in _medical_categories().values() for term in terms]


def medical_sentences() -> list[str]:
    """Sorted distinct sentences a clinician might dictate; each term is in several of them."""
    categories = _medical_categories()
    sentences = set()
    for index, template in enumerate(_MEDICAL_TEMPLATES):
        slots = re.findall(r"\{(\w+)\}", template)
        # The first slot walks its whole category; the others follow at co-prime strides, so
        # every term of every category meets several partners.
        lead = categories[slots[0]]
        for i, term in enumerate(lead):
            filled = {slots[0]: term}
            for k, slot in enumerate(slots[1:], start=1):
                others = categories[slot]
                filled[slot] = others[(i * (2 * k + 5) + index * 3) % len(others)]
            sentences.add(_TOKENIZER.normalize(template.format(**filled)))
    return sorted(sentences)


def load_sentences(name: str) -> list[str]:
    """``"general"``, ``"medical"``, or a UTF-8 file of one sentence per line (normalised)."""
    if name == "general":
        return general_sentences()
    if name == "medical":
        return medical_sentences()
    path = Path(name)
    if not path.is_file():
        if path.suffix or len(path.parts) > 1:
            raise CorpusError(f"corpus file {path} does not exist")
        raise CorpusError(
            f"unknown corpus {name!r}: use one of {', '.join(CORPORA)} or a path to a text file"
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise CorpusError(f"corpus file {path} is not UTF-8 text ({err.reason})") from None
    sentences = [s for s in (_TOKENIZER.normalize(line) for line in lines) if s]
    if not sentences:
        raise CorpusError(f"corpus file {path} has no sentences (one sentence per line)")
    return sentences


def split_sentences(
    sentences: Iterable[str], *, test_fraction: float, salt: str = ""
) -> tuple[list[str], list[str]]:
    """(train, test) in input order; a sentence's side depends only on it, the salt and fraction.

    The side comes from sha256(salt + sentence), so reordering, adding or removing other
    sentences never moves a sentence across, and duplicates always land together.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    train: list[str] = []
    test: list[str] = []
    for sentence in sentences:
        side = test if _unit_hash(salt + sentence) < test_fraction else train
        side.append(sentence)
    return train, test


def vocabulary(sentences: Iterable[str]) -> set[str]:
    """The distinct words of ``sentences`` (split on whitespace)."""
    return {word for sentence in sentences for word in sentence.split()}


def _unit_hash(text: str) -> float:
    """A stable number in [0, 1) from ``text``."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _require(path: Path, what: str, package: str) -> None:
    if not path.exists():
        raise CorpusError(
            f"{what} not found at {path}: install the Debian package {package} "
            "(`make install` installs it)"
        )


def _length_ok(sentence: str) -> bool:
    return MIN_WORDS <= len(sentence.split()) <= MAX_WORDS


def _known(word: str, words: set[str]) -> bool:
    return word in words or (word.endswith("'s") and word[:-2] in words)


def _wordnet_examples(wordnet_dir: Path) -> Iterator[str]:
    """The quoted examples after the ``|`` of each synset line."""
    for name in _WORDNET_FILES:
        path = wordnet_dir / name
        if not path.is_file():
            raise CorpusError(f"{path} is missing: reinstall the Debian package wordnet-base")
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith(" "):  # the licence header
                continue
            _, bar, gloss = line.partition("|")
            if bar:
                yield from _QUOTED.findall(gloss)


def _fortune_sentences(fortunes_dir: Path) -> Iterator[str]:
    """Sentences of the fortune files, without attribution lines (``-- Author``)."""
    for path in sorted(fortunes_dir.iterdir()):
        if "." in path.name or not path.is_file():  # skip the .dat indexes and .u8 copies
            continue
        text = _OVERSTRIKE.sub("", path.read_text(encoding="utf-8", errors="replace"))
        for paragraph in text.split("\n%\n"):
            lines = [line for line in paragraph.splitlines() if "--" not in line]
            yield from _SENTENCE_END.split(" ".join(" ".join(lines).split()))


@functools.cache
def _medical_categories() -> dict[str, list[str]]:
    """``# category`` headings of medical.txt, each with its terms."""
    path = _CORPORA_DIR / "medical.txt"
    categories: dict[str, list[str]] = {}
    current: list[str] | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#"):
            current = categories.setdefault(line.lstrip("# ").strip(), [])
        elif line:
            if current is None or not _TERM.match(line):
                raise CorpusError(f"{path}:{number}: expected one lowercase term under a heading")
            current.append(line)
    missing = {slot for t in _MEDICAL_TEMPLATES for slot in re.findall(r"\{(\w+)\}", t)}
    missing -= {name for name, terms in categories.items() if terms}
    if missing:
        raise CorpusError(f"{path} has no terms for {', '.join(sorted(missing))}")
    return categories


# What a clinician dictates or says on a ward round. Slots name the headings of medical.txt.
_MEDICAL_TEMPLATES: Sequence[str] = (
    "the patient was started on {drug} for {condition}",
    "please continue the {drug} at the same dose",
    "we stopped the {drug} because of {symptom}",
    "she has been taking {drug} twice a day",
    "he reports {symptom} since starting {drug}",
    "increase the {drug} and review in two weeks",
    "the pharmacy is out of {drug} so we switched her",
    "do not give {drug} if the {lab} is low",
    "he was prescribed {drug} after the {procedure}",
    "ask the patient whether the {drug} helps with the {symptom}",
    "the history is significant for {condition}",
    "the working diagnosis is {condition} of the {anatomy}",
    "she was admitted last night with {condition}",
    "there is no family history of {condition}",
    "we are treating this as {condition} until proven otherwise",
    "his {condition} is well controlled on {drug}",
    "the chest film was consistent with {condition}",
    "we scheduled the {procedure} for next week",
    "the {procedure} went well and there were no complications",
    "she needs a consent form for the {procedure}",
    "the {procedure} showed a small lesion in the {anatomy}",
    "he is fasting tonight before the {procedure}",
    "the {specialist} recommended the {procedure} for her {condition}",
    "there is tenderness over the {anatomy} on examination",
    "the scan showed inflammation of the {anatomy}",
    "he had surgery on his {anatomy} three years ago",
    "please document any swelling near the {anatomy}",
    "her {lab} came back higher than expected",
    "we will repeat the {lab} in the morning",
    "the {lab} was normal at the last visit",
    "check the {lab} before the next dose of {drug}",
    "we referred him to the {specialist} for {condition}",
    "the {specialist} will see her on the ward today",
    "the {specialist} agreed with the plan",
    "please page the {specialist} on call",
    "she complained of {symptom} and mild fever",
    "the {symptom} started two days ago",
    "he denies {symptom} or chest pain",
    "the {symptom} improved after the first dose",
    "the main complaint today is {symptom}",
)
