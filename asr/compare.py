"""A reseller's custom model against the standard model on the same held-out audio.

    split = split_held_out(clips, speakers=speakers, fraction=0.2, seed=7)
    result = compare(references, custom_hypotheses, standard_hypotheses, speakers=test_speakers)

``result.custom.wer`` and ``result.standard.wer`` carry bootstrap confidence intervals,
``result.relative_wer_reduction`` is ``(standard - custom) / standard`` with a paired interval,
and ``render_html(result, title=...)`` is the self-contained page a reseller reads.

Scoring follows :mod:`asr.evaluate`: both sides are normalised with
``CharTokenizer.english().normalize`` and aligned with jiwer 4, and a rate is corpus-level, total
errors over total reference words (or characters, spaces included; a set whose references are
all empty divides by 1). The bootstrap resamples utterances with replacement, recomputes that
corpus-level rate from the per-utterance counts (jiwer runs once per model, never per resample),
and reports the percentile interval. Custom and standard are resampled together (paired), so
the difference between them is not blurred by which utterances a resample happened to draw.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import jiwer
import numpy as np
import numpy.typing as npt

from asr.evaluate import UNKNOWN
from asr.tokenizer import CharTokenizer

T = TypeVar("T")
Counts = npt.NDArray[np.int64]
DIGITS = 4  # rates in to_dict: 0.01 percentage point is finer than any interval we report
_BLOCK = 1_000_000  # resampled utterance draws held in memory at once


@dataclass(frozen=True)
class HeldOutSplit:
    """Item indices (ascending) of the training and held-out test sides."""

    train: list[int]
    test: list[int]
    # True when every item has a speaker and no speaker is on both sides; False when speakers
    # were not given, some are None (split item by item), or one speaker says everything.
    speaker_disjoint: bool


def split_held_out(
    items: Sequence[T],
    *,
    speakers: Sequence[str | None] | None = None,
    fraction: float,
    seed: int,
) -> HeldOutSplit:
    """Hold out about ``fraction`` of ``items`` for testing, whole speakers at a time.

    Speakers are shuffled with ``seed`` and taken while each brings the test side closer to
    ``fraction`` of the items; items whose speaker is None are taken one by one the same way.
    Both sides get at least one item. A single speaker for every item cannot be split
    speaker-disjointly, so its items are split one by one (``speaker_disjoint`` is False).
    """
    n = len(items)
    if n < 2:
        raise ValueError(f"need at least 2 items to hold some out, got {n}")
    if not 0.0 < fraction < 1.0:  # NaN fails this too
        raise ValueError(f"fraction must be between 0 and 1 (exclusive), got {fraction}")
    if isinstance(speakers, str):
        raise ValueError("speakers must be a sequence with one speaker per item, not a string")
    if speakers is not None and len(speakers) != n:
        raise ValueError(f"{len(speakers)} speakers for {n} items: one per item")
    labels: list[str | None] = list(speakers) if speakers is not None else [None] * n
    units = _units(labels)
    disjoint = speakers is not None and None not in labels
    if len(units) < 2:
        units, disjoint = [[i] for i in range(n)], False
    order = [int(u) for u in np.random.default_rng(seed).permutation(len(units))]
    taken = _take(units, order, target=fraction * n, total=n)
    test = sorted(i for u in taken for i in units[u])
    chosen = set(test)
    return HeldOutSplit([i for i in range(n) if i not in chosen], test, disjoint)


def _units(labels: list[str | None]) -> list[list[int]]:
    """Groups that move to one side together: each named speaker, each unattributed item."""
    by_speaker: dict[str, list[int]] = {}
    loose = []
    for index, label in enumerate(labels):
        if label is None:
            loose.append([index])
        else:
            by_speaker.setdefault(label, []).append(index)
    # sorted, so the seed alone (not the order speakers first appear) decides the shuffle
    return [by_speaker[name] for name in sorted(by_speaker)] + loose


def _take(units: list[list[int]], order: list[int], *, target: float, total: int) -> list[int]:
    taken: list[int] = []
    size = 0
    for u in order:
        grown = size + len(units[u])
        # skip a speaker that would overshoot more than it helps, or leave nothing to train on
        if grown < total and abs(grown - target) < abs(size - target):
            taken.append(u)
            size = grown
    if not taken:  # every unit overshoots: the smallest still leaves train non-empty (>= 2 units)
        taken.append(min(order, key=lambda u: len(units[u])))
    return taken


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap percentile interval ``[low, high]``."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, DIGITS) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ModelScore:
    """One model's rates on the held-out set and its most common word errors."""

    wer: Estimate
    cer: Estimate
    substitutions: list[tuple[str, str, int]]  # (reference word, hypothesis word, count)
    deletions: list[tuple[str, int]]  # (reference word, count)
    insertions: list[tuple[str, int]]  # (hypothesis word, count)

    def to_dict(self) -> dict[str, object]:
        return {
            "wer": self.wer.to_dict(),
            "cer": self.cer.to_dict(),
            "substitutions": [
                {"reference": r, "hypothesis": h, "count": c} for r, h, c in self.substitutions
            ],
            "deletions": [{"reference": w, "count": c} for w, c in self.deletions],
            "insertions": [{"hypothesis": w, "count": c} for w, c in self.insertions],
        }


@dataclass(frozen=True)
class SpeakerScore:
    speaker: str  # "unknown" for utterances whose speaker is None
    utterances: int
    words: int  # reference words
    custom_wer: float
    standard_wer: float

    def to_dict(self) -> dict[str, object]:
        rates = {"custom_wer": self.custom_wer, "standard_wer": self.standard_wer}
        return asdict(self) | {k: round(v, DIGITS) for k, v in rates.items()}


@dataclass(frozen=True)
class Comparison:
    utterances: int
    words: int  # reference words
    characters: int  # reference characters, spaces included
    resamples: int
    confidence: float  # of every interval, e.g. 0.95
    custom: ModelScore
    standard: ModelScore
    # (standard WER - custom WER) / standard WER: positive when the custom model is better;
    # None when the standard model makes no word error (nothing to reduce) or, on a tiny set,
    # errs in no resample. Its interval uses the ``reduction_resamples`` resamples in which
    # the standard model made an error (elsewhere the ratio is undefined).
    relative_wer_reduction: Estimate | None
    reduction_resamples: int
    custom_better_share: float  # share of resamples in which custom has the lower WER
    speakers: list[SpeakerScore]  # empty when no speakers were given

    def to_dict(self) -> dict[str, object]:
        reduction = self.relative_wer_reduction
        return {
            "utterances": self.utterances,
            "words": self.words,
            "characters": self.characters,
            "resamples": self.resamples,
            "confidence": self.confidence,
            "custom": self.custom.to_dict(),
            "standard": self.standard.to_dict(),
            "relative_wer_reduction": None if reduction is None else reduction.to_dict(),
            "reduction_resamples": self.reduction_resamples,
            "custom_better_share": round(self.custom_better_share, DIGITS),
            "speakers": [s.to_dict() for s in self.speakers],
        }


@dataclass(frozen=True)
class _Aligned:
    """One model's alignments and per-utterance error counts."""

    words: Any  # jiwer.WordOutput (jiwer ships no type hints)
    word_errors: Counts
    char_errors: Counts

    @staticmethod
    def of(references: list[str], hypotheses: Sequence[str]) -> _Aligned:
        normalize = CharTokenizer.english().normalize
        hyps = [normalize(h) for h in hypotheses]
        words = jiwer.process_words(references, hyps)
        chars = jiwer.process_characters(references, hyps)
        return _Aligned(words, _errors(words.alignments), _errors(chars.alignments))


def _errors(alignments: list[list[Any]]) -> Counts:
    # substitutions + deletions + insertions: a non-equal chunk costs its longer side
    return np.array(
        [
            sum(
                max(c.ref_end_idx - c.ref_start_idx, c.hyp_end_idx - c.hyp_start_idx)
                for c in chunks
                if c.type != "equal"
            )
            for chunks in alignments
        ],
        dtype=np.int64,
    )


def _rate(errors: Any, reference: Any) -> Any:
    """Corpus-level rate of totals (scalars or arrays), as ``asr.evaluate`` defines it."""
    return errors / np.maximum(reference, 1)


def compare(
    references: Sequence[str],
    custom: Sequence[str],
    standard: Sequence[str],
    *,
    speakers: Sequence[str | None] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    top_errors: int = 20,
) -> Comparison:
    """Score the ``custom`` and ``standard`` transcripts of the same utterances (same order).

    ``speakers`` (one per utterance, None when unknown) adds WER per speaker; ``resamples``
    bootstrap draws with ``seed`` give every interval at level ``confidence``; ``top_errors``
    bounds each error table.
    """
    _check(references, custom, standard, speakers, resamples, confidence, top_errors)
    normalize = CharTokenizer.english().normalize
    refs = [normalize(r) for r in references]
    if not any(refs):
        raise ValueError("every reference is empty once normalised: nothing to score against")
    ours, theirs = _Aligned.of(refs, custom), _Aligned.of(refs, standard)
    word_ref = np.array([len(words) for words in ours.words.references], dtype=np.int64)
    char_ref = np.array([len(r) for r in refs], dtype=np.int64)
    columns = (word_ref, char_ref, ours.word_errors, theirs.word_errors)
    totals = _bootstrap((*columns, ours.char_errors, theirs.char_errors), resamples, seed)
    words, chars, ours_w, theirs_w, ours_c, theirs_c = totals.T

    def score(aligned: _Aligned, wer_totals: Counts, cer_totals: Counts) -> ModelScore:
        substitutions, deletions, insertions = _top_errors(aligned.words, top_errors)
        wer = _rate(int(aligned.word_errors.sum()), int(word_ref.sum()))
        cer = _rate(int(aligned.char_errors.sum()), int(char_ref.sum()))
        return ModelScore(
            wer=_estimate(float(wer), _rate(wer_totals, words), confidence),
            cer=_estimate(float(cer), _rate(cer_totals, chars), confidence),
            substitutions=substitutions,
            deletions=deletions,
            insertions=insertions,
        )

    return Comparison(
        utterances=len(refs),
        words=int(word_ref.sum()),
        characters=int(char_ref.sum()),
        resamples=resamples,
        confidence=confidence,
        custom=score(ours, ours_w, ours_c),
        standard=score(theirs, theirs_w, theirs_c),
        relative_wer_reduction=_reduction(ours, theirs, ours_w, theirs_w, confidence),
        reduction_resamples=int(np.count_nonzero(theirs_w)),
        custom_better_share=float(np.mean(ours_w < theirs_w)),
        speakers=_speakers(speakers, word_ref, ours, theirs),
    )


def _reduction(
    ours: _Aligned, theirs: _Aligned, ours_w: Counts, theirs_w: Counts, confidence: float
) -> Estimate | None:
    """(standard - custom) / standard WER, over the resamples where the standard model errs."""
    # WERs share their denominator, so the relative reduction is a ratio of error totals
    theirs_total, ours_total = int(theirs.word_errors.sum()), int(ours.word_errors.sum())
    defined = theirs_w > 0
    if not theirs_total or not defined.any():
        return None
    ratios = (theirs_w[defined] - ours_w[defined]) / theirs_w[defined]
    return _estimate((theirs_total - ours_total) / theirs_total, ratios, confidence)


def _check(
    references: Sequence[str],
    custom: Sequence[str],
    standard: Sequence[str],
    speakers: Sequence[str | None] | None,
    resamples: int,
    confidence: float,
    top_errors: int,
) -> None:
    named: dict[str, Sequence[str | None]] = {
        "references": references,
        "custom": custom,
        "standard": standard,
    }
    if speakers is not None:
        named["speakers"] = speakers
    for name, values in named.items():
        if isinstance(values, str):
            raise ValueError(f"{name} must be a sequence with one entry per utterance, not a str")
        if len(values) != len(references):
            raise ValueError(
                f"{len(values)} {name} for {len(references)} references: one per utterance"
            )
    if not references:
        raise ValueError("no utterances to compare")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    if top_errors < 0:
        raise ValueError(f"top_errors must be >= 0, got {top_errors}")


def _bootstrap(columns: Sequence[Counts], resamples: int, seed: int) -> Counts:
    """Column totals over ``resamples`` draws of the utterances with replacement: (resamples, k).

    Drawn in blocks so that a large test set never holds every resampled index at once; the
    blocks come from one generator, so the result depends on the seed only.
    """
    stacked = np.stack(columns, axis=1)
    n = stacked.shape[0]
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK // n)
    parts = []
    for start in range(0, resamples, block):
        drawn = rng.integers(0, n, size=(min(block, resamples - start), n))
        parts.append(np.stack([column[drawn].sum(axis=1) for column in stacked.T], axis=1))
    return np.concatenate(parts)


def _estimate(value: float, samples: npt.NDArray[Any], confidence: float) -> Estimate:
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Estimate(value=float(value), low=float(low), high=float(high))


def _ranked(counter: Counter[Any], top: int) -> list[tuple[Any, int]]:
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:top]


def _top_errors(
    output: Any, top: int
) -> tuple[list[tuple[str, str, int]], list[tuple[str, int]], list[tuple[str, int]]]:
    """The ``top`` most common substitutions, deletions and insertions, most frequent first."""
    substituted: Counter[tuple[str, str]] = Counter()
    deleted: Counter[str] = Counter()
    inserted: Counter[str] = Counter()
    for reference, hypothesis, chunks in zip(
        output.references, output.hypotheses, output.alignments, strict=True
    ):
        for c in chunks:
            ref_words = reference[c.ref_start_idx : c.ref_end_idx]
            hyp_words = hypothesis[c.hyp_start_idx : c.hyp_end_idx]
            if c.type == "substitute":  # equal spans on both sides: pair the words in order
                substituted.update(zip(ref_words, hyp_words, strict=True))
            elif c.type == "delete":
                deleted.update(ref_words)
            elif c.type == "insert":
                inserted.update(hyp_words)
    pairs = [(r, h, n) for (r, h), n in _ranked(substituted, top)]
    return pairs, _ranked(deleted, top), _ranked(inserted, top)


def _speakers(
    speakers: Sequence[str | None] | None, word_ref: Counts, ours: _Aligned, theirs: _Aligned
) -> list[SpeakerScore]:
    if speakers is None:
        return []
    labels = np.array([UNKNOWN if s is None else str(s) for s in speakers], dtype=object)
    scores = []
    for label in sorted(set(labels), key=lambda v: (v == UNKNOWN, v)):
        members = labels == label
        words = int(word_ref[members].sum())
        scores.append(
            SpeakerScore(
                speaker=label,
                utterances=int(members.sum()),
                words=words,
                custom_wer=float(_rate(int(ours.word_errors[members].sum()), words)),
                standard_wer=float(_rate(int(theirs.word_errors[members].sum()), words)),
            )
        )
    return scores


def render_html(comparison: Comparison, *, title: str) -> str:
    """The comparison as one self-contained HTML page (see :mod:`asr.compare_report`)."""
    from asr.compare_report import render_html as render  # matplotlib loads only for a page

    return render(comparison, title=title)
