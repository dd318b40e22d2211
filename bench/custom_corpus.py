"""The synthetic speech of ``bench.custom``, rendered once and cached under its work directory.

* the **domain** set: medical sentences (``asr.corpus.load_sentences("medical")``, templates
  over the terms of ``asr/corpora/medical.txt``) split by ``split_sentences`` into training and
  test sentences; the training side is spoken by the training voice variants, the test side by
  the held-out ones (``plan_corpus(voices="test")``), so no test sentence and no test voice is
  heard in training;
* the **general mix**: everyday sentences in training voices, drawn into every fine-tuning epoch
  against forgetting, as a training job does (``app.training.runner``: 1,000 utterances).

The training set is rendered in chunks of :data:`CHUNK` utterances from one long plan
(``plan_corpus`` draws utterance after utterance from one seeded generator, so a longer plan
starts with the same utterances): a larger ``--hours`` reuses every chunk already on disk and
renders only the ones it lacks. A chunk is reused when its manifest lists exactly its
utterances; every folder name carries a digest of what it was planned from.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from asr.corpus import load_sentences, split_sentences
from asr.synth import UtteranceSpec, plan_corpus, read_manifest, synthesize

CHUNK = 200  # utterances per cached training chunk
TEST_FRACTION = 0.2  # of the medical sentences, held out for the test set
SPLIT_SALT = "bench-custom"
# As bench/fairness.py: mostly clean dictation, a few noisy recordings (none, white, pink, babble).
NOISE_WEIGHTS = (0.85, 0.05, 0.05, 0.05)
_MIN_SECONDS_PER_UTTERANCE = 1.0  # bounds the plan's length; medical utterances run ~2-5 s


@dataclass(frozen=True)
class DomainSplit:
    train_sentences: list[str]
    test_sentences: list[str]


def domain_split() -> DomainSplit:
    train, test = split_sentences(
        load_sentences("medical"), test_fraction=TEST_FRACTION, salt=SPLIT_SALT
    )
    return DomainSplit(train, test)


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:10]


def cached(specs: Sequence[UtteranceSpec], folder: Path, *, workers: int) -> Path:
    """``folder/manifest.jsonl`` of ``specs``: rendered now unless already on disk."""
    manifest = folder / "manifest.jsonl"
    if manifest.exists():
        ids = [str(row["id"]) for row in read_manifest(manifest)]
        if ids == [spec.id for spec in specs]:
            return manifest
    return synthesize(specs, folder, workers=workers, progress=True)


def training_set(
    work: Path, sentences: Sequence[str], *, hours: float, seed: int, workers: int
) -> Path:
    """A manifest of whole training utterances adding up to at most ``hours`` (training voices,
    training sentences), cached chunk by chunk."""
    budget = hours * 3600
    longest = math.ceil(budget / _MIN_SECONDS_PER_UTTERANCE) + CHUNK
    plan = plan_corpus(
        sentences,
        n=longest,
        seed=seed,
        voices="train",
        domain="medical",
        noise_weights=NOISE_WEIGHTS,
        id_prefix="train",
    )
    root = work / f"train-{_digest(sorted(sentences), seed, NOISE_WEIGHTS, CHUNK)}"
    rows: list[dict[str, object]] = []
    seconds = 0.0
    for index in range(0, len(plan), CHUNK):
        folder = f"chunk-{index // CHUNK:04d}"
        manifest = cached(plan[index : index + CHUNK], root / folder, workers=workers)
        for row in read_manifest(manifest):
            duration = float(str(row["duration"]))
            if seconds + duration > budget:
                return _write(root / f"train-{hours:g}h.jsonl", rows)
            seconds += duration
            rows.append({**row, "audio": f"{folder}/{row['audio']}"})
    return _write(root / f"train-{hours:g}h.jsonl", rows)


def test_set(work: Path, sentences: Sequence[str], *, n: int, seed: int, workers: int) -> Path:
    """``n`` utterances of the held-out sentences in the held-out voice variants."""
    specs = plan_corpus(
        sentences,
        n=n,
        seed=seed + 100,
        voices="test",
        domain="medical",
        noise_weights=NOISE_WEIGHTS,
        id_prefix="test",
    )
    folder = work / f"test-{_digest(sorted(sentences), seed, n, NOISE_WEIGHTS)}"
    return cached(specs, folder, workers=workers)


def general_mix(work: Path, *, n: int, seed: int, workers: int) -> Path:
    """``n`` general utterances in training voices (the training job's mix: same seed rule)."""
    specs = plan_corpus(
        load_sentences("general"), n=n, seed=10_000 + seed, voices="train", id_prefix="mix"
    )
    return cached(specs, work / f"mix-{n}-{seed}", workers=workers)


def _write(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@dataclass(frozen=True)
class Archive:
    data: bytes
    pairs: int
    audio_seconds: float


def zip_archive(manifests: Sequence[Path], size: int) -> Archive:
    """A zip (stored: WAV hardly compresses) of ``name.wav`` + ``name.txt`` pairs, taken from
    the manifests in order until the archive holds ``size`` bytes."""
    buffer = io.BytesIO()
    pairs, seconds = 0, 0.0
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for manifest in manifests:
            for row in read_manifest(manifest):
                if buffer.tell() >= size:
                    break
                archive.writestr(
                    f"{row['id']}.wav", (manifest.parent / str(row["audio"])).read_bytes()
                )
                archive.writestr(f"{row['id']}.txt", str(row["text"]))
                pairs += 1
                seconds += float(str(row["duration"]))
    if buffer.tell() < size:
        raise SystemExit(
            f"only {buffer.tell()} bytes of audio for a {size}-byte archive: raise --hours"
        )
    return Archive(buffer.getvalue(), pairs, seconds)
