"""Blind (no-reference) signal-to-noise ratio of speech, measured on the way in.

SNR here is the *whole-signal* ratio: mean speech power over the whole clip (pauses included)
over mean noise power, in dB — the quantity ``tests/speech.py::mix_at_snr`` sets.

    estimate_snr_db(audio.samples, audio.sample_rate)  # e.g. 12.3, or None for silence

:func:`estimate_snr_db` (used by the service) reads the noise floor from the quietest frames, so
it needs pauses: it assumes at least ~5 % of the clip is non-speech (lead-in, gaps). Without any
pause it under-estimates high SNRs (the quietest speech is taken for noise). Measured on espeak-ng
speech (20 clips, 2.8-6.5 s, four voices) in white and pink noise, its error is within ±0.6 dB
(white) and ±1.7 dB (pink) from 0 to 20 dB and within ±3.4 dB at 30 dB.

:func:`wada_snr_db` is WADA-SNR (Kim & Stern, "Robust signal-to-noise ratio estimation based on
waveform amplitude distribution analysis", Interspeech 2008), the usual blind estimator. It needs
no pauses but was less accurate on the same clips (within ±2.8 dB from 0 to 10 dB, ±6.4 dB at
20 dB, ±12 dB at 30 dB), so it is kept only as a reference.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
from scipy import special, stats

MIN_SNR_DB = -10.0
MAX_SNR_DB = 50.0
MIN_SECONDS = 0.5  # shorter clips have too few frames for a noise floor

_HOP_SECONDS = 0.016
_HOPS_PER_FRAME = 4  # 64 ms frames: long enough that coloured noise has a steady frame power
_NOISE_PERCENTILE = 5.0

_WADA_SPEECH_SHAPE = 0.4  # gamma shape of clean speech amplitudes (Kim & Stern 2008)
_WADA_DB_GRID = np.arange(-20.0, 101.0)  # the table's SNRs, as in the paper's reference code
_WADA_QUANTILES = 4000
_WADA_FLOOR = 1e-10


def estimate_snr_db(samples: npt.ArrayLike, sample_rate: int) -> float | None:
    """Whole-signal SNR in dB, clipped to [MIN_SNR_DB, MAX_SNR_DB]; None if silent or too short.

    Noise power is the 5th percentile of 64 ms frame powers (hop 16 ms); speech power is the
    mean frame power minus that floor. Digitally silent pauses count as noise-free, so clean
    espeak-ng speech reads 35-50 dB. A 30 s clip takes about 3 ms.
    """
    signal = _as_mono(samples, sample_rate)
    hop = max(1, round(_HOP_SECONDS * sample_rate))
    if len(signal) < MIN_SECONDS * sample_rate or len(signal) < hop * _HOPS_PER_FRAME:
        return None
    signal = signal - signal.mean()  # a DC offset is neither speech nor noise
    hops = len(signal) // hop
    hop_energy = np.square(signal[: hops * hop]).reshape(hops, hop).sum(axis=1)  # (hops,)
    frame_power = np.convolve(hop_energy, np.ones(_HOPS_PER_FRAME), "valid") / (
        hop * _HOPS_PER_FRAME
    )  # (frames,)
    mean_power = float(frame_power.mean())
    if mean_power == 0.0:
        return None
    noise_power = float(np.percentile(frame_power, _NOISE_PERCENTILE))
    speech_power = mean_power - noise_power
    if noise_power <= 0.0:
        return MAX_SNR_DB
    if speech_power <= 0.0:
        return MIN_SNR_DB
    return _clip_db(10.0 * np.log10(speech_power / noise_power))


def wada_snr_db(samples: npt.ArrayLike, sample_rate: int) -> float | None:
    """WADA-SNR in dB (Kim & Stern 2008), clipped like :func:`estimate_snr_db`.

    Models clean speech amplitudes as gamma-distributed (shape 0.4) and noise as Gaussian, and
    inverts G(SNR) = log E|z| - E log|z| of their sum, measured on the clip.
    """
    signal = _as_mono(samples, sample_rate)
    if len(signal) < MIN_SECONDS * sample_rate:
        return None
    peak = float(np.abs(signal).max())
    if peak == 0.0:
        return None
    magnitude = np.maximum(np.abs(signal) / peak, _WADA_FLOOR)
    statistic = np.log(magnitude.mean()) - np.log(magnitude).mean()
    return _clip_db(float(np.interp(statistic, _wada_table(), _WADA_DB_GRID)))


@functools.cache
def _wada_table() -> npt.NDArray[np.float64]:
    """G(SNR) on ``_WADA_DB_GRID``, computed from the model instead of the paper's table.

    Per SNR: speech s ~ Gamma(0.4, scale b) with E[s^2] = SNR and unit Gaussian noise n, so
    E|s+n| and E log|s+n| are averages over 4000 gamma quantiles of closed forms for a fixed
    s = a: E|a+n| is the folded-normal mean, and E log|a+n| starts at -(euler_gamma + ln 2)/2
    for a = 0 and has slope sqrt(2) * D(a / sqrt(2)) (D = Dawson's function, which gives the
    principal value of E[1/(a+n)]). Agrees with the table published with the paper's code to
    0.006 (about 0.2 dB) across -20..100 dB.
    """
    grid = np.linspace(0.0, 12.0, 12_001)
    slope = np.sqrt(2.0) * special.dawsn(grid / np.sqrt(2.0))
    steps = np.diff(grid) * (slope[1:] + slope[:-1]) / 2.0
    log_mean_grid = -(np.euler_gamma + np.log(2.0)) / 2.0 + np.concatenate(
        ([0.0], np.cumsum(steps))
    )

    def expected_log_abs(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        # Past a = 12 the noise never flips the sign: log a + E log(1 + n/a), by its series.
        far = np.maximum(a, 12.0)
        asymptotic = np.log(far) - 1.0 / (2.0 * far**2) - 3.0 / (4.0 * far**4)
        near = np.interp(a, grid, log_mean_grid)
        return np.asarray(np.where(a > 12.0, asymptotic, near), dtype=np.float64)

    def expected_abs(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        folded = np.sqrt(2.0 / np.pi) * np.exp(-(a**2) / 2.0) + a * special.erf(a / np.sqrt(2.0))
        return np.asarray(folded, dtype=np.float64)

    quantiles = (np.arange(_WADA_QUANTILES) + 0.5) / _WADA_QUANTILES
    unit_speech = stats.gamma.ppf(quantiles, _WADA_SPEECH_SHAPE)  # (Q,), scale 1
    shape = _WADA_SPEECH_SHAPE
    scale = np.sqrt(10.0 ** (_WADA_DB_GRID / 10.0) / (shape * (shape + 1.0)))  # (S,)
    amplitude = scale[:, None] * unit_speech[None, :]  # (S, Q)
    table = np.log(expected_abs(amplitude).mean(axis=1)) - expected_log_abs(amplitude).mean(axis=1)
    return np.asarray(table, dtype=np.float64)


def _as_mono(samples: npt.ArrayLike, sample_rate: int) -> npt.NDArray[np.float64]:
    signal = np.asarray(samples, dtype=np.float64)
    if signal.ndim != 1:
        raise ValueError(f"samples must be mono (N,), got shape {signal.shape}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if not np.isfinite(signal).all():
        raise ValueError("samples contain NaN or infinite values")
    return signal


def _clip_db(value: float) -> float:
    return float(min(MAX_SNR_DB, max(MIN_SNR_DB, value)))
