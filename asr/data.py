"""Training data in memory: utterances as fp16 log-mel features plus labels, and batching.

    utts = load_utterances(Path("corpus/manifest.jsonl"), tokenizer=tok)
    for batch in length_batches(utts, max_frames=4000, seed=0, epoch=1): ...

Features are kept in fp16 (~58 MB per audio hour at 64 mel bands), so a base-model corpus
of tens of thousands of utterances fits in a few GB and every epoch skips decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from asr.audio import TARGET_RATE, decode
from asr.features import LogMel
from asr.synth import ManifestError, read_manifest
from asr.tokenizer import CharTokenizer


class DataError(ValueError):
    """A manifest or audio file that cannot be used for training."""


@dataclass
class Utterance:
    id: str
    text: str  # normalised transcript
    feats: torch.Tensor  # (T, F) float16
    labels: torch.Tensor  # (L,) int32 token ids
    attributes: dict[str, object] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.feats.shape[0])


@dataclass
class Batch:
    feats: torch.Tensor  # (B, T, F) float32, zero padded
    feat_lengths: torch.Tensor  # (B,)
    labels: torch.Tensor  # (sum L,) concatenated targets for ctc_loss
    label_lengths: torch.Tensor  # (B,)
    texts: list[str]
    ids: list[str]


def read_manifest_rows(path: Path) -> list[dict[str, object]]:
    """The rows of a JSONL manifest (``asr.synth.read_manifest``), as :class:`DataError`."""
    try:
        return read_manifest(path)
    except ManifestError as err:
        raise DataError(str(err)) from None


def load_utterances(
    manifest: Path,
    *,
    tokenizer: CharTokenizer,
    featurizer: LogMel | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> list[Utterance]:
    """Every row of a JSONL manifest (paths relative to its folder) as an :class:`Utterance`."""
    featurizer = featurizer or LogMel()
    rows = read_manifest_rows(manifest)[:limit]
    utterances = []
    for row in tqdm(rows, desc=f"features {manifest.parent.name}", disable=not progress):
        audio_path = manifest.parent / str(row["audio"])
        samples = _read_audio(audio_path)
        text = tokenizer.normalize(str(row["text"]))
        if not text:
            raise DataError(f"{audio_path}: empty transcript after normalisation")
        with torch.no_grad():
            feats = featurizer(torch.from_numpy(samples)).to(torch.float16)
        labels = torch.tensor(tokenizer.encode(text), dtype=torch.int32)
        attributes = {k: v for k, v in row.items() if k not in {"audio", "text"}}
        utterances.append(
            Utterance(str(row.get("id", audio_path.stem)), text, feats, labels, attributes)
        )
    return utterances


def _read_audio(path: Path) -> np.ndarray:
    try:
        samples, rate = sf.read(path, dtype="float32", always_2d=True)
    except (OSError, RuntimeError) as err:
        raise DataError(f"{path}: cannot read audio ({err})") from None
    if rate == TARGET_RATE:
        return np.ascontiguousarray(samples.mean(axis=1), dtype=np.float32)
    return decode(path.read_bytes()).samples  # other rates: resample like a request would


def length_batches(
    utterances: Sequence[Utterance], *, max_frames: int, seed: int, epoch: int
) -> list[list[int]]:
    """Indices grouped by similar length so padding stays small; batch order shuffled.

    A batch holds at most ``max_frames`` padded input frames (longest utterance times batch size).
    Lengths get a little seeded jitter before sorting, so batches differ between epochs.
    """
    rng = np.random.default_rng([seed, epoch])
    lengths = np.array([u.num_frames for u in utterances], dtype=np.float64)
    order = np.argsort(lengths * rng.uniform(0.9, 1.1, size=len(lengths)), kind="stable")
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order.tolist():
        longest_if_added = max(longest, utterances[index].num_frames)
        if current and longest_if_added * (len(current) + 1) > max_frames:
            batches.append(current)
            current, longest_if_added = [], utterances[index].num_frames
        current.append(index)
        longest = longest_if_added
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def collate(utterances: Sequence[Utterance]) -> Batch:
    longest = max(u.num_frames for u in utterances)
    n_mels = utterances[0].feats.shape[1]
    feats = torch.zeros(len(utterances), longest, n_mels)
    for i, u in enumerate(utterances):
        feats[i, : u.num_frames] = u.feats.float()
    return Batch(
        feats=feats,
        feat_lengths=torch.tensor([u.num_frames for u in utterances]),
        labels=torch.cat([u.labels for u in utterances]).long(),
        label_lengths=torch.tensor([len(u.labels) for u in utterances]),
        texts=[u.text for u in utterances],
        ids=[u.id for u in utterances],
    )
