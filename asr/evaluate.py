"""Word and character error rates, overall and per group: the numbers DataOps and resellers read.

    report = evaluate(references, hypotheses, attributes={"accent": accents}, terms={"stent"})
    report.wer, report.to_markdown()

Both sides are normalised with ``CharTokenizer.english().normalize`` before alignment (jiwer 4).
Rates are corpus-level: total errors (substitutions + deletions + insertions) over total
reference words (or characters, spaces included), never a mean of per-utterance rates. A group
whose references are all empty has no words to divide by; its rate is its insertion count, as
jiwer reports it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass

import jiwer

from asr.tokenizer import CharTokenizer

UNKNOWN = "unknown"  # the group of utterances whose attribute value is None


@dataclass
class GroupScore:
    attribute: str  # e.g. "accent"
    value: str  # e.g. "en-gb"; "unknown" when not recorded
    utterances: int
    words: int  # reference words in the group
    wer: float
    cer: float


@dataclass
class EvalReport:
    utterances: int
    words: int  # reference words
    wer: float
    cer: float
    groups: list[GroupScore]
    substitutions: list[tuple[str, str, int]]  # (reference word, hypothesis word, count)
    term_recall: float | None  # None without terms, or when no term occurs in the references

    def to_dict(self) -> dict[str, object]:
        return {
            "utterances": self.utterances,
            "words": self.words,
            "wer": self.wer,
            "cer": self.cer,
            "groups": [asdict(g) for g in self.groups],
            "substitutions": [
                {"reference": r, "hypothesis": h, "count": c} for r, h, c in self.substitutions
            ],
            "term_recall": self.term_recall,
        }

    def to_markdown(self) -> str:
        lines = [
            f"**WER {_percent(self.wer)}**, CER {_percent(self.cer)} "
            f"over {self.utterances} utterances ({self.words} words)",
        ]
        if self.term_recall is not None:
            lines.append(f"Term recall: {_percent(self.term_recall)}")
        # one table per attribute, in the order the attributes were given
        for attribute in dict.fromkeys(g.attribute for g in self.groups):
            header = f"| {_cell(attribute)} | utterances | words | WER | CER |"
            lines += ["", f"### {attribute}", "", header, "| --- | ---: | ---: | ---: | ---: |"]
            for g in (g for g in self.groups if g.attribute == attribute):
                lines.append(
                    f"| {_cell(g.value)} | {g.utterances} | {g.words} | {_percent(g.wer)} "
                    f"| {_percent(g.cer)} |"
                )
        if self.substitutions:
            lines += ["", "### Top substitutions", "", "| reference | hypothesis | count |"]
            lines.append("| --- | --- | ---: |")
            lines += [f"| {r} | {h} | {c} |" for r, h, c in self.substitutions]
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a pipe would split the Markdown table cell


def _percent(rate: float) -> str:
    return f"{100 * rate:.1f}%"


@dataclass
class _Counts:
    """Alignment counts of one utterance."""

    reference: int  # reference words (or characters)
    errors: int  # substitutions + deletions + insertions

    @staticmethod
    def rate(counts: Sequence[_Counts]) -> float:
        errors = sum(c.errors for c in counts)
        return errors / max(sum(c.reference for c in counts), 1) if errors else 0.0


def _counts(output: jiwer.WordOutput | jiwer.CharacterOutput) -> list[_Counts]:
    counts = []
    for reference, chunks in zip(output.references, output.alignments, strict=True):
        errors = sum(
            max(c.ref_end_idx - c.ref_start_idx, c.hyp_end_idx - c.hyp_start_idx)
            for c in chunks
            if c.type != "equal"
        )
        counts.append(_Counts(len(reference), errors))
    return counts


def _substitutions(output: jiwer.WordOutput, top: int) -> list[tuple[str, str, int]]:
    pairs: Counter[tuple[str, str]] = Counter()
    for reference, hypothesis, chunks in zip(
        output.references, output.hypotheses, output.alignments, strict=True
    ):
        for c in chunks:
            if c.type == "substitute":  # equal spans on both sides: pair the words in order
                ref_words = reference[c.ref_start_idx : c.ref_end_idx]
                hyp_words = hypothesis[c.hyp_start_idx : c.hyp_end_idx]
                pairs.update(zip(ref_words, hyp_words, strict=True))
    ranked = sorted(pairs.items(), key=lambda item: (-item[1], item[0]))
    return [(r, h, n) for (r, h), n in ranked[:top]]


def _term_recall(output: jiwer.WordOutput, terms: Collection[str]) -> float | None:
    """Share of reference occurrences of each term whose every word is a hit in the alignment."""
    normalize = CharTokenizer.english().normalize
    phrases = set()
    for term in terms:
        words = tuple(normalize(term).split())
        if not words:
            raise ValueError(f"term {term!r} is empty once normalised")
        phrases.add(words)
    occurrences = hits = 0
    for reference, chunks in zip(output.references, output.alignments, strict=True):
        matched = {
            i for c in chunks if c.type == "equal" for i in range(c.ref_start_idx, c.ref_end_idx)
        }
        for words in phrases:
            for start in range(len(reference) - len(words) + 1):
                if tuple(reference[start : start + len(words)]) == words:
                    occurrences += 1
                    hits += all(i in matched for i in range(start, start + len(words)))
    return hits / occurrences if occurrences else None


def evaluate(
    references: Sequence[str],
    hypotheses: Sequence[str],
    *,
    attributes: Mapping[str, Sequence[str | None]] | None = None,
    terms: Collection[str] | None = None,
    top_substitutions: int = 20,
) -> EvalReport:
    """Score ``hypotheses`` against ``references`` (same order), overall and per attribute value.

    ``attributes`` maps a name (accent, sex, age_group, noise_type, environment, snr_band …) to
    one value per utterance; ``terms`` are domain words or phrases whose recall is reported.
    """
    if isinstance(references, str) or isinstance(hypotheses, str):
        raise ValueError("references and hypotheses must be sequences of strings, not a string")
    if len(references) != len(hypotheses):
        raise ValueError(
            f"{len(references)} references but {len(hypotheses)} hypotheses: one each per utterance"
        )
    for name, values in (attributes or {}).items():
        if len(values) != len(references):
            raise ValueError(
                f"attribute {name!r} has {len(values)} values for {len(references)} utterances"
            )
    if top_substitutions < 0:
        raise ValueError(f"top_substitutions must be >= 0, got {top_substitutions}")
    normalize = CharTokenizer.english().normalize
    refs = [normalize(r) for r in references]
    hyps = [normalize(h) for h in hypotheses]
    if not any(refs):
        raise ValueError("every reference is empty once normalised: nothing to score against")

    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    word_counts, char_counts = _counts(words), _counts(chars)

    groups = []
    for name, values in (attributes or {}).items():
        labels = [UNKNOWN if v is None else str(v) for v in values]
        for value in sorted(set(labels), key=lambda v: (v == UNKNOWN, v)):
            members = [i for i, label in enumerate(labels) if label == value]
            group_words = [word_counts[i] for i in members]
            groups.append(
                GroupScore(
                    attribute=name,
                    value=value,
                    utterances=len(members),
                    words=sum(c.reference for c in group_words),
                    wer=_Counts.rate(group_words),
                    cer=_Counts.rate([char_counts[i] for i in members]),
                )
            )
    return EvalReport(
        utterances=len(refs),
        words=sum(c.reference for c in word_counts),
        wer=_Counts.rate(word_counts),
        cer=_Counts.rate(char_counts),
        groups=groups,
        substitutions=_substitutions(words, top_substitutions),
        term_recall=None if terms is None else _term_recall(words, terms),
    )


def snr_band(snr_db: float | None) -> str:
    """Group label of a measured SNR: "clean" (none measured), "0-10" (below 10 dB, negative
    included), "10-20", "20+" dB."""
    if snr_db is None:
        return "clean"
    if math.isnan(snr_db):
        raise ValueError("snr_db is NaN")
    if snr_db < 10.0:
        return "0-10"
    if snr_db < 20.0:
        return "10-20"
    return "20+"
