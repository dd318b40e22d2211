"""Shape a decoded hypothesis into Deepgram's response pieces: words, punctuation, utterances.

Our models are non-formatted (lower-case words, no punctuation). ``punctuate``/``smart_format``
apply the light formatting that needs no model: a capital at the start, "I" and its
contractions, and a full stop at the end. ``replace`` swaps whole words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asr.decode import Word


@dataclass(frozen=True)
class FormattedWord:
    word: str
    start: float
    end: float
    confidence: float
    punctuated_word: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "word": self.word,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "confidence": round(self.confidence, 4),
            "punctuated_word": self.punctuated_word,
        }


def format_words(
    words: Sequence[Word],
    *,
    punctuate: bool,
    replace: Sequence[tuple[str, str]] = (),
    duration: float | None = None,
) -> list[FormattedWord]:
    """``words`` as the response shows them; timings are clamped to ``duration`` (seconds):
    a word's end is the end of its last model frame, which can reach past the audio's end."""
    replacements = dict(replace)
    out: list[FormattedWord] = []
    for word in words:
        text = replacements.get(word.word, word.word)
        if not text:
            continue  # "replace=um:" deletes a word
        end = word.end if duration is None else min(word.end, duration)
        start = min(word.start, end)
        out.append(FormattedWord(text, start, end, word.confidence, text))
    if punctuate and out:
        out = [
            _with_punctuated(w, _capitalised(w.word, first=i == 0, last=i == len(out) - 1))
            for i, w in enumerate(out)
        ]
    return out


def _capitalised(word: str, *, first: bool, last: bool) -> str:
    if word == "i" or word.startswith("i'"):
        word = "I" + word[1:]
    if first:
        word = word[:1].upper() + word[1:]
    return word + "." if last else word


def _with_punctuated(word: FormattedWord, punctuated: str) -> FormattedWord:
    return FormattedWord(word.word, word.start, word.end, word.confidence, punctuated)


def transcript_of(words: Sequence[FormattedWord], *, punctuate: bool) -> str:
    return " ".join(w.punctuated_word if punctuate else w.word for w in words)


def split_utterances(
    words: Sequence[FormattedWord], *, gap: float, punctuate: bool, model_uuid: str
) -> list[dict[str, Any]]:
    """Deepgram's ``results.utterances``: runs of words separated by pauses of ``gap`` seconds."""
    groups: list[list[FormattedWord]] = []
    for word in words:
        if groups and word.start - groups[-1][-1].end < gap:
            groups[-1].append(word)
        else:
            groups.append([word])
    return [
        {
            "start": round(group[0].start, 3),
            "end": round(group[-1].end, 3),
            "confidence": round(sum(w.confidence for w in group) / len(group), 4),
            "channel": 0,
            "transcript": transcript_of(group, punctuate=punctuate),
            "words": [w.to_dict() for w in group],
            "id": f"{model_uuid}-{index}",
        }
        for index, group in enumerate(groups)
    ]
