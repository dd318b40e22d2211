"""Checks on (audio, transcript) pairs uploaded to train a custom model, one by one and as a set.

    scorer = TranscriptScorer.load(Path("models/ctcconformer-general.en....dg"))  # once
    reports = check_pairs([(wav_bytes, "please call stella"), (mp3_bytes, None)], scorer=scorer)
    summarise(reports).to_dict()  # {"files": 2, "accepted": {"files": 1, "hours": ...}, ...}

A pair is accepted when no check refuses it; a refused pair carries every reason, each a stable
code (:class:`ReasonCode`) and a message for the uploader:

======================  ==========================================================================
``undecodable``         not WAV, FLAC, OGG or MP3, empty, damaged or truncated (``asr.audio``)
``too_short``           under :data:`MIN_SECONDS`: hardly a word, and too short for an SNR
``too_long``            over :data:`MAX_SECONDS`: a fine-tuning batch holds 40 s of frames
                        (``FinetuneRecipe.batch_frames``), a longer clip would be a batch alone
``duplicate_audio``     the same decoded samples as a pair already accepted in the set
``no_transcript``       no transcript, or only white space
``not_normalisable``    characters that are spoken but outside the tokenizer's alphabet (digits,
                        symbols, other scripts: ``asr.finetune.unspeakable_characters``, the rule
                        fine-tuning applies), or nothing left after normalisation
``implausible_rate``    characters per second outside [:data:`MIN_CHARS_PER_SECOND`,
                        :data:`MAX_CHARS_PER_SECOND`]
``transcript_mismatch`` the base model's CTC loss per character above the scorer's limit
======================  ==========================================================================

The transcript is normalised as training does (``CharTokenizer.normalize``: lower case, the
letters, apostrophe and space; silent punctuation dropped) and the report carries that text.

Duplicates are found by the SHA-256 of the decoded 16 kHz samples, so a WAV and its lossless FLAC
re-encoding are one audio; a lossy re-encoding (MP3, OGG) decodes to other samples and is not.
:func:`check_pairs` compares each pair with the pairs it *accepted* before it, so a copy of a
pair refused for its transcript can still come in once with the right one.

Speaking rate is characters of the normalised transcript (spaces included) per second of the
whole clip. espeak-ng sentences read 10.4-19.7 per second (median 15.2; 60 clips of unseen
voices, silence trimmed); the bounds sit well outside: below 2 per second most of the clip has
no words in its transcript (one word on 10 s of speech; "no" in 1.5 s of silence is refused too:
trim such clips), above 25 there are more characters than the base model has output frames
(25 per second), so CTC cannot align them.

How well the transcript matches: the CTC loss of the transcript's token ids against the base
model's log-probabilities (``torch.nn.functional.ctc_loss``, summed), divided by the number of
characters. Measured with the bundled base model (ctcconformer-general, 048887cb) on held-out
sentences (``split_sentences(..., salt="general-base")``), each clip scored with its own
transcript, with the unrelated held-out sentence closest in length, and with one word of its own
replaced by "banana":

==================================================  ==============  ==============  ============
clips                                               own transcript  unrelated       one word off
==================================================  ==============  ==============  ============
40 clean, espeak-ng en-us, en-gb, en-us+f3,         0.006-1.32      8.1-15.0        —
en-gb-scotland, 1.3-4.3 s                           (median 0.13)   (median 10.7)
60 unseen voices in the training mix of noise and   0.006-1.31      5.0-13.6        0.87-5.5
rooms (``plan_corpus(voices="test")``), 1.3-5.3 s   (median 0.21)   (median 9.4)    (median 2.0)
==================================================  ==============  ==============  ============

:data:`MAX_LOSS_PER_CHAR` = 3.0 sits between the worst own transcript (1.31) and the best
unrelated one (5.0), with a margin of more than 1.6x either way. Of the 60 noisy clips, a
transcript of only the first half of the words (4.5-21.9) was refused every time, one wrong word
in 10 of 60. Real speech unlike the base model's training data scores higher with its own
transcript: a scorer for another model or domain takes its own ``max_loss_per_char``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from asr.audio import (
    TARGET_RATE,
    AudioError,
    AudioInfo,
    AudioTooLong,
    FloatArray,
    Seconds,
    decode,
    probe,
)
from asr.finetune import unspeakable_characters
from asr.inference import Transcriber
from asr.package import ASR_KIND, ModelPackage, read_package
from asr.snr import MIN_SECONDS as SNR_MIN_SECONDS
from asr.snr import estimate_snr_db
from asr.tokenizer import CharTokenizer

# The limits and why they are where they are: see the module docstring.
MIN_SECONDS: Seconds = SNR_MIN_SECONDS  # 0.5 s: shorter clips get no SNR either
MAX_SECONDS: Seconds = 30.0
MIN_CHARS_PER_SECOND = 2.0
MAX_CHARS_PER_SECOND = 25.0  # the base model's output frames per second
MAX_LOSS_PER_CHAR = 3.0
_SECONDS_PER_HOUR = 3600.0


class ReasonCode(StrEnum):
    """Why a pair is refused; the values are stable (stored, and shown to resellers)."""

    UNDECODABLE = "undecodable"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    DUPLICATE_AUDIO = "duplicate_audio"
    NO_TRANSCRIPT = "no_transcript"
    NOT_NORMALISABLE = "not_normalisable"
    IMPLAUSIBLE_RATE = "implausible_rate"
    TRANSCRIPT_MISMATCH = "transcript_mismatch"


_ORDER = {code: index for index, code in enumerate(ReasonCode)}


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    message: str  # for the uploader; names the offending characters, never quotes the audio


@dataclass(frozen=True)
class PairReport:
    """Every check on one pair; a measured value is None where it could not be measured."""

    reasons: tuple[Reason, ...]  # in ReasonCode order; empty when accepted
    transcript: str | None  # normalised; None when there is none, or nothing is left of it
    format: str | None  # "WAV" | "FLAC" | "OGG" | "MP3"
    duration: Seconds | None  # of the file (from its header when too long to decode)
    sample_rate: int | None  # the file's own, before resampling to 16 kHz
    channels: int | None
    snr_db: float | None  # asr.snr.estimate_snr_db
    chars_per_second: float | None
    ctc_loss_per_char: float | None  # None also when CTC cannot align the transcript at all
    audio_sha256: str | None  # of the decoded float32 samples at the model's rate (16 kHz)

    @property
    def accepted(self) -> bool:
        return not self.reasons

    @property
    def codes(self) -> tuple[ReasonCode, ...]:
        return tuple(reason.code for reason in self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "reasons": [{"code": r.code.value, "message": r.message} for r in self.reasons],
            "transcript": self.transcript,
            "format": self.format,
            "duration": self.duration,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "snr_db": self.snr_db,
            "chars_per_second": self.chars_per_second,
            "ctc_loss_per_char": self.ctc_loss_per_char,
            "audio_sha256": self.audio_sha256,
        }


class TranscriptScorer:
    """A base model package loaded once, to score many pairs on the CPU (one at a time).

    ``loss_per_char`` is what ``check_pair`` compares with ``max_loss_per_char``.
    """

    def __init__(
        self, package: ModelPackage, *, max_loss_per_char: float = MAX_LOSS_PER_CHAR
    ) -> None:
        if package.manifest.kind != ASR_KIND:
            raise ValueError(
                f"a transcript scorer needs an asr package, not {package.manifest.kind}"
            )
        if not (math.isfinite(max_loss_per_char) and max_loss_per_char > 0):
            raise ValueError(f"max_loss_per_char must be positive, got {max_loss_per_char}")
        self.max_loss_per_char = max_loss_per_char
        self.tokenizer = package.tokenizer
        self.sample_rate = package.feature_config.sample_rate
        self._transcriber = Transcriber(package)

    @classmethod
    def load(cls, path: Path, *, max_loss_per_char: float = MAX_LOSS_PER_CHAR) -> TranscriptScorer:
        return cls(read_package(path), max_loss_per_char=max_loss_per_char)

    @torch.inference_mode()
    def loss_per_char(self, samples: FloatArray, text: str) -> float:
        """CTC loss of ``text`` (normalised, non-empty) on ``samples`` (N,) at ``sample_rate``,
        per character; ``inf`` when the audio has too few output frames to hold the text."""
        ids = self.tokenizer.encode(text)
        if not ids:
            raise ValueError("text is empty after normalisation")
        log_probs = self._transcriber.log_probs(samples)  # (T', V)
        loss = F.ctc_loss(
            log_probs[:, None, :],  # (T', 1, V)
            torch.tensor([ids]),  # (1, L)
            torch.tensor([log_probs.shape[0]]),
            torch.tensor([len(ids)]),
            blank=self.tokenizer.blank_id,
            reduction="sum",
            zero_infinity=False,  # an impossible alignment must read as one, not as a perfect 0
        )
        return float(loss) / len(ids)


def check_pair(
    audio: bytes,
    transcript: str | None,
    *,
    scorer: TranscriptScorer | None = None,
    seen_hashes: Collection[str] = frozenset(),
) -> PairReport:
    """Every check on one pair. Without ``scorer`` the match is not scored (and the English
    tokenizer normalises); ``seen_hashes`` are the ``audio_sha256`` of the set's accepted pairs.
    """
    tokenizer = scorer.tokenizer if scorer else CharTokenizer.english()
    rate = scorer.sample_rate if scorer else TARGET_RATE
    reasons: list[Reason] = []
    text, normalisable = _check_transcript(transcript, tokenizer, reasons)
    info, samples, duration = _decode(audio, rate, reasons)

    snr_db: float | None = None
    digest: str | None = None
    if samples is not None:
        snr_db = estimate_snr_db(samples, rate)
        digest = hashlib.sha256(samples.tobytes()).hexdigest()
        if digest in seen_hashes:
            message = "the same audio as an earlier pair in this set"
            reasons.append(Reason(ReasonCode.DUPLICATE_AUDIO, message))
    chars_per_second: float | None = None
    loss: float | None = None
    if duration is not None and duration < MIN_SECONDS:
        message = f"audio is {duration:.2f} s; the minimum is {MIN_SECONDS:g} s"
        reasons.append(Reason(ReasonCode.TOO_SHORT, message))
    elif duration is not None and text is not None:
        chars_per_second = len(text) / duration
        _check_rate(chars_per_second, reasons)
        if scorer is not None and samples is not None and normalisable:
            loss = scorer.loss_per_char(samples, text)
            _check_loss(loss, scorer.max_loss_per_char, reasons)
    return PairReport(
        reasons=tuple(sorted(reasons, key=lambda r: _ORDER[r.code])),
        transcript=text,
        format=info.format if info else None,
        duration=duration,
        sample_rate=info.sample_rate if info else None,
        channels=info.channels if info else None,
        snr_db=snr_db,
        chars_per_second=chars_per_second,
        ctc_loss_per_char=loss if loss is not None and math.isfinite(loss) else None,
        audio_sha256=digest,
    )


def check_pairs(
    pairs: Iterable[tuple[bytes, str | None]], *, scorer: TranscriptScorer | None = None
) -> list[PairReport]:
    """:func:`check_pair` on each pair in order, each against the audio accepted before it."""
    accepted: set[str] = set()
    reports = []
    for audio, transcript in pairs:
        report = check_pair(audio, transcript, scorer=scorer, seen_hashes=accepted)
        if report.accepted and report.audio_sha256 is not None:
            accepted.add(report.audio_sha256)
        reports.append(report)
    return reports


def _check_transcript(
    transcript: str | None, tokenizer: CharTokenizer, reasons: list[Reason]
) -> tuple[str | None, bool]:
    """(the normalised text or None, whether it is fit to train on as written)."""
    if transcript is None or not transcript.strip():
        reasons.append(Reason(ReasonCode.NO_TRANSCRIPT, "the pair has no transcript"))
        return None, False
    text = tokenizer.normalize(transcript) or None
    unspoken = unspeakable_characters(transcript, tokenizer)
    if unspoken:
        shown = ", ".join(repr(c) for c in sorted(unspoken)[:8])
        reasons.append(
            Reason(
                ReasonCode.NOT_NORMALISABLE,
                f"the transcript has characters outside the alphabet: {shown} "
                "(spell numbers and symbols out as they are spoken)",
            )
        )
    elif text is None:
        reasons.append(
            Reason(ReasonCode.NOT_NORMALISABLE, "nothing is left of the transcript once normalised")
        )
    return text, text is not None and not unspoken


def _decode(
    audio: bytes, rate: int, reasons: list[Reason]
) -> tuple[AudioInfo | None, FloatArray | None, Seconds | None]:
    """(the header, the samples at ``rate``, the file's duration), None where unknown."""
    info: AudioInfo | None = None
    try:
        info = probe(audio)  # the header alone, for a file that then fails to decode
        decoded = decode(audio, target_rate=rate, max_seconds=MAX_SECONDS)
    except AudioTooLong as err:
        reasons.append(Reason(ReasonCode.TOO_LONG, str(err)))
        return info, None, err.duration
    except AudioError as err:
        reasons.append(Reason(ReasonCode.UNDECODABLE, str(err)))
        return info, None, None
    return decoded.source, decoded.samples, decoded.source.duration


def _check_rate(rate: float, reasons: list[Reason]) -> None:
    if rate < MIN_CHARS_PER_SECOND:
        pace = f"{rate:.1f} characters per second, under {MIN_CHARS_PER_SECOND:g}"
        reasons.append(
            Reason(ReasonCode.IMPLAUSIBLE_RATE, f"too slow: {pace}; is the transcript complete?")
        )
    elif rate > MAX_CHARS_PER_SECOND:
        pace = f"{rate:.1f} characters per second, over {MAX_CHARS_PER_SECOND:g}"
        reasons.append(
            Reason(ReasonCode.IMPLAUSIBLE_RATE, f"too fast: {pace}; is the audio complete?")
        )


def _check_loss(loss: float, limit: float, reasons: list[Reason]) -> None:
    if not math.isfinite(loss):
        message = "the transcript cannot be aligned with the audio: too many characters for it"
    elif loss > limit:
        message = (
            f"the transcript does not match the audio: CTC loss {loss:.2f} per character, "
            f"over {limit:g}"
        )
    else:
        return
    reasons.append(Reason(ReasonCode.TRANSCRIPT_MISMATCH, message))


@dataclass(frozen=True)
class Tally:
    files: int
    hours: float  # a pair that cannot be decoded counts no hours

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "hours": self.hours}


@dataclass(frozen=True)
class SetReport:
    """A whole set: accepted and rejected, and per reason (a pair counts under each of its
    reasons, so the reasons' tallies add up to the rejected one only when each has one)."""

    accepted: Tally
    rejected: Tally
    reasons: dict[ReasonCode, Tally]  # every code, in ReasonCode order

    @property
    def files(self) -> int:
        return self.accepted.files + self.rejected.files

    @property
    def hours(self) -> float:
        return self.accepted.hours + self.rejected.hours

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "hours": self.hours,
            "accepted": self.accepted.to_dict(),
            "rejected": self.rejected.to_dict(),
            "reasons": {code.value: tally.to_dict() for code, tally in self.reasons.items()},
        }


def summarise(reports: Iterable[PairReport]) -> SetReport:
    """Files and hours accepted, rejected and per reason code; ``to_dict`` for JSON."""
    reports = list(reports)
    return SetReport(
        accepted=_tally(r for r in reports if r.accepted),
        rejected=_tally(r for r in reports if not r.accepted),
        reasons={code: _tally(r for r in reports if code in r.codes) for code in ReasonCode},
    )


def _tally(reports: Iterable[PairReport]) -> Tally:
    durations = [r.duration or 0.0 for r in reports]
    return Tally(len(durations), math.fsum(durations) / _SECONDS_PER_HOUR)
