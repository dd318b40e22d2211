"""Synthetic speech corpus: espeak-ng voices over a grid of accents, timbres, noise and rooms.

    specs = plan_corpus(load_sentences("general"), n=16_000, seed=0, voices="train")
    manifest = synthesize(specs, Path("var/corpus/base"), workers=2)  # audio/*.wav + manifest.jsonl

Each utterance is one :class:`UtteranceSpec`; :func:`render` turns it into 16 kHz mono float32
with every random choice drawn from ``spec.seed``, so the same specs give the same bytes on
any run and any number of workers. The pipeline (measured facts in the shared ASR notes):

    espeak-ng -w tmp.wav (22,050 Hz) -> resample to 16 kHz -> warp (timbre, age) -> trim espeak's
    silence -> pad 50-300 ms each side -> peak-normalise -> room (impulse response) -> noise at a
    target SNR on active speech -> scale down if the mix clips

Attribute values come from the sample store's vocabularies: accent (six espeak English voices),
sex and age group (from the ``+variant`` timbre files, pitch and warp), noise type and SNR,
environment and RT60. :func:`voice_split` holds out about 15% of the variants, so a test set
can use timbres no training utterance was spoken in.

Throughput: ``synthesize`` rendered 200 utterances of the general corpus (every noise type and
room, 2.75 s each on average) at 30-36 utterances/s (80-100x real time) on 2 workers, 31/s on
1 worker, on two CPU cores shared with other work; the process start-up (~1 s) weighs on small
runs. espeak-ng (~15 ms a call) is most of the cost, which is why babble talkers come from a
small per-plan pool that each worker renders once.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import math
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import soundfile as sf
from scipy.signal import fftconvolve, resample_poly
from tqdm import tqdm

from durable import atomic_path, write_atomic

FloatArray = npt.NDArray[np.float32]
VoiceSplit = Literal["train", "test"]

SAMPLE_RATE = 16_000
ESPEAK_RATE = 22_050  # espeak-ng always writes 22,050 Hz mono PCM_16

ACCENT_VOICES: dict[str, tuple[str, ...]] = {
    "us": ("en-us", "en-us-nyc"),
    "rp": ("en-gb-x-rp", "en-gb"),
    "scottish": ("en-gb-scotland",),
    "caribbean": ("en-029",),
    "northern_english": ("en-gb-x-gbclan",),
    "west_midlands": ("en-gb-x-gbcwmd",),
}
SEXES = ("female", "male", "unknown")
AGE_GROUPS = ("child", "teen", "adult", "senior")
NOISE_TYPES = ("none", "white", "pink", "babble")
ENVIRONMENTS = ("dry", "room", "reverberant")

PITCH_RANGE = (20, 80)  # espeak -p
RATE_RANGE = (130, 190)  # espeak -s, words per minute
WARP_RANGE = (0.92, 1.12)  # >1 raises pitch and formants and shortens, like a smaller speaker
SNR_LIMITS = (-10.0, 50.0)
RT60_RANGES = {"room": (0.2, 0.5), "reverberant": (0.6, 1.0)}
BABBLE_TALKERS = (3, 6)
_BABBLE_POOL = 48  # distinct background talkers per plan
_BABBLE_PITCH, _BABBLE_RATE = 50, 170  # fixed, so a talker renders once per worker

# Above ~200 wpm CTC at 25 frames/s runs out of frames; the warp speeds speech up as well, so
# the perceived rate (rate_wpm * warp) is capped too.
_MAX_PERCEIVED_WPM = 190
_PAD_SECONDS = (0.05, 0.30)
_PEAK_RANGE = (0.3, 0.9)  # speaker-to-microphone level varies; the mix never clips
_DRR_DB = {"room": (4.0, 10.0), "reverberant": (0.0, 5.0)}  # direct-to-reverberant ratio
_TRIM_DB = -50.0  # espeak's lead-in and ~0.23 s tail are digital silence, well below this
_ACTIVE_DB = -35.0  # a 20 ms frame within 35 dB of the loudest is speech (SNR is set on those)
_FRAME = SAMPLE_RATE // 50
_PINK_LOW_HZ = 20.0
_VOICE_SALT = "espeak-variant:"
# Variants that are effects rather than voices (robots, echo, whisper, a speed test) would
# teach the model sounds no customer makes. Names with a space ("Mr serious") are skipped too.
_EFFECT_VARIANTS = frozenset(
    {"Demonic", "UniRobot", "anikaRobot", "announcer", "whisper", "whisperf", "fast"}
)
_GENDER_LINE = re.compile(r"^\s*gender\s+(\w+)(?:\s+(\d+))?", re.IGNORECASE | re.MULTILINE)
_NORMALISED = re.compile(r"^[a-z']+( [a-z']+)*$")  # CharTokenizer.english().normalize output
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_CHUNK = 8  # utterances per pool task: large enough to hide IPC, small for a smooth bar


class SynthError(ValueError):
    """A corpus plan or spec that cannot be rendered, or espeak-ng missing or failing."""


class ManifestError(SynthError):
    """A manifest file that cannot be read; the message names the line."""


@dataclass(frozen=True)
class Variant:
    """An espeak-ng ``+variant`` timbre and what its file says about the speaker."""

    name: str
    sex: str  # "female" | "male" | "unknown"
    age: int | None  # years, where the file gives one


@dataclass(frozen=True)
class UtteranceSpec:
    """Everything :func:`render` needs; all randomness comes from ``seed``."""

    id: str
    text: str  # normalised transcript, exactly what is spoken
    domain: str
    accent: str
    espeak_voice: str
    variant: str
    sex: str
    age_group: str
    pitch: int  # espeak -p
    rate_wpm: int  # espeak -s; the listener hears rate_wpm * warp
    warp: float
    noise_type: str
    snr_db: float | None  # on active speech; None without noise
    environment: str
    rt60: float | None  # seconds; None when dry
    babble: tuple[tuple[str, str, str], ...]  # (text, espeak voice, variant) per background talker
    seed: int
    voice_split: VoiceSplit

    def __post_init__(self) -> None:
        _check_spec(self)


def espeak_variants() -> tuple[Variant, ...]:
    """The usable ``+variant`` timbres of the installed espeak-ng, sorted by name."""
    return _variants(_espeak_data_dir())


def voice_split(variant: str, *, test_fraction: float = 0.15) -> VoiceSplit:
    """``"test"`` for a stable ~``test_fraction`` of variants (by hash), else ``"train"``."""
    digest = hashlib.sha256((_VOICE_SALT + variant).encode("utf-8")).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"


def plan_corpus(
    sentences: Sequence[str],
    *,
    n: int,
    seed: int,
    voices: Literal["train", "test", "all"] = "all",
    domain: str = "general",
    accents: Sequence[str] | None = None,
    noise_types: Sequence[str] = NOISE_TYPES,
    noise_weights: Sequence[float] | None = None,
    snr_db: tuple[float, float] = (5.0, 30.0),
    environments: Sequence[str] = ENVIRONMENTS,
    environment_weights: Sequence[float] | None = None,
    id_prefix: str = "utt",
) -> list[UtteranceSpec]:
    """``n`` specs, the same for the same arguments; sentences are reused in new voices past len.

    ``voices`` picks the variants by :func:`voice_split`; accents are drawn uniformly, noise
    types and environments by their weights (uniform when None), the SNR uniformly in ``snr_db``.
    """
    if n < 1:
        raise SynthError(f"n must be at least 1, got {n}")
    if not sentences:
        raise SynthError("no sentences to plan from")
    if not _DOMAIN.match(domain):
        raise SynthError(f"domain must be a lowercase slug like 'medical', got {domain!r}")
    accent_list = list(ACCENT_VOICES if accents is None else accents)
    _check_values("accent", accent_list, tuple(ACCENT_VOICES))
    _check_values("noise type", noise_types, NOISE_TYPES)
    _check_values("environment", environments, ENVIRONMENTS)
    noise_p = _probabilities("noise_weights", noise_weights, len(noise_types))
    env_p = _probabilities("environment_weights", environment_weights, len(environments))
    low, high = snr_db
    if not SNR_LIMITS[0] <= low <= high <= SNR_LIMITS[1]:
        raise SynthError(f"snr_db must be (low, high) within {SNR_LIMITS}, got {snr_db}")
    pool = _variant_pool(voices)
    all_voices = [voice for accent in accent_list for voice in ACCENT_VOICES[accent]]

    rng = np.random.default_rng(seed)
    # Background talkers come from a small pool, so a worker speaks each once (see _talker).
    babble_pool = [
        (
            sentences[int(rng.integers(len(sentences)))],
            all_voices[int(rng.integers(len(all_voices)))],
            pool[int(rng.integers(len(pool)))].name,
        )
        for _ in range(_BABBLE_POOL)
    ]
    order: list[int] = []
    specs = []
    for i in range(n):
        if not order:  # a fresh shuffle per pass, so a reused sentence meets new voices
            order = rng.permutation(len(sentences)).tolist()
        text = sentences[order.pop()]
        accent = accent_list[int(rng.integers(len(accent_list)))]
        voices_of_accent = ACCENT_VOICES[accent]
        variant = pool[int(rng.integers(len(pool)))]
        pitch = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
        warp = round(float(rng.uniform(*WARP_RANGE)), 2)
        max_rate = min(RATE_RANGE[1], math.floor(_MAX_PERCEIVED_WPM / warp))
        noise_type = noise_types[int(rng.choice(len(noise_types), p=noise_p))]
        environment = environments[int(rng.choice(len(environments), p=env_p))]
        babble: tuple[tuple[str, str, str], ...] = ()
        if noise_type == "babble":
            talkers = int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1))
            picks = rng.choice(len(babble_pool), size=talkers, replace=False)
            babble = tuple(babble_pool[int(k)] for k in picks)
        spec = UtteranceSpec(
            id=f"{id_prefix}-{i:06d}",
            text=text,
            domain=domain,
            accent=accent,
            espeak_voice=voices_of_accent[int(rng.integers(len(voices_of_accent)))],
            variant=variant.name,
            sex=variant.sex,
            age_group=_age_group(variant.age, pitch, warp),
            pitch=pitch,
            rate_wpm=int(rng.integers(RATE_RANGE[0], max_rate + 1)),
            warp=warp,
            noise_type=noise_type,
            snr_db=None if noise_type == "none" else round(float(rng.uniform(low, high)), 1),
            environment=environment,
            rt60=_draw_rt60(environment, rng),
            babble=babble,
            seed=int(rng.integers(2**31)),
            voice_split=voice_split(variant.name),
        )
        specs.append(spec)
    return specs


def render(spec: UtteranceSpec) -> FloatArray:
    """The utterance as 16 kHz mono float32 in [-1, 1], (N,); the same array for the same spec."""
    known = {v.name for v in espeak_variants()}
    for variant in (spec.variant, *(talker[2] for talker in spec.babble)):
        if variant not in known:  # espeak-ng would silently fall back to its default timbre
            raise SynthError(f"unknown espeak-ng variant {variant!r}")
    rng = np.random.default_rng(spec.seed)
    speech = _speak(spec.text, spec.espeak_voice, spec.variant, spec.pitch, spec.rate_wpm)
    speech = _trim(_warp(speech, spec.warp))
    head, tail = (round(s * SAMPLE_RATE) for s in rng.uniform(*_PAD_SECONDS, size=2))
    speech = np.concatenate([np.zeros(head), speech, np.zeros(tail)])  # float64 from here on
    peak = float(rng.uniform(*_PEAK_RANGE))
    speech *= peak / np.abs(speech).max()
    if spec.rt60 is not None:
        rir = _room_impulse_response(spec.rt60, spec.environment, rng)
        speech = fftconvolve(speech, rir)[: len(speech)]
        speech *= peak / np.abs(speech).max()
    if spec.snr_db is not None:
        noise = _noise(spec, len(speech), rng)
        gain = math.sqrt(_active_power(speech) / (np.mean(noise**2) * 10 ** (spec.snr_db / 10)))
        speech = speech + gain * noise
    loudest = float(np.abs(speech).max())
    if loudest > 1.0:  # scaling the whole mix keeps its SNR
        speech /= loudest
    return speech.astype(np.float32)


def synthesize(
    specs: Sequence[UtteranceSpec], out_dir: Path, *, workers: int = 2, progress: bool = True
) -> Path:
    """Render ``specs`` to ``out_dir/audio/{id}.wav`` (PCM_16) and return ``manifest.jsonl``.

    The manifest has one JSON object per spec, in spec order: id, audio (relative to
    ``out_dir``), text, duration, sample_rate and the spec's attributes (not the babble talkers).
    It is written last, by rename, so a manifest on disk always lists finished audio.
    """
    if workers < 1:
        raise SynthError(f"workers must be at least 1, got {workers}")
    ids = [spec.id for spec in specs]
    bad = [i for i in ids if not _SAFE_ID.match(i)]
    if bad:
        raise SynthError(f"utterance ids must be file-name safe ([A-Za-z0-9._-]), got {bad[0]!r}")
    if len(set(ids)) != len(ids):
        raise SynthError("utterance ids must be unique")
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    chunks = [list(specs[i : i + _CHUNK]) for i in range(0, len(specs), _CHUNK)]
    frames: dict[str, int] = {}
    with tqdm(
        total=len(specs), desc="synthesize", unit="utt", file=sys.stderr, disable=not progress
    ) as bar:
        if workers == 1:
            for chunk in chunks:
                frames.update(_render_chunk(chunk, audio_dir))
                bar.update(len(chunk))
        else:
            # spawn, not fork: the caller may hold torch/OpenMP threads that a fork would copy
            # mid-lock; the workers only need numpy, scipy and espeak-ng.
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = {pool.submit(_render_chunk, chunk, audio_dir): chunk for chunk in chunks}
                try:
                    for future in concurrent.futures.as_completed(futures):
                        frames.update(future.result())
                        bar.update(len(futures[future]))
                except BaseException:
                    pool.shutdown(cancel_futures=True)  # one failure: do not render the rest
                    raise

    manifest = out_dir / "manifest.jsonl"
    lines = [json.dumps(_manifest_row(spec, frames[spec.id])) + "\n" for spec in specs]
    write_atomic(manifest, "".join(lines).encode("utf-8"), mode=0o600, fsync=False)
    return manifest


def read_manifest(path: Path) -> list[dict[str, object]]:
    """The rows of a JSONL manifest; :class:`ManifestError` names the first bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} does not exist") from None
    except UnicodeDecodeError:
        raise ManifestError(f"manifest {path} is not UTF-8 text") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise ManifestError(f"{path}:{number}: expected a JSON object per line")
        missing = [key for key in ("id", "audio", "text") if key not in row]
        if missing:
            raise ManifestError(f"{path}:{number}: missing {', '.join(missing)}")
        rows.append(row)
    return rows


def _render_chunk(specs: list[UtteranceSpec], audio_dir: Path) -> dict[str, int]:
    """Render and write each spec (temp file + rename); frames written per id."""
    frames = {}
    for spec in specs:
        samples = render(spec)
        path = audio_dir / f"{spec.id}.wav"
        with atomic_path(path, mode=0o644, fsync=False) as partial:
            sf.write(partial, samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
        frames[spec.id] = len(samples)
    return frames


def _manifest_row(spec: UtteranceSpec, frames: int) -> dict[str, object]:
    attributes = dataclasses.asdict(spec)
    for key in ("id", "text", "babble"):
        del attributes[key]
    return {
        "id": spec.id,
        "audio": f"audio/{spec.id}.wav",
        "text": spec.text,
        "duration": round(frames / SAMPLE_RATE, 4),
        "sample_rate": SAMPLE_RATE,
        **attributes,
    }


def _speak(text: str, voice: str, variant: str, pitch: int, rate: int) -> npt.NDArray[np.float64]:
    """espeak-ng's rendering of ``text`` at 16 kHz, (N,) float64."""
    handle, name = tempfile.mkstemp(suffix=".wav", prefix="espeak-")
    os.close(handle)
    try:
        # -w, not --stdout: a piped WAV carries a placeholder size in its header.
        command = ["espeak-ng", "-v", f"{voice}+{variant}", "-p", str(pitch), "-s", str(rate)]
        result = subprocess.run(
            [*command, "-w", name, "--", text], capture_output=True, check=False
        )
        if result.returncode != 0:
            message = result.stderr.decode("utf-8", "replace").strip()
            raise SynthError(f"espeak-ng failed for voice {voice}+{variant}: {message}")
        pcm, rate_read = sf.read(name, dtype="float64")
    finally:
        os.unlink(name)
    if rate_read != ESPEAK_RATE or len(pcm) == 0:
        raise SynthError(f"espeak-ng wrote {len(pcm)} samples at {rate_read} Hz for {text!r}")
    return np.asarray(resample_poly(pcm, 320, 441), dtype=np.float64)  # 22,050 -> 16,000 Hz


def _warp(speech: npt.NDArray[np.float64], warp: float) -> npt.NDArray[np.float64]:
    """Resample by 1/warp and play at 16 kHz: frequencies scale by warp, duration by 1/warp."""
    step = round(warp * 100)
    common = math.gcd(100, step)
    return np.asarray(resample_poly(speech, 100 // common, step // common), dtype=np.float64)


def _trim(speech: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Cut espeak's leading and trailing silence, keeping 5 ms / 10 ms of margin."""
    loud = np.flatnonzero(np.abs(speech) > np.abs(speech).max() * 10 ** (_TRIM_DB / 20))
    if len(loud) == 0:
        raise SynthError("espeak-ng produced silence")
    start = max(0, int(loud[0]) - SAMPLE_RATE // 200)
    return speech[start : int(loud[-1]) + SAMPLE_RATE // 100]


def _active_power(speech: npt.NDArray[np.float64]) -> float:
    """Mean power of the 20 ms frames within 35 dB of the loudest: speech, not the pauses."""
    frames = len(speech) // _FRAME
    if frames == 0:
        return float(np.mean(speech**2))
    power = np.square(speech[: frames * _FRAME]).reshape(frames, _FRAME).mean(axis=1)  # (frames,)
    return float(power[power >= power.max() * 10 ** (_ACTIVE_DB / 10)].mean())


def _room_impulse_response(
    rt60: float, environment: str, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """A direct path plus exponentially decaying noise reaching -60 dB at ``rt60`` s, (L,)."""
    length = round(rt60 * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-3.0 * math.log(10.0) * t / rt60)
    tail[: round(float(rng.uniform(0.003, 0.015)) * SAMPLE_RATE)] = 0.0  # first reflection delay
    drr_db = float(rng.uniform(*_DRR_DB[environment]))
    tail *= math.sqrt(10 ** (-drr_db / 10) / float(np.sum(tail**2)))  # direct path has energy 1
    tail[0] = 1.0
    return tail


def _noise(spec: UtteranceSpec, length: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    if spec.noise_type == "white":
        return rng.standard_normal(length)
    if spec.noise_type == "pink":
        spectrum = np.fft.rfft(rng.standard_normal(length))
        frequencies = np.fft.rfftfreq(length, d=1.0 / SAMPLE_RATE)
        return np.fft.irfft(spectrum / np.sqrt(np.maximum(frequencies, _PINK_LOW_HZ)), length)
    return _babble(spec.babble, length, rng)


def _babble(
    talkers: Sequence[tuple[str, str, str]], length: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Other voices talking at once, each looped from a random offset at equal level, (length,)."""
    if not talkers:
        raise SynthError("babble noise needs at least one background talker")
    mix = np.zeros(length)
    for talker in talkers:
        talk = _talker(*talker)
        looped = np.tile(talk, length // len(talk) + 2)
        offset = int(rng.integers(len(talk)))
        mix += looped[offset : offset + length]
    return mix


@functools.lru_cache(maxsize=4 * _BABBLE_POOL)
def _talker(text: str, voice: str, variant: str) -> npt.NDArray[np.float64]:
    """A background talker at unit active power, (N,); cached because plans reuse them."""
    talk = _trim(_speak(text, voice, variant, _BABBLE_PITCH, _BABBLE_RATE))
    talk = talk / math.sqrt(_active_power(talk))
    talk.flags.writeable = False  # shared by every later call
    return talk


def _variant_pool(voices: str) -> list[Variant]:
    if voices not in ("train", "test", "all"):
        raise SynthError(f"voices must be 'train', 'test' or 'all', got {voices!r}")
    pool = [v for v in espeak_variants() if voices == "all" or voice_split(v.name) == voices]
    if not pool:
        raise SynthError(f"no espeak-ng variants in the {voices!r} voice split")
    return pool


def _draw_rt60(environment: str, rng: np.random.Generator) -> float | None:
    if environment == "dry":
        return None
    return round(float(rng.uniform(*RT60_RANGES[environment])), 2)


def _age_group(age: int | None, pitch: int, warp: float) -> str:
    """Senior from the variant's age; child or teen when the timbre is raised and high."""
    if age is not None and age >= 60:
        return "senior"
    if warp > 1.06 and pitch >= 60:
        return "child" if warp >= 1.09 and pitch >= 70 else "teen"
    return "adult"


def _check_values(what: str, values: Sequence[str], allowed: tuple[str, ...]) -> None:
    if not values:
        raise SynthError(f"at least one {what} is needed")
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise SynthError(f"unknown {what} {unknown[0]!r}; known: {', '.join(allowed)}")


def _probabilities(
    name: str, weights: Sequence[float] | None, size: int
) -> npt.NDArray[np.float64]:
    if weights is None:
        return np.full(size, 1.0 / size)
    array = np.asarray(weights, dtype=np.float64)
    if array.shape != (size,) or not np.isfinite(array).all() or (array < 0).any():
        raise SynthError(f"{name} must be {size} non-negative numbers, got {list(weights)}")
    if array.sum() == 0:
        raise SynthError(f"{name} must not all be zero")
    return np.asarray(array / array.sum(), dtype=np.float64)


def _check_spec(spec: UtteranceSpec) -> None:
    """Refuse a spec outside the vocabularies and ranges (a hand-made one, or a damaged plan)."""
    for text in (spec.text, *(talker[0] for talker in spec.babble)):
        if not _NORMALISED.match(text):
            raise SynthError(
                f"{spec.id}: text must be normalised (lowercase words, apostrophes, single "
                f"spaces) so the transcript is what is spoken, got {text!r}"
            )
    if spec.espeak_voice not in ACCENT_VOICES.get(spec.accent, ()):
        raise SynthError(
            f"{spec.id}: voice {spec.espeak_voice!r} is not one of accent {spec.accent!r}"
        )
    for name, value, allowed in (
        ("sex", spec.sex, SEXES),
        ("age_group", spec.age_group, AGE_GROUPS),
        ("noise_type", spec.noise_type, NOISE_TYPES),
        ("environment", spec.environment, ENVIRONMENTS),
        ("voice_split", spec.voice_split, ("train", "test")),
    ):
        if value not in allowed:
            raise SynthError(f"{spec.id}: {name} {value!r} is not one of {', '.join(allowed)}")
    if not PITCH_RANGE[0] <= spec.pitch <= PITCH_RANGE[1]:
        raise SynthError(f"{spec.id}: pitch {spec.pitch} is outside {PITCH_RANGE}")
    if not RATE_RANGE[0] <= spec.rate_wpm <= RATE_RANGE[1]:
        raise SynthError(f"{spec.id}: rate {spec.rate_wpm} wpm is outside {RATE_RANGE}")
    if not WARP_RANGE[0] <= spec.warp <= WARP_RANGE[1]:
        raise SynthError(f"{spec.id}: warp {spec.warp} is outside {WARP_RANGE}")
    if (spec.noise_type == "none") != (spec.snr_db is None):
        raise SynthError(f"{spec.id}: snr_db must be given exactly when there is noise")
    if spec.snr_db is not None and not SNR_LIMITS[0] <= spec.snr_db <= SNR_LIMITS[1]:
        raise SynthError(f"{spec.id}: snr_db {spec.snr_db} is outside {SNR_LIMITS}")
    if (spec.noise_type == "babble") != bool(spec.babble):
        raise SynthError(f"{spec.id}: babble talkers must be given exactly for babble noise")
    if spec.environment == "dry":
        if spec.rt60 is not None:
            raise SynthError(f"{spec.id}: a dry environment has no rt60")
    elif spec.rt60 is None or not 0.05 <= spec.rt60 <= 3.0:
        raise SynthError(f"{spec.id}: {spec.environment} needs an rt60 in 0.05..3 s")


@functools.cache
def _espeak_data_dir() -> Path:
    """Where espeak-ng keeps its voices (``--version`` says: "Data at: ...")."""
    try:
        result = subprocess.run(
            ["espeak-ng", "--version"], capture_output=True, text=True, check=True
        )
    except (FileNotFoundError, subprocess.CalledProcessError):
        raise SynthError(
            "espeak-ng is not installed: install the Debian package espeak-ng "
            "(`make install` installs it)"
        ) from None
    match = re.search(r"Data at:\s*(\S+)", result.stdout)
    if match is None:
        raise SynthError(f"cannot find espeak-ng's data folder in {result.stdout.strip()!r}")
    return Path(match.group(1))


@functools.cache
def _variants(data_dir: Path) -> tuple[Variant, ...]:
    """Parse each ``voices/!v`` file's ``gender <sex> [age]`` line once."""
    folder = data_dir / "voices" / "!v"
    if not folder.is_dir():
        raise SynthError(f"espeak-ng has no variant folder at {folder}")
    variants = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        name = path.name
        if not path.is_file() or name in _EFFECT_VARIANTS or "robo" in name.lower() or " " in name:
            continue
        match = _GENDER_LINE.search(path.read_text(encoding="latin-1"))
        sex = "unknown"
        age = None
        if match is not None:
            sex = match.group(1).lower() if match.group(1).lower() in SEXES else "unknown"
            age = int(match.group(2)) if match.group(2) else None
        variants.append(Variant(name=name, sex=sex, age=age))
    if not variants:
        raise SynthError(f"no espeak-ng variants in {folder}")
    return tuple(variants)
