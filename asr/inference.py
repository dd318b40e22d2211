"""Run a packaged model on audio: features, the acoustic model, CTC decoding, word timings.

    transcriber = Transcriber(read_package(Path("models/ctcconformer-general.en....dg")))
    result = transcriber.transcribe(decode(wav_bytes).samples, keywords={"metformin": 5.0})
    result.text, result.words[0].start, result.confidence

A package's ``decoding`` may carry a vocabulary (asr.vocabulary): its terms are boosted on every
request, with a request's keywords on top (the request's weight wins for a term both name), and
a word run the decoder spells as a term's sounds-like spelling is shown as the term.

Thread-safe for concurrent requests: the model is in eval mode and read-only, every call has
its own tensors. Inference runs under ``torch.inference_mode`` on the CPU unless told otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch

from asr.decode import (
    Hypothesis,
    Lexicon,
    Word,
    beam_search,
    greedy,
    join_hypotheses,
    pause_segments,
    snap_to_lexicon,
    speech_spans,
)
from asr.features import LogMel
from asr.lm import WordLM
from asr.model import CTCModel
from asr.package import ModelPackage
from asr.tokenizer import CharTokenizer
from asr.vocabulary import Vocabulary, match_respellings, respell

Decoder = Literal["greedy", "beam"]


@dataclass(frozen=True)
class DecodeOptions:
    """How to turn posteriors into words; a package's ``decoding`` (tuned on held-out speech
    when it was trained) overrides these defaults, a request's keywords are added to it."""

    decoder: Decoder = "beam"
    beam_width: int = 8
    lm_weight: float = 0.3  # word bigram LM weight (when the package carries one)
    word_bonus: float = 1.0  # log-domain reward per word, against the LM's bias to fewer words
    snap: bool = True  # replace out-of-vocabulary words by their nearest LM vocabulary word
    # log-domain cost of spelling a word outside the LM vocabulary, paid as soon as the spelling
    # leaves every vocabulary word (asr.decode.Lexicon); 0 turns the check off, and so does a
    # package without an LM (no vocabulary to check against)
    oov_penalty: float = 0.0
    keywords: Mapping[str, float] = field(default_factory=dict)
    # terms boosted by KEYTERM_BOOST * weight under ``keywords`` (which win for a term both
    # name), and shown for their sounds-like spellings (Transcriber.transcribe); rows as a
    # package's decoding holds them are parsed, so DecodeOptions(**package.decoding) works
    vocabulary: Vocabulary | None = None

    def __post_init__(self) -> None:
        if self.vocabulary is not None and not isinstance(self.vocabulary, Vocabulary):
            object.__setattr__(self, "vocabulary", Vocabulary.parse(self.vocabulary))

    def to_dict(self) -> dict[str, object]:
        """The package's ``decoding`` of these options (a request's keywords are not in it)."""
        out: dict[str, object] = {
            "decoder": self.decoder,
            "beam_width": self.beam_width,
            "lm_weight": self.lm_weight,
            "word_bonus": self.word_bonus,
            "snap": self.snap,
            "oov_penalty": self.oov_penalty,
        }
        if self.vocabulary is not None:
            out["vocabulary"] = self.vocabulary.to_dicts()
        return out


@dataclass(frozen=True)
class Transcription:
    text: str
    hypothesis: Hypothesis
    duration: float  # seconds of audio

    @property
    def confidence(self) -> float:
        return self.hypothesis.confidence


# Long audio goes through the encoder in windows: memory stays bounded for any length (a
# Conformer's self-attention is quadratic in its input). Each window carries context on both
# sides whose outputs are dropped; it covers the conv encoder's receptive field (about 3.8 s),
# so that model's posteriors are the same as in one pass (tests/asr/test_inference.py).
WINDOW_SECONDS = 20.0
CONTEXT_SECONDS = 4.0
WINDOW_BATCH = 4  # windows per forward pass
# Log-domain bonus of a key term that carries no weight of its own (Deepgram's ``keyterm``);
# the service and the local ``mip asr transcribe`` boost by the same amount.
KEYTERM_BOOST = 4.0
PAUSE_SECONDS = 0.4  # a pause at least this long ends a word (asr.decode.pause_segments)

# Long-form audio (a call, a meeting, clips back to back) is not what the model learnt from:
# one sentence of a few seconds per input, normalised on its own. Fed a 20 s window of several
# speakers, noises and rooms, the Conformer's attention mixes them (measured: WER 0.63 on 40
# held-out clips back to back against 0.29 one by one). So audio longer than LONG_FORM_SECONDS
# is first scanned in short windows to find its stretches of speech (asr.decode.speech_spans),
# then each stretch is encoded and decoded on its own, like a training utterance.
LONG_FORM_SECONDS = 10.0
SCAN_WINDOW_SECONDS = 4.0
SCAN_CONTEXT_SECONDS = 1.0
SPAN_MARGIN_SECONDS = 0.12  # audio kept on each side of a stretch's first and last symbol


class Transcriber:
    def __init__(
        self,
        package: ModelPackage,
        *,
        device: str = "cpu",
        window_seconds: float = WINDOW_SECONDS,
        context_seconds: float = CONTEXT_SECONDS,
        long_form_seconds: float = LONG_FORM_SECONDS,
    ) -> None:
        self.package = package
        self.device = torch.device(device)
        self.tokenizer = package.tokenizer
        self.featurizer = LogMel(package.feature_config).to(self.device)
        model = CTCModel(package.model_config)
        model.load_state_dict(package.state_dict, strict=True)
        self.model = model.to(self.device).eval()
        self.lm = WordLM.from_dict(package.lm) if package.lm else None
        self.lexicon = frozenset(self.lm.vocabulary) if self.lm else frozenset()
        self.default_options = DecodeOptions(**package.decoding or {})
        if self.default_options.vocabulary is not None:  # read_package checked it; replace() not
            self.default_options.vocabulary.check_spellable(self.tokenizer)
        # In input frames, whole multiples of the subsampling so windows align with outputs.
        step = package.model_config.subsampling
        frames = 1.0 / package.feature_config.frame_seconds
        self.window_frames = max(step, int(window_seconds * frames) // step * step)
        self.context_frames = max(0, int(context_seconds * frames) // step * step)
        self.scan_window_frames = max(step, int(SCAN_WINDOW_SECONDS * frames) // step * step)
        self.scan_context_frames = int(SCAN_CONTEXT_SECONDS * frames) // step * step
        self.long_form_seconds = long_form_seconds

    @functools.cached_property
    def lexicon_prefixes(self) -> Lexicon | None:
        """The LM vocabulary and its prefixes for the out-of-vocabulary penalty (about 0.1 s and
        5 MB for the base model's 26,000 words): built on first use, so a package whose decoding
        never asks for the penalty does not pay for it at load."""
        return Lexicon.of(self.lexicon) if self.lexicon else None

    @property
    def frame_seconds(self) -> float:
        return self.featurizer.cfg.frame_seconds * self.package.model_config.subsampling

    @property
    def samples_per_frame(self) -> int:
        """Input samples per output frame."""
        return self.featurizer.cfg.hop_length * self.package.model_config.subsampling

    def log_probs(self, samples: npt.NDArray[np.float32]) -> torch.Tensor:
        """(T', V) CTC log-probabilities of 16 kHz mono samples, in one pass or in windows."""
        return self._encode(samples, self.window_frames, self.context_frames)

    @torch.inference_mode()
    def _encode(self, samples: npt.NDArray[np.float32], window: int, context: int) -> torch.Tensor:
        waveform = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
        feats = self.featurizer(waveform.to(self.device))  # (T, F)
        total = feats.shape[0]
        if total <= window + 2 * context:
            lengths = torch.tensor([total], device=self.device)
            log_probs, out_lengths = self.model(feats[None], lengths)  # (1, T', V)
            out: torch.Tensor = log_probs[0, : int(out_lengths[0])].float().cpu()
            return out
        return self._windowed_log_probs(feats, window, context)

    def _windowed_log_probs(self, feats: torch.Tensor, window: int, context: int) -> torch.Tensor:
        """Posteriors of ``feats`` (T, F) window by window, context outputs dropped."""
        step = self.package.model_config.subsampling
        total = feats.shape[0]
        spans = []  # (first input frame with context, its length, first kept output, kept)
        for start in range(0, total, window):
            lo, hi = max(0, start - context), min(total, start + window + context)
            kept = -(-min(window, total - start) // step)  # ceil: the last window may be short
            spans.append((lo, hi - lo, (start - lo) // step, kept))
        # Windows of one length share a forward pass. A shorter one (the first, the last) goes
        # alone: padding it would feed the front end's bias into its last frames.
        batches: list[list[tuple[int, int, int, int]]] = []
        for span in spans:
            if batches and len(batches[-1]) < WINDOW_BATCH and batches[-1][0][1] == span[1]:
                batches[-1].append(span)
            else:
                batches.append([span])
        pieces = []
        for batch in batches:
            length = batch[0][1]
            x = torch.stack([feats[lo : lo + length] for lo, _, _, _ in batch])
            lengths = torch.full((len(batch),), length, device=self.device)
            log_probs, _ = self.model(x, lengths)
            for row, (_, _, first, kept) in enumerate(batch):
                pieces.append(log_probs[row, first : first + kept].float().cpu())
        return torch.cat(pieces)

    def options(self, *, keywords: Mapping[str, float] | None = None) -> DecodeOptions:
        """The package's tuned options (its vocabulary included), with ``keywords`` boosted on
        top (which needs the beam search)."""
        if not keywords:
            return self.default_options
        return replace(self.default_options, decoder="beam", keywords=dict(keywords))

    def boost(self, options: DecodeOptions) -> dict[str, float]:
        """What the beam search boosts for ``options``: its keywords as they are without a
        vocabulary; with one, every spelling of every term at ``KEYTERM_BOOST * weight``
        (asr.vocabulary.Vocabulary.keywords), then the keywords, normalised, on top. A keyword
        naming a term (normalised alike) sets the boost of all that term's spellings."""
        vocabulary = options.vocabulary
        if vocabulary is None or not vocabulary.terms:
            return dict(options.keywords)
        boost, spellings = _vocabulary_boost(vocabulary, self.tokenizer)
        merged = dict(boost)
        for term, weight in options.keywords.items():
            key = self.tokenizer.normalize(term)
            if not key:
                merged[term] = weight  # spells nothing: the beam search says so (DecodeError)
                continue
            merged[key] = weight
            merged.update(dict.fromkeys(spellings.get(key, ()), weight))
        return merged

    def _searched(self, options: DecodeOptions) -> DecodeOptions:
        """``options`` as the search takes them: the boost resolved (:meth:`boost`), the
        vocabulary dropped, and the beam search wherever anything is boosted."""
        keywords = self.boost(options) if options.vocabulary is not None else options.keywords
        decoder: Decoder = "beam" if keywords else options.decoder
        if options.vocabulary is None and decoder == options.decoder:
            return options
        return replace(options, decoder=decoder, keywords=keywords, vocabulary=None)

    def transcribe(
        self, samples: npt.NDArray[np.float32], options: DecodeOptions | None = None
    ) -> Transcription:
        options = options or self.default_options
        vocabulary = options.vocabulary
        options = self._searched(options)  # boosting lives in the beam search
        duration = len(samples) / self.featurizer.cfg.sample_rate
        if len(samples) < self.featurizer.cfg.n_fft:
            empty = Hypothesis(text="", words=(), confidence=0.0)
            return Transcription(text="", hypothesis=empty, duration=duration)
        if duration > self.long_form_seconds:
            hypothesis = self._decode_spans(samples, options)
        else:
            hypothesis = self.decode(self.log_probs(samples), options)
        text = hypothesis.text
        if options.snap and self.lexicon:
            # The lexicon itself when nothing is boosted: snapping indexes it once, by identity.
            boosted = {w for k in options.keywords for w in k.lower().split()}
            protected = self.lexicon | boosted if boosted else self.lexicon
            text = snap_to_lexicon(text, protected)
            hypothesis = _respell(hypothesis, text)
        if vocabulary is not None and vocabulary.terms:  # sounds-like spellings show the term
            table = _respellings(vocabulary, self.tokenizer)
            text = respell(text, table)
            hypothesis = _respell_terms(hypothesis, table)
        return Transcription(text=text, hypothesis=hypothesis, duration=duration)

    def speech_spans(self, samples: npt.NDArray[np.float32]) -> list[tuple[int, int]]:
        """Where ``samples`` holds speech, in output frames: a scan in short windows."""
        scan = self._encode(samples, self.scan_window_frames, self.scan_context_frames)
        return speech_spans(
            scan,
            blank_id=self.tokenizer.blank_id,
            min_pause_frames=self._pause_frames,
            margin_frames=round(SPAN_MARGIN_SECONDS / self.frame_seconds),
        )

    def _decode_spans(self, samples: npt.NDArray[np.float32], options: DecodeOptions) -> Hypothesis:
        per_frame = self.samples_per_frame
        parts = []
        for a, b in self.speech_spans(samples):
            piece = samples[a * per_frame : b * per_frame]
            if len(piece) < self.featurizer.cfg.n_fft:
                continue  # too short for one feature frame: nothing to hear
            parts.append(self.decode(self.log_probs(piece), options, offset=a * self.frame_seconds))
        return join_hypotheses(parts)

    @property
    def _pause_frames(self) -> int:
        return max(1, round(PAUSE_SECONDS / self.frame_seconds))

    def decode(
        self, log_probs: torch.Tensor, options: DecodeOptions, *, offset: float = 0.0
    ) -> Hypothesis:
        """Words from posteriors (no snapping, no respelling): the stretches of speech between
        pauses one by one (asr.decode.pause_segments), greedy or by beam search as ``options``
        say (a vocabulary's terms boosted, see :meth:`boost`); times are shifted by ``offset``
        seconds."""
        if options.vocabulary is not None:
            options = self._searched(options)
        segments = pause_segments(
            log_probs, blank_id=self.tokenizer.blank_id, min_pause_frames=self._pause_frames
        )
        return join_hypotheses(
            [
                self._decode(log_probs[a:b], options, offset + a * self.frame_seconds)
                for a, b in segments
            ]
        )

    def _decode(self, log_probs: torch.Tensor, options: DecodeOptions, offset: float) -> Hypothesis:
        if options.decoder == "greedy":
            return greedy(
                log_probs, self.tokenizer, frame_seconds=self.frame_seconds, time_offset=offset
            )
        return beam_search(
            log_probs,
            self.tokenizer,
            frame_seconds=self.frame_seconds,
            beam_width=options.beam_width,
            boost=dict(options.keywords) or None,
            lm=self.lm,
            lm_weight=options.lm_weight,
            word_bonus=options.word_bonus,
            time_offset=offset,
            lexicon=self.lexicon_prefixes if options.oov_penalty > 0 else None,
            oov_penalty=options.oov_penalty,
        )


def _respell(hypothesis: Hypothesis, text: str) -> Hypothesis:
    """The hypothesis with its words replaced one for one by ``text``'s (timings kept)."""
    words = text.split()
    if len(words) != len(hypothesis.words):
        return hypothesis
    respelled = tuple(
        type(w)(word=new, start=w.start, end=w.end, confidence=w.confidence)
        for w, new in zip(hypothesis.words, words, strict=True)
    )
    return Hypothesis(text=text, words=respelled, confidence=hypothesis.confidence)


@functools.lru_cache(maxsize=16)
def _vocabulary_boost(
    vocabulary: Vocabulary, tokenizer: CharTokenizer
) -> tuple[dict[str, float], dict[str, tuple[str, ...]]]:
    """A vocabulary's boost (normalised spelling -> KEYTERM_BOOST * weight) and each term's
    spellings under its normalised text; kept for the last few vocabularies (callers copy)."""
    boost = vocabulary.keywords(KEYTERM_BOOST, tokenizer=tokenizer)
    spellings = {tokenizer.normalize(t.term): t.spellings(tokenizer) for t in vocabulary.terms}
    spellings.pop("", None)
    return boost, spellings


@functools.lru_cache(maxsize=16)
def _respellings(vocabulary: Vocabulary, tokenizer: CharTokenizer) -> dict[tuple[str, ...], str]:
    return vocabulary.respellings(tokenizer)


def _respell_terms(hypothesis: Hypothesis, table: Mapping[tuple[str, ...], str]) -> Hypothesis:
    """The hypothesis with each run of words spelling a term's sounds-like replaced by the
    term's words: timed from the first to the last word they replace, their confidences
    averaged (one for one when the counts agree)."""
    words = hypothesis.words
    runs = match_respellings([w.word for w in words], table)
    if not runs:
        return hypothesis
    out: list[Word] = []
    position = 0
    for start, end, term in runs:
        out.extend(words[position:start])
        out.extend(_spread(words[start:end], term.split()))
        position = end
    out.extend(words[position:])
    confidence = sum(w.confidence for w in out) / len(out) if out else 0.0
    return Hypothesis(" ".join(w.word for w in out), tuple(out), confidence)


def _spread(old: Sequence[Word], new: list[str]) -> list[Word]:
    """``new`` words in the time ``old`` words took: the old words split into as many runs,
    or, with more new words than old, the time split evenly."""
    n, m = len(old), len(new)
    if m <= n:
        groups = [old[k * n // m : (k + 1) * n // m] for k in range(m)]
        return [
            Word(word, g[0].start, g[-1].end, sum(w.confidence for w in g) / len(g))
            for word, g in zip(new, groups, strict=True)
        ]
    start, end = old[0].start, old[-1].end
    confidence = sum(w.confidence for w in old) / n
    step = (end - start) / m
    return [
        Word(word, start + k * step, start + (k + 1) * step, confidence)
        for k, word in enumerate(new)
    ]
