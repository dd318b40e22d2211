"""Training-time feature augmentation: a vocal-tract-length warp and SpecAugment masks.

    cfg = AugmentConfig(freq_warp=0.1, freq_masks=2, freq_mask_width=8,
                        time_masks=2, time_mask_width=25)
    feats = augment(feats, lengths, cfg, generator=torch.Generator().manual_seed(0))

Both act on a batch of normalised log-mel features (B, T, F) and leave the padding alone:

- **Frequency warp** (after Jaitly & Hinton 2013, "Vocal Tract Length Perturbation"): each
  utterance's mel axis is stretched or squeezed by a factor drawn uniformly from
  [1 - freq_warp, 1 + freq_warp], linearly interpolated, so band f takes the value of band
  f / factor. A longer or shorter vocal tract moves the formants the same way; it makes one
  synthetic voice sound like a family of them. The held-out test voices are variants the model
  never heard, which is where the base model loses most (docs/benchmarks.md).
- **Masks** (Park et al. 2019, "SpecAugment"): ``freq_masks`` bands of up to ``freq_mask_width``
  mel bins and ``time_masks`` stretches of up to ``time_mask_width`` frames (never more than a
  fifth of the utterance) are set to 0, the mean of the normalised features.

Everything is drawn from ``generator``, so a seed gives the same augmentation; the defaults
augment nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MAX_TIME_MASK_FRACTION = 0.2  # a time mask never hides more than this share of an utterance


class AugmentError(ValueError):
    """An augmentation setting outside its range."""


@dataclass
class AugmentConfig:
    freq_warp: float = 0.0  # max relative warp of the mel axis (0.1: factors 0.9-1.1)
    freq_masks: int = 0  # SpecAugment frequency masks per utterance
    freq_mask_width: int = 0  # widest frequency mask, in mel bands
    time_masks: int = 0  # SpecAugment time masks per utterance
    time_mask_width: int = 0  # longest time mask, in frames

    def __post_init__(self) -> None:
        if not 0.0 <= self.freq_warp < 0.5:
            raise AugmentError(f"freq_warp must be in [0, 0.5), got {self.freq_warp}")
        for name in ("freq_masks", "freq_mask_width", "time_masks", "time_mask_width"):
            if getattr(self, name) < 0:
                raise AugmentError(f"{name} must not be negative, got {getattr(self, name)}")

    @property
    def active(self) -> bool:
        masks = self.freq_masks * self.freq_mask_width + self.time_masks * self.time_mask_width
        return self.freq_warp > 0.0 or masks > 0

    @classmethod
    def spec_augment(cls, freq_warp: float = 0.0) -> AugmentConfig:
        """A mild policy for a small model: 2 masks of up to 8 bands, 2 of up to 25 frames."""
        return cls(
            freq_warp=freq_warp,
            freq_masks=2,
            freq_mask_width=8,
            time_masks=2,
            time_mask_width=25,
        )


def augment(
    feats: torch.Tensor,
    lengths: torch.Tensor,
    cfg: AugmentConfig,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """An augmented copy of ``feats`` (B, T, F); frames at or past ``lengths[b]`` stay as given."""
    if feats.dim() != 3:
        raise AugmentError(f"expected features (B, T, F), got shape {tuple(feats.shape)}")
    if not cfg.active:
        return feats
    batch, frames, bands = feats.shape
    out = feats.clone()
    lengths_cpu = lengths.detach().to("cpu")
    valid = torch.arange(frames)[None, :] < lengths_cpu[:, None]  # (B, T)
    valid = valid.to(feats.device)
    if cfg.freq_warp > 0.0:
        factors = 1.0 + (torch.rand(batch, generator=generator) * 2.0 - 1.0) * cfg.freq_warp
        source = torch.arange(bands, dtype=torch.float32)[None, :] / factors[:, None]  # (B, F)
        source = source.clamp(0.0, bands - 1.0)
        low = source.floor().long()
        high = (low + 1).clamp(max=bands - 1)
        weight = (source - low.float()).to(feats.device, feats.dtype)[:, None, :]  # (B, 1, F)
        low_idx = low.to(feats.device)[:, None, :].expand(batch, frames, bands)
        high_idx = high.to(feats.device)[:, None, :].expand(batch, frames, bands)
        warped = out.gather(2, low_idx) * (1.0 - weight) + out.gather(2, high_idx) * weight
        out = torch.where(valid[:, :, None], warped, out)
    for b in range(batch):
        length = int(lengths_cpu[b])
        for _ in range(cfg.freq_masks):
            width = _draw(cfg.freq_mask_width, generator)
            if 0 < width < bands:
                start = _draw(bands - width, generator)
                out[b, :length, start : start + width] = 0.0
        longest = min(cfg.time_mask_width, int(MAX_TIME_MASK_FRACTION * length))
        for _ in range(cfg.time_masks):
            width = _draw(longest, generator)
            if width > 0:
                start = _draw(length - width, generator)
                out[b, start : start + width, :] = 0.0
    return out


def _draw(high: int, generator: torch.Generator | None) -> int:
    """A whole number uniformly from [0, high]."""
    if high <= 0:
        return 0
    return int(torch.randint(0, high + 1, (1,), generator=generator))
