"""Long audio through the encoder in windows (asr.inference.Transcriber).

Small random models and real speech: the stitching is exact for a model whose receptive field
the context covers, and the output has one frame per ``subsampling`` input frames either way.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest
import torch

from asr.audio import TARGET_RATE, decode
from asr.features import FeatureConfig
from asr.inference import Transcriber
from asr.lm import WordLM
from asr.model import CTCModel, ModelConfig
from asr.package import ModelPackage, new_manifest
from asr.tokenizer import CharTokenizer
from tests.asr.test_decode import cut_or_cat
from tests.speech import synth_speech

Audio = npt.NDArray[np.float32]

# Receptive field: the 2-D front end sees ±3 input frames, the two blocks ±(2 + 3) output
# frames, ±23 input frames in all; a context of 0.5 s (50 frames) covers it.
CONV = ModelConfig(d_model=16, n_layers=2, kernel_sizes=[5, 7], subsampling_channels=4)
CONFORMER = ModelConfig(encoder="conformer", d_model=16, n_layers=2, n_heads=2, kernel_sizes=[5, 5])


def _package(cfg: ModelConfig) -> ModelPackage:
    torch.manual_seed(0)
    model = CTCModel(cfg)
    for module in model.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(module, torch.nn.BatchNorm1d):
            assert module.running_mean is not None
            assert module.running_var is not None
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    manifest = new_manifest(
        name=f"ctc{cfg.encoder}-general",
        architecture=f"ctc{cfg.encoder}",
        domain="general",
        version="2026-11-21.1",
    )
    return ModelPackage(
        manifest=manifest,
        model_config=cfg,
        feature_config=FeatureConfig(),
        tokenizer=CharTokenizer.english(),
        state_dict=model.state_dict(),
    )


@pytest.fixture(scope="module")
def speech() -> Audio:
    """About 12 s of real speech: a sentence three times over."""
    one = decode(synth_speech("the quick brown fox jumps over the lazy dog")).samples
    gap = np.zeros(TARGET_RATE // 2, dtype=np.float32)
    return np.concatenate([one, gap, one, gap, one]).astype(np.float32)


class TestWindowedEncoding:
    def test_conv_posteriors_match_one_pass(self, speech: Audio) -> None:
        package = _package(CONV)
        whole = Transcriber(package, window_seconds=1e6)  # one window: the reference
        windowed = Transcriber(package, window_seconds=1.0, context_seconds=0.5)
        assert (windowed.window_frames, windowed.context_frames) == (100, 48)
        expected = whole.log_probs(speech)
        got = windowed.log_probs(speech)
        frames = 1 + len(speech) // 160
        assert expected.shape[0] == got.shape[0] == -(-frames // 4)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)

    def test_context_too_short_for_the_receptive_field_changes_posteriors(
        self, speech: Audio
    ) -> None:
        # The check above can fail: without context the window edges see zeros, not speech.
        package = _package(CONV)
        expected = Transcriber(package, window_seconds=1e6).log_probs(speech)
        got = Transcriber(package, window_seconds=1.0, context_seconds=0.0).log_probs(speech)
        assert got.shape == expected.shape
        assert (got - expected).abs().max() > 1e-3

    @pytest.mark.parametrize("window_seconds", [0.37, 1.0, 2.5])
    def test_conformer_gets_one_output_per_subsampled_frame(
        self, speech: Audio, window_seconds: float
    ) -> None:
        package = _package(CONFORMER)
        windowed = Transcriber(package, window_seconds=window_seconds, context_seconds=0.3)
        got = windowed.log_probs(speech)
        frames = 1 + len(speech) // 160
        assert got.shape == (-(-frames // 4), CONFORMER.vocab_size)
        assert torch.isfinite(got).all()
        # Each window's kept outputs are its own (with context), in order: the first window
        # run alone gives the first window's posteriors.
        first = windowed.window_frames + windowed.context_frames
        alone = Transcriber(package, window_seconds=1e6)
        feats = alone.featurizer(torch.from_numpy(speech))[:first]
        log_probs, _ = alone.model(feats[None], torch.tensor([first]))
        kept = windowed.window_frames // 4
        # (Attention over a batch and over one window round differently: up to ~1e-3.)
        torch.testing.assert_close(got[:kept], log_probs[0, :kept], atol=5e-3, rtol=1e-3)


class TestOutOfVocabularyPenaltyFromThePackage:
    """A package's ``decoding.oov_penalty`` reaches the beam search, checked against its LM."""

    def _transcriber(self, decoding: dict[str, object]) -> Transcriber:
        lm = WordLM.from_sentences(["the cat sat", "a cat ran"])
        package = replace(_package(CONV), lm=lm.to_dict(), decoding=decoding)
        return Transcriber(package)

    def test_the_penalty_turns_a_non_word_into_the_vocabulary_word(self) -> None:
        plain = self._transcriber({"lm_weight": 0.0, "word_bonus": 0.0, "snap": False})
        strict = self._transcriber(
            {"lm_weight": 0.0, "word_bonus": 0.0, "snap": False, "oov_penalty": 2.0}
        )
        assert strict.default_options.oov_penalty == 2.0
        assert strict.lexicon_prefixes is not None
        assert "ca" in strict.lexicon_prefixes.following
        assert plain.decode(cut_or_cat(), plain.default_options).text == "cut"
        assert strict.decode(cut_or_cat(), strict.default_options).text == "cat"

    def test_a_package_without_lm_has_nothing_to_check_against(self) -> None:
        package = replace(_package(CONV), decoding={"oov_penalty": 8.0, "snap": False})
        transcriber = Transcriber(package)
        assert transcriber.lexicon_prefixes is None
        assert transcriber.decode(cut_or_cat(), transcriber.default_options).text == "cut"
