"""A custom model's vocabulary: terms to boost, how they may sound, and how much they matter.

    vocabulary = Vocabulary.parse([
        {"term": "metformin", "sounds_like": ["met form in"], "weight": 2},
        {"term": "SQL", "sounds_like": ["sequel"]},
    ])
    vocabulary.check_spellable(package.tokenizer)    # VocabularyError for what it cannot spell
    vocabulary.keywords(KEYTERM_BOOST)   # {"metformin": 8.0, "met form in": 8.0, "sql": 4.0, ...}
    vocabulary.lm_sentences()            # text for the word LM (FinetuneRecipe.lm_sentences)
    respell_sounds_like("run the sequel query", vocabulary)   # "run the SQL query"

A term is what the transcript should show, as written (case and punctuation kept). Its
*spellings* are what the decoder may spell for it: the term itself, normalised as the model's
tokenizer normalises ("Dr. Smith" -> "dr smith"), unless it holds something nobody says as
written (digits, symbols: "COVID-19", "AT&T") or letters the tokenizer lacks; and each
sounds-like spelling. Every spelling is boosted in the beam search by ``weight`` times a normal
key-term boost and counted into the word LM. When the decoder spells a sounds-like spelling the
transcript shows the term instead (``respell_sounds_like``); the term's own spelling is left as
the decoder spells it, so a term such as "US" never turns every "us" upper-case (list the
term's own spelling as a sounds-like, e.g. "SQL" sounding like "sql", to show it as written).

Limits: at most MAX_TERMS terms, MAX_SOUNDS_LIKE sounds-like spellings per term, MAX_CHARS
characters in each (after whitespace is squeezed), 0 < weight <= MAX_WEIGHT (DEFAULT_WEIGHT:
an ordinary key-term boost). Terms are unique regardless of case.

A model package carries one in ``config.json``'s ``decoding`` (asr.package.check_decoding) as
``"vocabulary": [{"term": ..., "sounds_like": [...], "weight": ...}, ...]``. No torch here.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from asr.tokenizer import CharTokenizer

MAX_TERMS = 1000
MAX_SOUNDS_LIKE = 10
MAX_CHARS = 100
MAX_WEIGHT = 10.0
DEFAULT_WEIGHT = 1.0  # a normal boost: KEYTERM_BOOST when a Transcriber boosts it

# Punctuation that is not spoken: normalising drops it without loss (asr.finetune's rule).
# Anything else the tokenizer drops (digits, "&", "+", "%", letters of another script) is
# spoken but cannot be spelt, so it must be spelt out in a sounds-like spelling.
_SILENT = frozenset(".,;:!?\"()[]{}-_/'\u2013\u2014\u2026\u00ab\u00bb\u201c\u201d\u2018\u2019`")
_FIELDS = frozenset({"term", "sounds_like", "weight"})


class VocabularyError(ValueError):
    """A vocabulary that cannot be used; the message names the row (``vocabulary[3]``)."""


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def _unsaid(text: str, tokenizer: CharTokenizer | None = None) -> list[str]:
    """Characters of ``text`` that are spoken but that normalising would drop, in order of first
    appearance: digits and symbols, and with a ``tokenizer`` the letters outside its alphabet."""
    found: dict[str, None] = {}
    for c in unicodedata.normalize("NFKD", text.lower()):
        if c.isspace() or unicodedata.combining(c) or c in _SILENT:
            continue
        if (c not in tokenizer.charset) if tokenizer is not None else not c.isalpha():
            found[c] = None
    return list(found)


def _shown(chars: Sequence[str]) -> str:
    return ", ".join(repr(c) for c in chars[:8])


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise VocabularyError(f"{what} must be a string")
    text = _squeeze(value)
    if not 1 <= len(text) <= MAX_CHARS:
        raise VocabularyError(f"{what} must be 1 to {MAX_CHARS} characters, got {len(text)}")
    return text


@dataclass(frozen=True)
class Term:
    """One vocabulary entry; whitespace is squeezed and everything checked on construction."""

    term: str
    sounds_like: tuple[str, ...] = ()
    weight: float = DEFAULT_WEIGHT

    def __post_init__(self) -> None:
        term = _text(self.term, "term")
        if isinstance(self.sounds_like, str) or not isinstance(self.sounds_like, Sequence):
            raise VocabularyError("sounds_like must be a list of strings")
        if len(self.sounds_like) > MAX_SOUNDS_LIKE:
            raise VocabularyError(
                f"at most {MAX_SOUNDS_LIKE} sounds_like spellings, got {len(self.sounds_like)}"
            )
        sounds_like: list[str] = []
        for j, value in enumerate(self.sounds_like):
            spelling = _text(value, f"sounds_like[{j}]")
            unsaid = _unsaid(spelling)
            if unsaid:
                raise VocabularyError(
                    f"sounds_like[{j}] {spelling!r} holds characters that are not spelt as they "
                    f"are spoken: {_shown(unsaid)} (spell numbers and symbols out)"
                )
            if spelling.casefold() in (s.casefold() for s in sounds_like):
                raise VocabularyError(f"sounds_like[{j}] {spelling!r} is listed twice")
            sounds_like.append(spelling)
        weight = self.weight
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise VocabularyError("weight must be a number")
        if not (math.isfinite(weight) and 0.0 < weight <= MAX_WEIGHT):
            raise VocabularyError(f"weight must be more than 0 and at most {MAX_WEIGHT:g}")
        unsaid = _unsaid(term)
        if unsaid and not sounds_like:
            raise VocabularyError(
                f"term {term!r} holds characters that are not spelt as they are spoken: "
                f"{_shown(unsaid)}; give sounds_like spellings"
            )
        object.__setattr__(self, "term", term)
        object.__setattr__(self, "sounds_like", tuple(sounds_like))
        object.__setattr__(self, "weight", float(weight))

    def spellings(self, tokenizer: CharTokenizer | None = None) -> tuple[str, ...]:
        """What the decoder may spell for this term, normalised by ``tokenizer`` (English by
        default): the term itself when the tokenizer spells all of it, then each sounds-like."""
        tok = tokenizer or CharTokenizer.english()
        found: dict[str, None] = {}
        if not _unsaid(self.term, tok):
            found[tok.normalize(self.term)] = None
        for spelling in self.sounds_like:
            found[tok.normalize(spelling)] = None
        found.pop("", None)  # nothing spellable: check_spellable says so, the decoder must not
        return tuple(found)

    def lm_copies(self) -> int:
        """How many times each spelling goes into the LM's text: the weight, rounded, >= 1."""
        return max(1, math.floor(self.weight + 0.5))

    def to_dict(self) -> dict[str, object]:
        return {"term": self.term, "sounds_like": list(self.sounds_like), "weight": self.weight}


@dataclass(frozen=True)
class Vocabulary:
    terms: tuple[Term, ...] = ()

    def __post_init__(self) -> None:
        terms = tuple(self.terms)
        if len(terms) > MAX_TERMS:
            raise VocabularyError(f"vocabulary holds {len(terms)} terms, at most {MAX_TERMS}")
        seen: dict[str, int] = {}
        for i, term in enumerate(terms):
            if not isinstance(term, Term):
                raise VocabularyError(f"vocabulary[{i}] is not a Term")
            key = term.term.casefold()
            if key in seen:
                raise VocabularyError(
                    f"vocabulary[{i}]: term {term.term!r} repeats vocabulary[{seen[key]}]"
                )
            seen[key] = i
        owner: dict[str, int] = {}  # a sounds-like spelling shows one term only
        for i, term in enumerate(terms):
            for spelling in term.sounds_like:
                key = spelling.casefold()
                other = owner.setdefault(key, i)
                if other != i:
                    raise VocabularyError(
                        f"vocabulary[{i}]: sounds_like {spelling!r} is also "
                        f"vocabulary[{other}]'s ({terms[other].term!r})"
                    )
        object.__setattr__(self, "terms", terms)

    @classmethod
    def parse(cls, rows: Iterable[Mapping[str, object]]) -> Vocabulary:
        """Rows of ``{"term": str, "sounds_like": [str, ...], "weight": number}`` (only "term"
        required), as JSON gives them; VocabularyError names the first bad row and field."""
        if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Iterable):
            raise VocabularyError("vocabulary must be a list of {term, sounds_like, weight}")
        terms: list[Term] = []
        for i, row in enumerate(rows):
            if i >= MAX_TERMS:
                raise VocabularyError(f"vocabulary holds more than {MAX_TERMS} terms")
            if not isinstance(row, Mapping):
                raise VocabularyError(f"vocabulary[{i}] must be an object")
            unknown = sorted(set(row) - _FIELDS, key=str)
            if unknown:
                raise VocabularyError(f"vocabulary[{i}]: unknown fields: {', '.join(unknown)}")
            if "term" not in row:
                raise VocabularyError(f"vocabulary[{i}]: term is missing")
            sounds_like = row.get("sounds_like", ())
            if isinstance(sounds_like, str) or not isinstance(sounds_like, Sequence):
                raise VocabularyError(f"vocabulary[{i}]: sounds_like must be a list of strings")
            try:
                terms.append(
                    Term(
                        row["term"],  # type: ignore[arg-type]  # Term checks its types
                        tuple(sounds_like),
                        row.get("weight", DEFAULT_WEIGHT),  # type: ignore[arg-type]
                    )
                )
            except VocabularyError as err:
                raise VocabularyError(f"vocabulary[{i}]: {err}") from None
        return cls(tuple(terms))

    def to_dicts(self) -> list[dict[str, object]]:
        """The rows ``parse`` reads back as an equal vocabulary (JSON-ready)."""
        return [term.to_dict() for term in self.terms]

    def __len__(self) -> int:
        return len(self.terms)

    def __iter__(self) -> Iterator[Term]:
        return iter(self.terms)

    def check_spellable(self, tokenizer: CharTokenizer) -> None:
        """VocabularyError unless ``tokenizer`` can spell every sounds-like spelling, and every
        term without one, whole; and unless no two terms share a spelling once normalised."""
        owner: dict[str, int] = {}
        for i, term in enumerate(self.terms):
            for j, spelling in enumerate(term.sounds_like):
                unsaid = _unsaid(spelling, tokenizer)
                if unsaid or not tokenizer.normalize(spelling):
                    raise VocabularyError(
                        f"vocabulary[{i}].sounds_like[{j}] {spelling!r} holds characters this "
                        f"model cannot spell: {_shown(unsaid) or 'all of them'}"
                    )
            unsaid = _unsaid(term.term, tokenizer)
            if not term.sounds_like and (unsaid or not tokenizer.normalize(term.term)):
                raise VocabularyError(
                    f"vocabulary[{i}]: term {term.term!r} holds characters this model cannot "
                    f"spell: {_shown(unsaid) or 'all of them'}; give sounds_like spellings"
                )
            for spelling in term.spellings(tokenizer):
                other = owner.setdefault(spelling, i)
                if other != i:
                    raise VocabularyError(
                        f"vocabulary[{i}]: {term.term!r} and vocabulary[{other}] "
                        f"{self.terms[other].term!r} are both spelt {spelling!r} by this model"
                    )

    def keywords(
        self, base_boost: float, *, tokenizer: CharTokenizer | None = None
    ) -> dict[str, float]:
        """``DecodeOptions.keywords``: every spelling of every term (normalised by ``tokenizer``,
        English by default) boosted by ``base_boost * weight``."""
        return {
            spelling: base_boost * term.weight
            for term in self.terms
            for spelling in term.spellings(tokenizer)
        }

    def lm_sentences(self, tokenizer: CharTokenizer | None = None) -> list[str]:
        """Text for the word LM (``FinetuneRecipe.lm_sentences``): each spelling of each term,
        normalised by ``tokenizer`` (English by default), ``Term.lm_copies()`` times: once at
        the default weight, ten times at the most."""
        return [
            spelling
            for term in self.terms
            for spelling in term.spellings(tokenizer)
            for _ in range(term.lm_copies())
        ]

    def respellings(self, tokenizer: CharTokenizer | None = None) -> dict[tuple[str, ...], str]:
        """Normalised sounds-like spelling (as words) -> the term that the transcript shows."""
        tok = tokenizer or CharTokenizer.english()
        table: dict[tuple[str, ...], str] = {}
        for term in self.terms:
            for spelling in term.sounds_like:
                words = tuple(tok.normalize(spelling).split())
                if words:
                    table.setdefault(words, term.term)
        return table


def match_respellings(
    words: Sequence[str], table: Mapping[tuple[str, ...], str]
) -> list[tuple[int, int, str]]:
    """``(start, end, term)`` for each run ``words[start:end]`` that ``table`` respells: whole
    words only, left to right, the longest run first where several start at one word."""
    if not table:
        return []
    longest = max(len(key) for key in table)
    found: list[tuple[int, int, str]] = []
    i = 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            term = table.get(tuple(words[i : i + n]))
            if term is not None:
                found.append((i, i + n, term))
                i += n
                break
        else:
            i += 1
    return found


def respell(text: str, table: Mapping[tuple[str, ...], str]) -> str:
    """``text`` with every run of words that ``table`` (``Vocabulary.respellings``) holds
    replaced by its term (see :func:`match_respellings`)."""
    words = text.split()
    out: list[str] = []
    position = 0
    for start, end, term in match_respellings(words, table):
        out.extend(words[position:start])
        out.append(term)
        position = end
    out.extend(words[position:])
    return " ".join(out)


def respell_sounds_like(
    text: str, vocabulary: Vocabulary, *, tokenizer: CharTokenizer | None = None
) -> str:
    """``text`` (a decoded transcript: normalised words) with every sounds-like spelling of a
    term replaced by the term, e.g. "take met form in daily" -> "take metformin daily"."""
    return respell(text, vocabulary.respellings(tokenizer))
