"""Character tokenizer for CTC: lower-case English letters, apostrophe and space.

    tok = CharTokenizer.english()
    tok.encode("it's ok")   # [11, 22, 2, 21, 1, 17, 13]; id 0 is the CTC blank
    tok.decode([11, 22])     # "it"

``normalize`` maps free text onto that alphabet (punctuation and digits dropped, accents
stripped); a transcript is always normalised before it is encoded or scored.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

BLANK = "<blank>"
_ENGLISH = (BLANK, " ", "'", *"abcdefghijklmnopqrstuvwxyz")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
_SEPARATORS = re.compile(r"[-_/]+")


class TokenizerError(ValueError):
    """A tokenizer description that cannot be used (from a damaged or foreign package)."""


@dataclass(frozen=True)
class CharTokenizer:
    """A fixed alphabet; ``symbols[0]`` is the CTC blank and ``symbols[1]`` the word separator."""

    symbols: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.symbols) < 3 or self.symbols[0] != BLANK or self.symbols[1] != " ":
            raise TokenizerError("a tokenizer starts with the blank and the space symbols")
        if len(set(self.symbols)) != len(self.symbols):
            raise TokenizerError("tokenizer symbols must be distinct")
        if any(len(s) != 1 for s in self.symbols[1:]):
            raise TokenizerError("every non-blank symbol is one character")

    @classmethod
    def english(cls) -> CharTokenizer:
        return cls(_ENGLISH)

    @property
    def blank_id(self) -> int:
        return 0

    @property
    def space_id(self) -> int:
        return 1

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    @functools.cached_property
    def charset(self) -> frozenset[str]:
        return frozenset(self.symbols[1:])

    def normalize(self, text: str) -> str:
        """Lower-case, strip accents, drop characters outside the alphabet, squeeze spaces."""
        text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES).lower())
        text = _SEPARATORS.sub(" ", text)
        kept = "".join(c if c in self.charset else " " if c.isspace() else "" for c in text)
        return " ".join(kept.split())

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` after :meth:`normalize`."""
        index = self._index
        return [index[c] for c in self.normalize(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of a label sequence (blanks dropped; no CTC collapsing — see asr.decode)."""
        return "".join(self.symbols[i] for i in ids if i != self.blank_id)

    def to_dict(self) -> dict[str, object]:
        return {"type": "char", "symbols": list(self.symbols)}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> CharTokenizer:
        symbols = data.get("symbols")
        if data.get("type") != "char" or not isinstance(symbols, list):
            raise TokenizerError("not a character tokenizer description")
        if not all(isinstance(s, str) for s in symbols):
            raise TokenizerError("tokenizer symbols must be strings")
        return cls(tuple(symbols))

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.symbols)}


def is_encodable(text: str, tokenizer: CharTokenizer, *, alphabet: Sequence[str] = ()) -> bool:
    """Whether ``text`` is non-empty and already in the tokenizer's alphabet (plus ``alphabet``)."""
    allowed = tokenizer.charset | set(alphabet)
    return bool(text.strip()) and all(c in allowed for c in text)
