"""CTC decoding: greedy and prefix beam search (keyword boosting, word LM), word timings.

    hyp = beam_search(log_probs, tokenizer, frame_seconds=0.04, boost={"snuffleupagus": 5.0})
    hyp.text, [(w.word, w.start, w.end, w.confidence) for w in hyp.words]

``log_probs`` is one utterance's model output: a float tensor (T, V) of log-softmax scores over
the tokenizer's symbols (blank id 0, space id 1), one frame every ``frame_seconds``. A word's
start is the first frame of its first character and its end the frame after the last frame of
its last character, in seconds from ``time_offset``. A character's confidence is the mean
posterior (exp log prob) of that character over the frames that emit it; a word's is the mean
over its characters, and a hypothesis's the mean over its words.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import torch
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from asr.lm import WordLM
from asr.tokenizer import CharTokenizer

NEG_INF = float("-inf")
_ALWAYS_TOP = 3  # symbols per frame searched whatever their log prob: keeps flat frames alive


class DecodeError(ValueError):
    """Model output (or a decoding option) the decoder cannot use."""


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds
    end: float  # seconds
    confidence: float  # in [0, 1]


@dataclass(frozen=True)
class Hypothesis:
    text: str
    words: tuple[Word, ...]
    confidence: float  # mean word confidence; 0.0 without words


class _Emission(NamedTuple):
    """One emitted character; ``parent`` links the characters before it (a persistent list)."""

    parent: _Emission | None
    symbol: int
    first: int  # first frame that emits it
    last: int  # last frame that emits it
    posterior: float  # sum of exp(log prob) over its emitting frames
    frames: int  # number of emitting frames


def _check(
    log_probs: torch.Tensor, tokenizer: CharTokenizer, frame_seconds: float
) -> npt.NDArray[np.float64]:
    """The model output as a float64 (T, V) array, or DecodeError saying what is wrong."""
    if not isinstance(log_probs, torch.Tensor):
        raise DecodeError(f"log_probs must be a torch.Tensor, got {type(log_probs).__name__}")
    if log_probs.dim() != 2:
        raise DecodeError(f"log_probs must be (T, V), got shape {tuple(log_probs.shape)}")
    if log_probs.shape[1] != tokenizer.vocab_size:
        raise DecodeError(
            f"log_probs has {log_probs.shape[1]} symbols per frame, "
            f"the tokenizer has {tokenizer.vocab_size}"
        )
    if not log_probs.is_floating_point():
        raise DecodeError(f"log_probs must be floating point, got {log_probs.dtype}")
    if torch.isnan(log_probs).any():
        raise DecodeError("log_probs contains NaN")
    if not (math.isfinite(frame_seconds) and frame_seconds > 0):
        raise DecodeError(f"frame_seconds must be positive, got {frame_seconds}")
    return log_probs.detach().to("cpu", torch.float64).numpy()


def _hypothesis(
    emissions: list[_Emission], tokenizer: CharTokenizer, frame_seconds: float, offset: float
) -> Hypothesis:
    """Group characters into words at spaces; timings and confidences from their frames."""
    words: list[Word] = []
    current: list[_Emission] = []
    for emission in [*emissions, None]:
        if emission is not None and emission.symbol != tokenizer.space_id:
            current.append(emission)
            continue
        if current:
            text = "".join(tokenizer.symbols[e.symbol] for e in current)
            confidence = sum(e.posterior / e.frames for e in current) / len(current)
            start = current[0].first * frame_seconds + offset
            end = (current[-1].last + 1) * frame_seconds + offset
            words.append(Word(text, start, end, min(max(confidence, 0.0), 1.0)))
            current = []
    confidence = sum(w.confidence for w in words) / len(words) if words else 0.0
    return Hypothesis(" ".join(w.word for w in words), tuple(words), confidence)


def pause_segments(
    log_probs: torch.Tensor, *, blank_id: int, min_pause_frames: int
) -> list[tuple[int, int]]:
    """Frame ranges [start, end) that cover ``log_probs``, cut in the middle of every run of at
    least ``min_pause_frames`` frames whose best symbol is the blank.

    The model learnt from single sentences, so it never emits a space across a long pause (it
    never heard one between words): decoding each stretch of speech on its own and joining them
    with spaces (:func:`join_hypotheses`) keeps two sentences from running into one word.
    """
    if min_pause_frames < 1:
        raise DecodeError(f"min_pause_frames must be at least 1, got {min_pause_frames}")
    total = int(log_probs.shape[0])
    blank = (log_probs.argmax(dim=-1) == blank_id).tolist() if total else []
    cuts: list[int] = []
    run_start, speech_seen = 0, False
    for t, is_blank in enumerate([*blank, False]):
        if is_blank:
            continue
        if t - run_start >= min_pause_frames and speech_seen and t < total:
            cuts.append((run_start + t) // 2)
        run_start, speech_seen = t + 1, True
    bounds = [0, *cuts, total]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def speech_spans(
    log_probs: torch.Tensor, *, blank_id: int, min_pause_frames: int, margin_frames: int
) -> list[tuple[int, int]]:
    """The stretches of speech in ``log_probs``: each :func:`pause_segments` segment trimmed to
    its first and last frame whose best symbol is not the blank, widened by ``margin_frames``
    on each side (never past the segment); segments that are all blank are dropped.

    Long-form inference (asr.inference) encodes each span on its own, as the model was trained:
    one stretch of speech per input, not a minute of several speakers and rooms.
    """
    if margin_frames < 0:
        raise DecodeError(f"margin_frames must not be negative, got {margin_frames}")
    segments = pause_segments(log_probs, blank_id=blank_id, min_pause_frames=min_pause_frames)
    if not segments:
        return []
    spoken = log_probs.argmax(dim=-1) != blank_id
    spans: list[tuple[int, int]] = []
    for a, b in segments:
        frames = torch.nonzero(spoken[a:b]).flatten()
        if not len(frames):
            continue
        first, last = a + int(frames[0]), a + int(frames[-1]) + 1
        spans.append((max(a, first - margin_frames), min(b, last + margin_frames)))
    return spans


def join_hypotheses(parts: list[Hypothesis]) -> Hypothesis:
    """One hypothesis from consecutive ones (timings already absolute): words in order."""
    words = tuple(w for part in parts for w in part.words)
    confidence = sum(w.confidence for w in words) / len(words) if words else 0.0
    return Hypothesis(" ".join(p.text for p in parts if p.text), words, confidence)


def greedy(
    log_probs: torch.Tensor,
    tokenizer: CharTokenizer,
    *,
    frame_seconds: float,
    time_offset: float = 0.0,
) -> Hypothesis:
    """Best path: argmax per frame, collapse repeats, drop blanks."""
    scores = _check(log_probs, tokenizer, frame_seconds)  # (T, V)
    best = scores.argmax(axis=1).tolist() if len(scores) else []
    posteriors = np.exp(scores.max(axis=1)).tolist() if len(scores) else []
    emissions: list[_Emission] = []
    previous = tokenizer.blank_id
    for t, (symbol, posterior) in enumerate(zip(best, posteriors, strict=True)):
        if symbol != tokenizer.blank_id:
            if symbol == previous:  # the same character held over another frame
                e = emissions[-1]
                emissions[-1] = e._replace(
                    last=t, posterior=e.posterior + posterior, frames=e.frames + 1
                )
            else:
                emissions.append(_Emission(None, symbol, t, t, posterior, 1))
        previous = symbol
    return _hypothesis(emissions, tokenizer, frame_seconds, time_offset)


def _logaddexp(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b == NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


@dataclass(eq=False)
class _TermNode:
    """A boost trie node: the characters of boosted terms so far (multi-word terms keep spaces)."""

    children: dict[str, _TermNode] = field(default_factory=dict)
    score: float = 0.0  # bonus held while the spelling matches this node (taken back on a miss)
    weight: float | None = None  # a term ends here: its full bonus


def _term_trie(boost: Mapping[str, float], tokenizer: CharTokenizer) -> _TermNode:
    """Each term's weight spread over its characters: weight * depth / len(term) at each node.

    Built once per boost and tokenizer: a long recording is decoded stretch by stretch, and a
    custom model's vocabulary (up to 11,000 spellings) took 0.4 to 1.5 s to build each time.
    The trie is never changed once built, so one copy serves every call.
    """
    return _cached_term_trie(tuple(boost.items()), tokenizer)


@functools.lru_cache(maxsize=64)
def _cached_term_trie(boost: tuple[tuple[str, float], ...], tokenizer: CharTokenizer) -> _TermNode:
    root = _TermNode()
    for term, weight in boost:
        text = tokenizer.normalize(term)
        if not text:
            raise DecodeError(f"boosted term {term!r} has no characters the tokenizer knows")
        if not math.isfinite(weight):
            raise DecodeError(f"boost weight of {term!r} must be finite, got {weight}")
        node = root
        for depth, char in enumerate(text, start=1):
            node = node.children.setdefault(char, _TermNode())
            share = weight * depth / len(text)
            if abs(share) > abs(node.score):  # terms sharing a prefix: the strongest one leads
                node.score = share
        if node.weight is None or abs(weight) > abs(node.weight):
            node.weight = weight
    return root


def _settle(node: _TermNode | None) -> float:
    """At the end of a word: keep a full term's bonus, take back a partial match's."""
    if node is None:
        return 0.0
    return (node.weight if node.weight is not None else 0.0) - node.score


@dataclass(frozen=True, eq=False)
class Lexicon:
    """The words a beam search knows, and every prefix of them: a word being spelled that
    stops being a prefix of any of them pays ``oov_penalty`` at once (pyctcdecode's
    ``unk_score_offset``), so non-words leave the beam before they crowd out real ones."""

    words: frozenset[str]
    # every prefix of every word ("" and whole words included) -> the characters that can
    # follow it in some word, sorted ("" when none can)
    following: Mapping[str, str]

    @classmethod
    def of(cls, words: Iterable[str]) -> Lexicon:
        known = frozenset(words)
        prefixes = sorted({w[:i] for w in known for i in range(len(w) + 1)})
        following = dict.fromkeys(prefixes, "")
        for prefix in prefixes[1:]:  # sorted: each prefix's next characters arrive in order
            following[prefix[:-1]] += prefix[-1]
        return cls(known, following)


class _Context(NamedTuple):
    """What the LM and the boost trie know of a prefix; a function of its text alone."""

    score: float  # LM and boost bonus so far (natural log units)
    word: str  # the word being spelled, "" after a space
    previous: str | None  # the last finished word (None at the start)
    term: _TermNode | None  # where the spelling stands in the boost trie; None: no term matches
    known: bool = True  # the word so far is a prefix of a lexicon word or a boosted term


class _Scorer:
    def __init__(
        self,
        tokenizer: CharTokenizer,
        root: _TermNode,
        lm: WordLM | None,
        lm_weight: float,
        word_bonus: float,
        lexicon: Lexicon | None = None,
        oov_penalty: float = 0.0,
    ) -> None:
        self.symbols = tokenizer.symbols
        self._ids = {char: symbol for symbol, char in enumerate(tokenizer.symbols)}
        self._space = self._ids[" "]
        self._letters = frozenset(  # every symbol that spells a word
            symbol
            for symbol in range(len(self.symbols))
            if symbol not in (tokenizer.blank_id, self._space)
        )
        self._lexicon = lexicon if oov_penalty > 0.0 else None
        self.oov_penalty = oov_penalty
        self.root = root
        self.start = _Context(0.0, "", None, root)
        self._lm, self._lm_weight, self._word_bonus = lm, lm_weight, word_bonus
        self._cache: dict[tuple[str, str | None], float] = {}
        self._tolls: dict[tuple[str, _TermNode | None], frozenset[int]] = {}
        # the most one character can add to a context score: a boost step or miss, a word end,
        # plus an LM word score of at most word_bonus (log_prob <= 0, lm_weight >= 0)
        gain, stack = 0.0, [root]
        while stack:
            node = stack.pop()
            gain = max(gain, -node.score, _settle(node))
            for child in node.children.values():
                gain = max(gain, child.score - node.score)
                stack.append(child)
        self.max_gain = gain + (max(word_bonus, 0.0) if lm is not None else 0.0)

    def word_score(self, word: str, previous: str | None) -> float:
        if self._lm is None:
            return 0.0
        key = (word, previous)
        if key not in self._cache:
            lm_score = self._lm.log_prob(word, previous)
            self._cache[key] = self._lm_weight * lm_score + self._word_bonus
        return self._cache[key]

    def advance(self, context: _Context, char: str) -> _Context:
        node = context.term
        if char == " ":
            if not context.word:  # a leading or doubled space ends no word
                return context
            score = context.score + self.word_score(context.word, context.previous)
            score -= self._unknown_word(context)
            if node is not None and " " in node.children:  # a multi-word term goes on
                after = node.children[" "]
                return _Context(score + after.score - node.score, "", context.word, after)
            return _Context(score + _settle(node), "", context.word, self.root)
        word = context.word + char
        child = None if node is None else node.children.get(char)
        score = context.score
        if node is not None:  # a partial match that goes no further earns nothing
            score += (child.score if child is not None else 0.0) - node.score
        known = context.known
        if known and self._lexicon is not None and child is None:
            known = word in self._lexicon.following
            if not known:  # spelling no word the lexicon holds: pay for it now, once
                score -= self.oov_penalty
        return _Context(score, word, context.previous, child, known)

    def tolled(self, context: _Context) -> frozenset[int]:
        """The symbols whose character makes ``context`` pay ``oov_penalty`` in ``advance``.

        Known before the child context is built, so the search can rank an extension by a
        bound that already includes the penalty and skip building the ones it rules out."""
        lexicon = self._lexicon
        if lexicon is None or not context.known:
            return frozenset()
        key = (context.word, context.term)
        tolled = self._tolls.get(key)
        if tolled is None:
            tolled = self._letters
            if context.word and self._unknown_word(context) > 0.0:  # ending here: no word
                tolled = tolled | {self._space}
            tolled = tolled.difference(map(self._ids.get, lexicon.following.get(context.word, "")))
            if context.term is not None:  # spelling on along a boosted term is free
                tolled = tolled.difference(self._ids[c] for c in context.term.children if c != " ")
            self._tolls[key] = tolled
        return tolled

    def _unknown_word(self, context: _Context) -> float:
        """The penalty a finished word still owes: a lexicon prefix that is no word itself (a
        boosted term, or a word of a multi-word one, is a word)."""
        if self._lexicon is None or not context.known or context.word in self._lexicon.words:
            return 0.0
        term = context.term
        if term is not None and (term.weight is not None or " " in term.children):
            return 0.0
        return self.oov_penalty

    def finish(self, context: _Context) -> float:
        """Bonus still owed (or taken back) when the utterance ends after ``context``."""
        score = _settle(context.term)
        if context.word:
            score += self.word_score(context.word, context.previous)
            score -= self._unknown_word(context)
        return score


@dataclass(eq=False, slots=True)
class _Beam:
    emission: _Emission | None  # last emitted character; None for the empty prefix
    context: _Context
    blank: float = NEG_INF  # log P(prefix, path so far ends in a blank)
    label: float = NEG_INF  # log P(prefix, path so far ends in its last character)
    source: float = NEG_INF  # log mass of the contribution whose emission timings are kept

    def total(self) -> float:
        return _logaddexp(self.blank, self.label)


def _offer(
    beams: dict[str, _Beam], text: str, emission: _Emission | None, context: _Context, mass: float
) -> _Beam:
    """The beam for ``text``; timings follow whichever path into it carries the most mass."""
    beam = beams.get(text)
    if beam is None:
        beam = beams[text] = _Beam(emission, context, source=mass)
    elif mass > beam.source:
        beam.emission, beam.source = emission, mass
    return beam


def _candidates(
    scores: npt.NDArray[np.float64], prune_log_prob: float, blank_id: int
) -> list[list[int]]:
    """Non-blank symbols worth extending by, per frame, most likely first: those above the
    threshold and the top few whatever their score."""
    order = np.argsort(-scores, axis=1, kind="stable")  # (T, V)
    ranked = np.take_along_axis(scores, order, axis=1)  # (T, V), descending
    keep = (ranked > prune_log_prob) | (np.arange(scores.shape[1]) < _ALWAYS_TOP)
    keep &= order != blank_id
    return [o[k].tolist() for o, k in zip(order, keep, strict=True)]


def _new_emission(
    parent: _Emission | None, symbol: int, t: int, posterior: list[float]
) -> _Emission:
    return _Emission(parent, symbol, t, t, posterior[symbol], 1)


def _stay(
    beams: dict[str, _Beam], t: int, row: list[float], posterior: list[float], blank_id: int
) -> dict[str, _Beam]:
    """Each prefix after frame ``t`` without a new character: a blank, or its last character
    held one more frame."""
    following: dict[str, _Beam] = {}
    for text, beam in beams.items():
        last = beam.emission
        stay_blank, stay_label, emission = beam.total() + row[blank_id], NEG_INF, last
        if last is not None:
            stay_label = beam.label + row[last.symbol]
            if stay_label > stay_blank:  # this frame emits the character too
                emission = last._replace(
                    last=t,
                    posterior=last.posterior + posterior[last.symbol],
                    frames=last.frames + 1,
                )
        kept = _offer(following, text, emission, beam.context, _logaddexp(stay_blank, stay_label))
        kept.blank = _logaddexp(kept.blank, stay_blank)
        kept.label = _logaddexp(kept.label, stay_label)
    return following


def _grow(
    beams: dict[str, _Beam],
    following: dict[str, _Beam],
    t: int,
    row: list[float],
    posterior: list[float],
    candidates: list[int],
    scorer: _Scorer,
    beam_width: int,
) -> None:
    """Add to ``following`` each prefix grown by one character at frame ``t`` that can still
    be among the best ``beam_width``."""
    # A new prefix scoring below the beam_width-th staying prefix can never enter the beam:
    # merges only add mass and new prefixes only raise the bar. Candidates come best first.
    staying = sorted((b.total() + b.context.score for b in following.values()), reverse=True)
    bar = staying[beam_width - 1] if len(staying) >= beam_width else NEG_INF
    children: dict[str, dict[int, str]] = {}  # prefix -> {symbol: its extension in the beam}
    for text, beam in following.items():
        if beam.emission is not None:
            children.setdefault(text[:-1], {})[beam.emission.symbol] = text

    fresh: list[tuple[float, float, str, _Beam, int]] = []  # (optimistic, mass, text, parent, id)
    for text, beam in beams.items():
        total, last, bonus = beam.total(), beam.emission, beam.context.score
        repeat = last.symbol if last is not None else -1  # "ll" needs a blank between the two
        known = children.get(text, {})
        tolled = scorer.tolled(beam.context)
        for symbol, grown in known.items():  # into a prefix that already is a beam
            mass = (beam.blank if symbol == repeat else total) + row[symbol]
            step = _new_emission(last, symbol, t, posterior)
            merged = _offer(following, grown, step, following[grown].context, mass)
            merged.label = _logaddexp(merged.label, mass)
        for symbol in candidates:
            ceiling = bonus + scorer.max_gain
            if total + row[symbol] + ceiling <= bar:
                break
            if symbol in tolled:  # a spelling no known word has: the penalty is certain
                ceiling -= scorer.oov_penalty
                if total + row[symbol] + ceiling <= bar:
                    continue
            mass = (beam.blank if symbol == repeat else total) + row[symbol]
            if symbol not in known and mass > NEG_INF:
                fresh.append((mass + ceiling, mass, text + scorer.symbols[symbol], beam, symbol))

    # build new prefixes best first while they can still enter the beam
    fresh.sort(key=lambda item: item[0], reverse=True)
    floor = [b.total() + b.context.score for b in following.values()]  # a min-heap
    heapq.heapify(floor)
    for optimistic, mass, grown, beam, symbol in fresh:
        if len(floor) >= beam_width and optimistic <= floor[0]:
            break
        context = scorer.advance(beam.context, scorer.symbols[symbol])
        score = mass + context.score
        if len(floor) < beam_width:
            heapq.heappush(floor, score)
        elif score > floor[0]:
            heapq.heapreplace(floor, score)
        else:
            continue
        emission = _new_emission(beam.emission, symbol, t, posterior)
        following[grown] = _Beam(emission, context, label=mass, source=mass)


def beam_search(
    log_probs: torch.Tensor,
    tokenizer: CharTokenizer,
    *,
    frame_seconds: float,
    beam_width: int = 16,
    boost: Mapping[str, float] | None = None,
    lm: WordLM | None = None,
    lm_weight: float = 0.5,
    word_bonus: float = 1.0,
    prune_log_prob: float = -10.0,
    time_offset: float = 0.0,
    lexicon: Lexicon | None = None,
    oov_penalty: float = 0.0,
) -> Hypothesis:
    """CTC prefix beam search (Hannun et al. 2014) in the log domain.

    Each prefix keeps the log mass of paths ending in a blank and in its last character, so
    paths that collapse to the same text add up (unlike ``greedy``). Beams are ranked by that
    acoustic mass plus a context bonus:

    - ``boost`` (Deepgram's ``keywords=term:weight``): while the word being spelled is a prefix
      of a term it earns weight / len(term) per character; a word that ends as anything but the
      whole term gives it back, so only complete terms are rewarded. Weights are natural-log
      units; negative weights suppress. A multi-word term matches across its spaces (a word
      that is also a term on its own then only counts as part of the longer one).
    - ``lm``: at each word end (a space, and the end of the utterance)
      ``lm_weight * lm.log_prob(word, previous) + word_bonus``.
    - ``lexicon`` with ``oov_penalty`` > 0: a word being spelled that stops being a prefix of
      every lexicon word (and of every boosted term) pays ``oov_penalty`` at that character,
      and a lexicon prefix that ends as no word pays it at its end; once per word either way.
      Non-words then leave the beam early instead of crowding out the real words they sound
      like (pyctcdecode's ``unk_score_offset``; measured in docs/benchmarks.md).

    Speed: per frame only symbols above ``prune_log_prob`` (and the top few) extend a prefix,
    and new prefixes are built best first, stopping once even the largest possible context
    bonus could not lift one into the beam (an exact cut: the result is unchanged); a symbol
    certain to pay ``oov_penalty`` is ranked with the penalty counted. Figures in
    docs/benchmarks.md (``bench.asr``): about 35 ms for 10 s of model-like output with an LM and
    a boosted term at beam 16 (+14% with the penalty), about 2.2 ms per second of audio on the
    base model's real output.
    """
    scores = _check(log_probs, tokenizer, frame_seconds)  # (T, V)
    if beam_width < 1:
        raise DecodeError(f"beam_width must be at least 1, got {beam_width}")
    if lm is not None and not (math.isfinite(word_bonus) and 0.0 <= lm_weight < math.inf):
        raise DecodeError("lm_weight must be finite and non-negative, word_bonus finite")
    if not (math.isfinite(oov_penalty) and oov_penalty >= 0.0):
        raise DecodeError(f"oov_penalty must be finite and non-negative, got {oov_penalty}")
    scorer = _Scorer(
        tokenizer,
        _term_trie(boost or {}, tokenizer),
        lm,
        lm_weight,
        word_bonus,
        lexicon=lexicon,
        oov_penalty=oov_penalty,
    )
    candidates = _candidates(scores, prune_log_prob, tokenizer.blank_id)
    rows, posteriors = scores.tolist(), np.exp(scores).tolist()  # Python floats: fast to index

    beams = {"": _Beam(None, scorer.start, blank=0.0)}
    for t, (row, posterior) in enumerate(zip(rows, posteriors, strict=True)):
        following = _stay(beams, t, row, posterior, tokenizer.blank_id)
        _grow(beams, following, t, row, posterior, candidates[t], scorer, beam_width)
        ranked = heapq.nlargest(
            beam_width, following.items(), key=lambda kv: kv[1].total() + kv[1].context.score
        )
        beams = dict(ranked)

    # the last word's LM score and boost settlement decide between the final beams
    best = max(beams.values(), key=lambda b: b.total() + b.context.score + scorer.finish(b.context))
    emissions: list[_Emission] = []
    node = best.emission
    while node is not None:
        emissions.append(node)
        node = node.parent
    return _hypothesis(emissions[::-1], tokenizer, frame_seconds, time_offset)


LexiconIndex = dict[int, dict[str, list[str]]]  # length -> first letter -> words


@functools.lru_cache(maxsize=4)
def _lexicon_index(lexicon: frozenset[str]) -> LexiconIndex:
    index: LexiconIndex = {}
    for word in sorted(lexicon):  # sorted: ties resolve the same way every run
        if word:
            index.setdefault(len(word), {}).setdefault(word[0], []).append(word)
    return index


def _nearest(word: str, index: LexiconIndex, limit: int, *, same_initial: bool) -> list[str]:
    """Lexicon words at the smallest distance <= ``limit`` from ``word``, among those sharing its
    first letter (or among the others), closest length first."""
    found: list[tuple[int, int, str]] = []
    for length in range(len(word) - limit, len(word) + limit + 1):
        for initial, words in index.get(length, {}).items():
            if (initial == word[0]) != same_initial:
                continue
            for choice, distance, _ in process.extract(
                word, words, scorer=Levenshtein.distance, score_cutoff=limit, limit=None
            ):
                found.append((int(distance), abs(length - len(word)), choice))
    if not found:
        return []
    best = min(found)[0]
    return [choice for distance, _, choice in sorted(found) if distance == best]


def snap_to_lexicon(
    text: str, lexicon: Collection[str], *, max_distance_ratio: float = 0.34
) -> str:
    """Replace each word outside ``lexicon`` by its nearest lexicon word (Levenshtein).

    A word is replaced only when distance / len(word) <= ``max_distance_ratio``; otherwise it is
    kept (a name, a new term). Ties go to the same first letter, then the closer length, then
    alphabetical order. A cheap stand-in for a word LM: a measurement found it took a small CTC
    model from WER 0.32 to 0.21.

    Speed: candidates are lexicon words of a length within reach, compared with RapidFuzz's
    Levenshtein under a distance cut-off; words sharing the first letter are searched first, and
    the rest only for a strictly closer match. Measured on a shared 2-core CPU with 50k words of
    /usr/share/dict/american-english and 15-word utterances with 5 misspelt words: ~2 ms per
    utterance. The first call with a lexicon indexes it (~30 ms at 50k words) and the index is
    kept for the last four lexicons; pass a ``frozenset`` so later calls skip copying it (~3 ms).
    """
    if not 0.0 <= max_distance_ratio < 1.0:
        raise ValueError(f"max_distance_ratio must be in [0, 1), got {max_distance_ratio}")
    known = lexicon if isinstance(lexicon, frozenset) else frozenset(lexicon)
    index = _lexicon_index(known)
    snapped: list[str] = []
    for word in text.split():
        limit = int(max_distance_ratio * len(word) + 1e-9)  # the float product may fall short
        if word in known or limit == 0:
            snapped.append(word)
            continue
        nearest = _nearest(word, index, limit, same_initial=True)
        closest = Levenshtein.distance(word, nearest[0]) if nearest else limit + 1
        if closest > 1:  # another initial wins only by being strictly closer
            nearest = _nearest(word, index, closest - 1, same_initial=False) or nearest
        snapped.append(nearest[0] if nearest else word)
    return " ".join(snapped)
