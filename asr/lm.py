"""Word bigram language model with interpolated Kneser-Ney smoothing, for CTC beam search.

    lm = WordLM.from_sentences(["the cat sat", "the dog sat"])
    lm.log_prob("cat", "the")   # natural log of P(cat | the); previous=None is the sentence start

Sentences are split on whitespace as given: normalise them first (``tokenizer.normalize``) so the
words match what the decoder emits. There is no end-of-sentence token: the decoder only asks for
words, so the probabilities over the vocabulary plus ``<unk>`` sum to one for every context.

Smoothing (Chen & Goodman 1998, interpolated Kneser-Ney, one discount per order):

    P(w | v)  = max(c(v, w) - D2, 0) / c(v)  +  D2 * N1+(v •) / c(v) * P_cont(w)
    P_cont(w) = max(N1+(• w) - D1, 0) / N1+(• •)  +  D1 * |V| / N1+(• •) / (|V| + 1)

so the unigram level hands a share of its mass to a uniform distribution over the vocabulary and
one unknown-word class; ``log_prob`` of any word outside the vocabulary is that class's.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

START = "<s>"
UNK = "<unk>"
_FORMAT = "word-bigram-kn"
_DEFAULT_DISCOUNT = 0.75  # used when count-of-counts cannot estimate one (tiny corpora)


class LMError(ValueError):
    """A language model that cannot be built or a description that cannot be read."""


def _discount(counts: Iterable[int]) -> float:
    """Ney's estimate D = n1 / (n1 + 2 n2), kept inside [0.1, 0.9] so tiny corpora stay sane."""
    histogram = Counter(counts)
    n1, n2 = histogram[1], histogram[2]
    if n1 == 0 or n2 == 0:
        return _DEFAULT_DISCOUNT
    return min(max(n1 / (n1 + 2 * n2), 0.1), 0.9)


class WordLM:
    """Bigram counts plus the totals that make each ``log_prob`` a few dictionary lookups."""

    def __init__(
        self,
        bigrams: Mapping[str, Mapping[str, int]],
        *,
        discounts: tuple[float, float] | None = None,
    ) -> None:
        # bigrams[previous][word] = count; previous is START at the start of a sentence
        self._bigrams = {v: dict(ws) for v, ws in bigrams.items() if ws}
        continuation: Counter[str] = Counter()  # N1+(• w): distinct left neighbours of w
        for followers in self._bigrams.values():
            for word, count in followers.items():
                if count < 1:
                    raise LMError(f"bigram count must be positive, got {count} for {word!r}")
                continuation[word] += 1
        if not continuation:
            raise LMError("no words to build a language model from")
        if START in continuation or UNK in continuation:
            raise LMError(f"{START} and {UNK} are reserved and cannot be words")
        self._continuation = dict(continuation)
        self._types = sum(continuation.values())  # N1+(• •)
        if discounts is None:
            all_counts = (c for ws in self._bigrams.values() for c in ws.values())
            discounts = (_discount(continuation.values()), _discount(all_counts))
        d1, d2 = discounts
        if not (0.0 < d1 < 1.0 and 0.0 < d2 < 1.0):
            raise LMError(f"discounts must lie in (0, 1), got {discounts}")
        self._d1, self._d2 = d1, d2
        # c(v) and N1+(v •) per context
        self._context_total = {v: sum(ws.values()) for v, ws in self._bigrams.items()}
        self._unk_unigram = d1 * len(continuation) / self._types / (len(continuation) + 1)

    @classmethod
    def from_sentences(cls, sentences: Iterable[str]) -> WordLM:
        bigrams: defaultdict[str, Counter[str]] = defaultdict(Counter)
        for sentence in sentences:
            previous = START
            for word in sentence.split():
                bigrams[previous][word] += 1
                previous = word
        return cls(bigrams)

    @property
    def vocabulary(self) -> set[str]:
        return set(self._continuation)

    def unigram_prob(self, word: str) -> float:
        """P_cont(word): the Kneser-Ney continuation probability (``<unk>`` mass for OOV words)."""
        count = self._continuation.get(word, 0)
        return max(count - self._d1, 0.0) / self._types + self._unk_unigram

    def log_prob(self, word: str, previous: str | None) -> float:
        """ln P(word | previous); ``previous=None`` is the start of a sentence."""
        unigram = self.unigram_prob(word)
        followers = self._bigrams.get(START if previous is None else previous)
        if followers is None:  # unseen context: back off entirely
            return math.log(unigram)
        total = self._context_total[START if previous is None else previous]
        seen = max(followers.get(word, 0) - self._d2, 0.0) / total
        backoff = self._d2 * len(followers) / total
        return math.log(seen + backoff * unigram)

    def to_dict(self) -> dict[str, object]:
        return {
            "type": _FORMAT,
            "discounts": [self._d1, self._d2],
            "bigrams": {v: dict(sorted(ws.items())) for v, ws in sorted(self._bigrams.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> WordLM:
        bigrams = data.get("bigrams")
        discounts = data.get("discounts")
        if data.get("type") != _FORMAT or not isinstance(bigrams, dict):
            raise LMError(f"not a {_FORMAT} language model description")
        if not (isinstance(discounts, list) and len(discounts) == 2):
            raise LMError("a language model description needs two discounts")
        if not all(isinstance(d, int | float) and not isinstance(d, bool) for d in discounts):
            raise LMError("language model discounts must be numbers")
        parsed: dict[str, dict[str, int]] = {}
        for previous, followers in bigrams.items():
            if not isinstance(previous, str) or not isinstance(followers, dict):
                raise LMError("language model bigrams must map words to {word: count}")
            if not all(
                isinstance(w, str) and isinstance(c, int) and not isinstance(c, bool)
                for w, c in followers.items()
            ):
                raise LMError(f"bigram counts after {previous!r} must be integers")
            parsed[previous] = followers
        return cls(parsed, discounts=(float(discounts[0]), float(discounts[1])))
