"""Training-time augmentation (asr.augment): the warp, the masks, and their use in train()."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asr.augment import MAX_TIME_MASK_FRACTION, AugmentConfig, AugmentError, augment
from asr.model import ModelConfig
from asr.synth import plan_corpus, synthesize
from asr.train import TrainConfig, load_weights, train

BANDS = 64
PAD = 7.0  # a value no augmentation writes: padding must keep it


def _ramp(lengths: list[int], frames: int = 120) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, F) features whose band f holds the value f, padding PAD past each length."""
    feats = torch.arange(BANDS, dtype=torch.float32).repeat(len(lengths), frames, 1)
    for b, length in enumerate(lengths):
        feats[b, length:] = PAD
    return feats, torch.tensor(lengths)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class TestConfig:
    def test_defaults_change_nothing(self) -> None:
        feats, lengths = _ramp([100, 80])
        assert not AugmentConfig().active
        assert augment(feats, lengths, AugmentConfig()) is feats

    @pytest.mark.parametrize(
        "fields",
        [{"freq_warp": -0.1}, {"freq_warp": 0.5}, {"freq_masks": -1}, {"time_mask_width": -5}],
    )
    def test_out_of_range_settings_are_refused(self, fields: dict[str, float]) -> None:
        with pytest.raises(AugmentError):
            AugmentConfig(**fields)  # type: ignore[arg-type]

    def test_features_must_be_a_batch(self) -> None:
        with pytest.raises(AugmentError, match=r"\(B, T, F\)"):
            augment(torch.zeros(10, BANDS), torch.tensor([10]), AugmentConfig(freq_warp=0.1))


class TestFrequencyWarp:
    def test_each_utterance_is_stretched_by_one_factor_within_the_range(self) -> None:
        feats, lengths = _ramp([120, 90, 60, 30])
        out = augment(feats, lengths, AugmentConfig(freq_warp=0.1), generator=_gen(0))
        factors = []
        for b, length in enumerate(lengths.tolist()):
            # band f takes the value of band f / factor: on the ramp, out = f / factor
            bands = torch.arange(1, 50, dtype=torch.float32)  # away from the clamped top
            factor = bands / out[b, 0, 1:50]
            assert torch.allclose(factor, factor[0].expand_as(factor), rtol=1e-4)
            assert 0.9 - 1e-6 <= float(factor[0]) <= 1.1 + 1e-6
            assert torch.equal(out[b, :length], out[b, :1].expand(length, BANDS))  # every frame
            assert torch.all(out[b, length:] == PAD)  # padding untouched
            factors.append(round(float(factor[0]), 4))
        assert len(set(factors)) == len(factors)  # a factor per utterance
        assert torch.all(out[:, :, -1] <= BANDS - 1)  # never reads past the top band

    def test_the_same_seed_gives_the_same_warp(self) -> None:
        feats, lengths = _ramp([100, 100])
        cfg = AugmentConfig(freq_warp=0.2)
        one = augment(feats, lengths, cfg, generator=_gen(5))
        assert torch.equal(one, augment(feats, lengths, cfg, generator=_gen(5)))
        assert not torch.equal(one, augment(feats, lengths, cfg, generator=_gen(6)))
        assert torch.equal(feats, _ramp([100, 100])[0])  # the input is not changed in place


class TestMasks:
    def test_frequency_masks_zero_whole_bands_within_the_width(self) -> None:
        feats, lengths = _ramp([100, 70, 40])
        feats[:, :, 0] = 1.0  # no band is 0 before masking
        for b, length in enumerate(lengths.tolist()):
            feats[b, length:] = PAD
        cfg = AugmentConfig(freq_masks=2, freq_mask_width=8)
        out = augment(feats, lengths, cfg, generator=_gen(1))
        masked_any = False
        for b, length in enumerate(lengths.tolist()):
            zero_bands = (out[b, :length] == 0).all(dim=0)
            assert torch.equal((out[b, :length] == 0).any(dim=0), zero_bands)  # whole bands
            assert int(zero_bands.sum()) <= 2 * 8
            masked_any |= bool(zero_bands.any())
            assert torch.all(out[b, length:] == PAD)
        assert masked_any

    def test_time_masks_hide_at_most_a_fifth_of_an_utterance(self) -> None:
        feats, lengths = _ramp([120, 50, 10])
        feats += 1.0  # band 0 is 1, nothing is 0 before masking
        for b, length in enumerate(lengths.tolist()):
            feats[b, length:] = PAD
        cfg = AugmentConfig(time_masks=2, time_mask_width=25)
        hidden = []
        for seed in range(20):
            out = augment(feats, lengths, cfg, generator=_gen(seed))
            for b, length in enumerate(lengths.tolist()):
                zero_frames = (out[b, :length] == 0).all(dim=1)
                assert torch.equal((out[b, :length] == 0).any(dim=1), zero_frames)
                longest = min(25, int(MAX_TIME_MASK_FRACTION * length))
                assert int(zero_frames.sum()) <= 2 * longest
                assert torch.all(out[b, length:] == PAD)
                hidden.append(int(zero_frames.sum()))
        assert max(hidden) > 0

    def test_spec_augment_preset(self) -> None:
        cfg = AugmentConfig.spec_augment(freq_warp=0.1)
        assert cfg.active
        assert (cfg.freq_masks, cfg.freq_mask_width, cfg.time_masks, cfg.time_mask_width) == (
            2,
            8,
            2,
            25,
        )
        assert cfg.freq_warp == 0.1


SMALL = ModelConfig(d_model=16, n_layers=1, kernel_sizes=[5], subsampling_channels=4)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sentences = ["the cat sat on the mat", "we walked home after the rain"]
    specs = plan_corpus(sentences, n=8, seed=3, noise_types=("none",), environments=("dry",))
    return synthesize(specs, tmp_path_factory.mktemp("corpus"), workers=1, progress=False)


class TestInTraining:
    def test_train_applies_the_augmentation_deterministically_and_records_it(
        self, corpus: Path, tmp_path: Path
    ) -> None:
        def run(name: str, cfg: AugmentConfig) -> dict[str, torch.Tensor]:
            result = train(
                TrainConfig(
                    train_manifests=[corpus],
                    out_dir=tmp_path / name,
                    model=SMALL,
                    max_minutes=None,
                    max_steps=4,
                    warmup_steps=1,
                    eval_every=1000,
                    augment=cfg,
                    threads=1,
                    progress=False,
                )
            )
            return load_weights(result.checkpoint)

        policy = AugmentConfig.spec_augment(freq_warp=0.1)
        plain, first, again = run("plain", AugmentConfig()), run("a", policy), run("b", policy)
        assert all(torch.equal(first[k], again[k]) for k in first)  # same seed, same training
        assert any(not torch.equal(first[k], plain[k]) for k in first)  # it did augment
        state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
        assert state["train_config"]["augment"] == {
            "freq_warp": 0.1,
            "freq_masks": 2,
            "freq_mask_width": 8,
            "time_masks": 2,
            "time_mask_width": 25,
        }
