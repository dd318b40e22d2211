"""The base model shipped in models/: it loads, and it transcribes speech it never heard.

Margins are wide on purpose (a test is not a benchmark): the figures of record are in the
package's manifest and in README.md, measured on the 1,000-utterance held-out set.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import jiwer
import numpy as np
import numpy.typing as npt
import pytest

from app.kit.settings import BUNDLED_MODELS_DIR
from asr.audio import decode
from asr.corpus import load_sentences, medical_sentences, medical_terms, split_sentences
from asr.evaluate import evaluate
from asr.inference import KEYTERM_BOOST, Transcriber
from asr.package import read_package
from asr.synth import plan_corpus, render
from tests.speech import synth_speech

Audio = npt.NDArray[np.float32]


def _bundled() -> Path:
    packages = sorted(BUNDLED_MODELS_DIR.glob("*.dg"))
    assert packages, "models/ must ship the base model package (mip asr train-base)"
    return packages[-1]


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber(read_package(_bundled()))


@pytest.fixture(scope="module")
def test_text() -> list[str]:
    """The sentences the base model never trained on."""
    _, text = split_sentences(load_sentences("general"), test_fraction=0.05, salt="general-base")
    return text


@pytest.fixture(scope="module")
def held_out(test_text: list[str]) -> list[tuple[str, Audio]]:
    specs = plan_corpus(
        test_text, n=12, seed=99, voices="test", noise_types=("none",), environments=("dry",)
    )
    return [(spec.text, render(spec)) for spec in specs]


class TestBundledBaseModel:
    def test_manifest_carries_its_evaluation(self) -> None:
        manifest = read_package(_bundled()).manifest
        assert manifest.kind == "asr"
        assert "general" in manifest.aliases
        assert 0.0 < manifest.metrics["wer"] < 1.0
        assert 0.0 < manifest.metrics["cer"] < manifest.metrics["wer"]
        assert manifest.training_set is not None
        assert manifest.training_set["test_set"].startswith("synthetic held-out")

    def test_transcribes_unseen_sentences_and_voices(
        self, transcriber: Transcriber, held_out: list[tuple[str, Audio]]
    ) -> None:
        references = [text for text, _ in held_out]
        hypotheses = [transcriber.transcribe(audio).text for _, audio in held_out]
        # A model that learned nothing scores CER ~1; the shipped one is far below on clean speech.
        assert jiwer.cer(references, hypotheses) < 0.45

    def test_long_audio_goes_through_in_windows(
        self, transcriber: Transcriber, held_out: list[tuple[str, Audio]]
    ) -> None:
        # ~70 s of speech, four encoder windows: it is transcribed about as well as the
        # utterances one by one, and the words run to the end of the audio.
        gap = np.zeros(8_000, dtype=np.float32)
        audio = np.concatenate([part for _, clip in held_out * 2 for part in (clip, gap)])
        window = transcriber.window_frames + 2 * transcriber.context_frames
        assert len(audio) / 16_000 > 2 * window / 100
        result = transcriber.transcribe(audio)
        reference = " ".join(text for text, _ in held_out * 2)
        assert jiwer.cer(reference, result.text) < 0.45
        assert len(result.hypothesis.words) > 0.8 * len(reference.split())
        assert result.hypothesis.words[-1].end <= result.duration + 0.05
        assert result.hypothesis.words[-1].start > result.duration - 10.0

    def test_a_recording_of_many_voices_and_rooms_reads_like_its_clips(
        self, transcriber: Transcriber, test_text: list[str]
    ) -> None:
        # Unseen voices in the training mix of noise and rooms, back to back: each stretch of
        # speech is encoded on its own, so the recording scores about what its clips score one
        # by one. Encoded 20 s at a time instead, the voices and rooms mix in the attention
        # (measured on these 20 clips: 0.31 one by one, 0.34 long-form, 0.68 in 20 s windows).
        specs = plan_corpus(test_text, n=20, seed=7, voices="test")
        clips = [render(spec) for spec in specs]
        references = [spec.text for spec in specs]
        one_by_one = jiwer.wer(references, [transcriber.transcribe(c).text for c in clips])
        gap = np.zeros(8_000, dtype=np.float32)
        audio = np.concatenate([part for clip in clips for part in (clip, gap)])
        assert len(audio) / 16_000 > 4 * transcriber.long_form_seconds
        result = transcriber.transcribe(audio)
        assert jiwer.wer(" ".join(references), result.text) < one_by_one + 0.1
        starts = [w.start for w in result.hypothesis.words]
        assert starts == sorted(starts)
        assert result.hypothesis.words[-1].end <= result.duration + 0.05

    def test_sentences_after_a_pause_are_separate_words(self, transcriber: Transcriber) -> None:
        # One speaker, one sentence ten times, half a second apart: the model never emits a
        # space across a pause it never heard in training, so each stretch of speech is
        # decoded on its own (measured: "meeting please" ran together as "meetingplease").
        sentence = "please call me back after the meeting"
        clip = decode(synth_speech(sentence)).samples
        gap = np.zeros(8_000, dtype=np.float32)
        audio = np.concatenate([part for _ in range(10) for part in (clip, gap)])
        result = transcriber.transcribe(audio)
        assert jiwer.wer(" ".join([sentence] * 10), result.text) < 0.25
        assert all(len(word) <= len("meeting") + 2 for word in result.text.split())
        starts = [w.start for w in result.hypothesis.words if w.word.startswith("pl")]
        assert len(starts) >= 8  # "please" begins each sentence, about 3 s apart
        assert all(b - a > 2.0 for a, b in itertools.pairwise(starts))

    def test_words_are_timed_inside_the_audio(
        self, transcriber: Transcriber, held_out: list[tuple[str, Audio]]
    ) -> None:
        _, audio = held_out[0]
        result = transcriber.transcribe(audio)
        assert result.hypothesis.words
        previous_end = 0.0
        for word in result.hypothesis.words:
            assert previous_end - 1e-6 <= word.start <= word.end <= result.duration + 0.05
            assert 0.0 <= word.confidence <= 1.0
            previous_end = word.start

    def test_keyterm_boosting_recovers_domain_terms(self, transcriber: Transcriber) -> None:
        # Medical terms the general model has never seen: boosting them (keyterm) must recover
        # some; measured 0% -> 33% recall on this set (docs/benchmarks.md).
        specs = plan_corpus(
            medical_sentences(),
            n=8,
            seed=5,
            voices="test",
            noise_types=("none",),
            environments=("dry",),
        )
        references = [spec.text for spec in specs]
        audio = [render(spec) for spec in specs]
        terms = [t for t in medical_terms() if any(t in r.split() for r in references)]
        plain = [transcriber.transcribe(a).text for a in audio]
        boosted_options = transcriber.options(keywords=dict.fromkeys(terms, KEYTERM_BOOST))
        boosted = [transcriber.transcribe(a, boosted_options).text for a in audio]
        without = evaluate(references, plain, terms=terms).term_recall
        with_boost = evaluate(references, boosted, terms=terms).term_recall
        assert without is not None
        assert with_boost is not None
        assert with_boost > without
        assert with_boost >= 0.15
