"""Log-mel features with plain torch (no torchaudio), normalised per utterance.

    fx = LogMel()                     # 16 kHz, 25 ms windows, 10 ms hop, 64 mel bands
    feats = fx(torch.from_numpy(samples))   # (T, 64) float32, T = 1 + len(samples) // 160

Per-utterance mean/variance normalisation makes the model indifferent to the input gain, which
varies a lot between customers' microphones (and between the synthetic corpus's noise levels).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = 16_000  # the rate asr.audio.decode produces
    n_fft: int = 400  # 25 ms analysis window
    hop_length: int = 160  # 10 ms between frames
    n_mels: int = 64  # mel bands; 64 is plenty for 8 kHz of speech bandwidth
    f_min: float = 20.0
    f_max: float = 7_600.0

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @property
    def frame_seconds(self) -> float:
        return self.hop_length / self.sample_rate


def mel_filterbank(cfg: FeatureConfig) -> torch.Tensor:
    """Triangular HTK-style mel filters, (n_fft // 2 + 1, n_mels)."""

    def hz_to_mel(hz: float) -> float:
        return 2595.0 * math.log10(1.0 + hz / 700.0)

    mels = torch.linspace(hz_to_mel(cfg.f_min), hz_to_mel(cfg.f_max), cfg.n_mels + 2)
    hz = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    bins = torch.linspace(0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)
    lower, center, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]  # (M, 1)
    rising = (bins[None, :] - lower) / (center - lower)
    falling = (upper - bins[None, :]) / (upper - center)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).T.contiguous()


class LogMel(torch.nn.Module):
    """Waveform (N,) or (B, N) -> normalised log-mel (T, F) or (B, T, F)."""

    def __init__(self, cfg: FeatureConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or FeatureConfig()
        self.window: torch.Tensor
        self.filters: torch.Tensor
        self.register_buffer("window", torch.hann_window(self.cfg.n_fft), persistent=False)
        self.register_buffer("filters", mel_filterbank(self.cfg), persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        single = waveform.dim() == 1
        x = waveform[None] if single else waveform  # (B, N)
        spec = torch.stft(
            x.float(),
            self.cfg.n_fft,
            hop_length=self.cfg.hop_length,
            window=self.window,
            center=True,
            return_complex=True,
        )  # (B, n_fft//2+1, T)
        power = spec.real**2 + spec.imag**2
        mel = torch.matmul(power.transpose(1, 2), self.filters)  # (B, T, F)
        logmel = torch.log(mel + 1e-6)
        mean = logmel.mean(dim=1, keepdim=True)
        std = logmel.std(dim=1, keepdim=True).clamp(min=1e-3)
        out = (logmel - mean) / std
        return out[0] if single else out

    def num_frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.cfg.hop_length
