"""The CTC acoustic model: convolutional subsampling, then a stack of encoder blocks.

    model = CTCModel(ModelConfig(vocab_size=29))
    log_probs, lengths = model(feats, feat_lengths)  # (B, T', V) log-softmax, T' ≈ T / 4

Two encoders, chosen by ``ModelConfig.encoder``:

- ``"conformer"``: multi-head self-attention + convolution blocks. The base model is one
  (``encoder_preset("conformer")``, train-base's default): in a matched 15-minute run on the
  same corpus and 2 CPU cores it was ahead of the conv stack at every point of the validation
  curve, test WER 0.609 against 0.744 (docs/benchmarks.md, "Choosing the encoder").
- ``"conv"`` (``ModelConfig``'s own default, small and fast to build in tests): QuartzNet-style
  time-channel separable convolutions with BatchNorm and residual connections, the best WER per
  CPU minute in a first feasibility run on 2 CPU cores, not in the later one.

A recurrent (BiGRU) encoder is not offered: in that first measurement it still emitted only
blanks after 2 minutes while training 5-12x slower than the conv stack.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class ModelConfigError(ValueError):
    """A model configuration that cannot be built (unknown encoder, bad sizes)."""


@dataclass
class ModelConfig:
    vocab_size: int = 29  # CTC output symbols, blank included (asr.tokenizer)
    n_mels: int = 64  # input feature size (asr.features.FeatureConfig.n_mels)
    encoder: str = "conv"  # "conv" (separable convolutions) or "conformer"
    d_model: int = 256  # channels of every encoder block
    n_layers: int = 10  # encoder blocks
    kernel_sizes: list[int] = field(
        default_factory=lambda: [11, 13, 15, 17, 19, 21, 23, 25, 27, 29]
    )
    n_heads: int = 4  # conformer only
    subsampling: int = 4  # 2 or 4: 4 gives 25 output frames/s, enough for speech up to ~200 wpm
    subsampling_channels: int = 32  # 2-D front end channels; 64 halves CPU training speed
    dropout: float = 0.0  # no dropout at the scale of the base model (measured: it only slows it)

    def __post_init__(self) -> None:
        if self.encoder not in {"conv", "conformer"}:
            raise ModelConfigError(f"encoder must be 'conv' or 'conformer', not {self.encoder!r}")
        if self.subsampling not in {2, 4}:
            raise ModelConfigError("subsampling must be 2 or 4")
        if self.encoder == "conv" and len(self.kernel_sizes) != self.n_layers:
            raise ModelConfigError("kernel_sizes needs one odd size per layer")
        if any(k % 2 == 0 for k in self.kernel_sizes):
            raise ModelConfigError("kernel sizes must be odd (same-length padding)")
        if self.vocab_size < 3 or self.d_model < 8 or self.n_layers < 1:
            raise ModelConfigError("vocab_size ≥ 3, d_model ≥ 8 and n_layers ≥ 1 are required")
        if self.encoder == "conformer" and self.d_model % self.n_heads:
            raise ModelConfigError("d_model must be a multiple of n_heads")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ModelConfigError(f"unknown model config fields: {', '.join(sorted(unknown))}")
        try:
            return cls(**data)
        except TypeError as err:
            raise ModelConfigError(f"bad model config: {err}") from None


class Subsampling(nn.Module):
    """Two stride-2 2-D convolutions over (time, mel) (or one for 2x), then a projection."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c = cfg.subsampling_channels
        layers: list[nn.Module] = [nn.Conv2d(1, c, 3, stride=2, padding=1), nn.ReLU()]
        if cfg.subsampling == 4:
            layers += [nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU()]
        self.conv = nn.Sequential(*layers)
        self.n_convs = 2 if cfg.subsampling == 4 else 1
        freq = cfg.n_mels
        for _ in range(self.n_convs):
            freq = (freq + 1) // 2
        self.proj = nn.Linear(c * freq, cfg.d_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = x.shape
        x = self.proj(x.permute(0, 2, 1, 3).reshape(b, t, c * f))  # (B, T', D)
        for _ in range(self.n_convs):
            lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
        return x, lengths


class SeparableBlock(nn.Module):
    """Depthwise conv over time, pointwise conv, BatchNorm, ReLU, residual. Input (B, D, T)."""

    def __init__(self, d_model: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2, groups=d_model)
        self.pointwise = nn.Conv1d(d_model, d_model, 1)
        self.norm = nn.BatchNorm1d(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.norm(self.pointwise(self.depthwise(x)))
        # Padding is re-zeroed after every block so it never leaks into real frames.
        out: torch.Tensor = (x + self.dropout(F.relu(y))) * mask
        return out


class ConformerBlock(nn.Module):
    """Macaron feed-forward, self-attention, convolution module, feed-forward. Input (B, T, D)."""

    def __init__(self, d_model: int, n_heads: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.ff1 = _feed_forward(d_model, dropout)
        self.attn_norm = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.conv_norm = nn.LayerNorm(d_model)
        self.pointwise_in = nn.Conv1d(d_model, 2 * d_model, 1)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2, groups=d_model)
        self.conv_bn = nn.BatchNorm1d(d_model)
        self.pointwise_out = nn.Conv1d(d_model, d_model, 1)
        self.ff2 = _feed_forward(d_model, dropout)
        self.out_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pad = ~mask  # (B, T) True where padded
        x = x + 0.5 * self.ff1(x)
        h = self.attn_norm(x)
        h, _ = self.attn(h, h, h, key_padding_mask=pad, need_weights=False)
        x = x + self.dropout(h)
        h = self.conv_norm(x).masked_fill(pad[..., None], 0.0).transpose(1, 2)  # (B, D, T)
        h = F.glu(self.pointwise_in(h), dim=1)
        h = self.pointwise_out(F.silu(self.conv_bn(self.depthwise(h))))
        x = x + self.dropout(h.transpose(1, 2))
        x = x + 0.5 * self.ff2(x)
        out: torch.Tensor = self.out_norm(x).masked_fill(pad[..., None], 0.0)
        return out


def _feed_forward(d_model: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.LayerNorm(d_model),
        nn.Linear(d_model, 4 * d_model),
        nn.SiLU(),
        nn.Dropout(dropout),
        nn.Linear(4 * d_model, d_model),
        nn.Dropout(dropout),
    )


class CTCModel(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.subsampling = Subsampling(cfg)
        self.blocks = nn.ModuleList()
        for i in range(cfg.n_layers):
            if cfg.encoder == "conv":
                self.blocks.append(SeparableBlock(cfg.d_model, cfg.kernel_sizes[i], cfg.dropout))
            else:
                kernel = cfg.kernel_sizes[i] if i < len(cfg.kernel_sizes) else 15
                self.blocks.append(ConformerBlock(cfg.d_model, cfg.n_heads, kernel, cfg.dropout))
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)

    @property
    def frame_seconds(self) -> float:
        """Seconds per output frame, for 10 ms input frames."""
        return 0.01 * self.cfg.subsampling

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, feats: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, F) and their lengths (B,) -> log-probs (B, T', V) and lengths (B,)."""
        x, out_lengths = self.subsampling(feats, lengths)  # (B, T', D)
        steps = torch.arange(x.shape[1], device=x.device)
        mask = steps[None, :] < out_lengths[:, None]  # (B, T') True on real frames
        if self.cfg.encoder == "conv":
            h = x.transpose(1, 2) * mask[:, None, :]  # (B, D, T')
            for block in self.blocks:
                h = block(h, mask[:, None, :].to(h.dtype))
            x = h.transpose(1, 2)
        else:
            for block in self.blocks:
                x = block(x, mask)
        return F.log_softmax(self.head(x).float(), dim=-1), out_lengths


def encoder_preset(encoder: str) -> ModelConfig:
    """The base model's configuration for ``encoder`` (train-base and bench.asr share it)."""
    if encoder == "conv":
        return ModelConfig()  # 256 x 10 separable convolutions, 0.87 M parameters
    if encoder == "conformer":
        return ModelConfig(encoder="conformer", d_model=144, n_layers=4, kernel_sizes=[15] * 4)
    raise ModelConfigError(f"encoder must be 'conv' or 'conformer', not {encoder!r}")
