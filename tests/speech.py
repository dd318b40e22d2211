"""Real speech and noise for tests: espeak-ng renders the speech, numpy makes the noise.

    wav = synth_speech("The quick brown fox.")          # WAV bytes, 22050 Hz mono PCM_16
    noisy = mix_at_snr(speech, white_noise(len(speech), seed=1), snr_db=10.0)

SNR convention (shared with ``asr.snr.estimate_snr_db``): *whole-signal* power — the mean square
of the whole speech array, pauses included, over the mean square of the noise.
"""

from __future__ import annotations

import functools
import subprocess

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@functools.lru_cache(maxsize=64)
def synth_speech(text: str, *, voice: str = "en-us", speed: int = 160, pitch: int = 50) -> bytes:
    """WAV bytes (22050 Hz, mono, PCM_16) of ``text`` spoken by espeak-ng.

    espeak-ng writes its WAV to a pipe, so the header's data size is a streaming placeholder
    (0x7FFFF000) rather than the real length; decoders must read to the end of the bytes.
    """
    command = ["espeak-ng", "--stdout", "-v", voice, "-s", str(speed), "-p", str(pitch), text]
    return subprocess.run(command, check=True, capture_output=True).stdout


def white_noise(n: int, seed: int) -> FloatArray:
    """``n`` samples of unit-variance Gaussian white noise, reproducible from ``seed``."""
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def pink_noise(n: int, seed: int, *, sample_rate: int = 16_000, low_hz: float = 20.0) -> FloatArray:
    """``n`` samples of unit-variance pink (1/f power) noise, flat below ``low_hz``.

    Made by scaling white noise's spectrum by 1/sqrt(f). Like test-signal pink noise it stops
    at the bottom of the audible band: an unbounded 1/f would put most of its power in
    sub-audible rumble that no microphone chain passes.
    """
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    frequencies = np.fft.rfftfreq(n, d=1.0 / sample_rate)
    noise = np.fft.irfft(spectrum / np.sqrt(np.maximum(frequencies, low_hz)), n)
    return np.asarray(noise / noise.std(), dtype=np.float32)


def mix_at_snr(speech: npt.ArrayLike, noise: npt.ArrayLike, snr_db: float) -> FloatArray:
    """``speech`` plus ``noise`` scaled to ``snr_db`` (whole-signal power, see module docstring).

    ``noise`` must be at least as long as ``speech``; its head is used. If the mix would clip
    it is scaled down as a whole, which leaves the SNR unchanged.
    """
    clean = np.asarray(speech, dtype=np.float64)
    background = np.asarray(noise, dtype=np.float64)
    if clean.ndim != 1 or background.ndim != 1:
        raise ValueError("speech and noise must be mono (N,) arrays")
    if len(background) < len(clean):
        raise ValueError(f"noise has {len(background)} samples, speech {len(clean)}")
    background = background[: len(clean)]
    speech_power = np.mean(clean**2)
    noise_power = np.mean(background**2)
    if speech_power == 0.0 or noise_power == 0.0:
        raise ValueError("speech and noise must both have non-zero power")
    gain = np.sqrt(speech_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    mixed = clean + gain * background
    peak = np.abs(mixed).max()
    if peak > 1.0:
        mixed /= peak
    return np.asarray(mixed, dtype=np.float32)
