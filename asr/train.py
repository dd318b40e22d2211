"""Train a CTC model: ``train(cfg)`` reads top to bottom, on CPU, one GPU or under torchrun.

    cfg = TrainConfig(train_manifests=[Path("corpus/train/manifest.jsonl")], out_dir=Path("run"))
    result = train(cfg)  # result.checkpoint, result.valid_wer

CPU runs are budgeted in minutes (``max_minutes``); the schedule follows whichever of the step and
time budgets runs out first. ``torchrun --nproc_per_node N -m asr.train ...`` runs the same loop
with DistributedDataParallel: each rank takes every N-th batch, rank 0 evaluates and saves.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jiwer
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from asr.augment import AugmentConfig, augment
from asr.data import Utterance, collate, length_batches, load_utterances
from asr.features import FeatureConfig, LogMel
from asr.model import CTCModel, ModelConfig
from asr.tokenizer import CharTokenizer

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    train_manifests: list[Path] = field(default_factory=list)  # JSONL manifests (asr.synth)
    valid_manifest: Path | None = None  # held-out set scored during training
    out_dir: Path = Path("run")  # checkpoint.pt goes here
    model: ModelConfig = field(default_factory=ModelConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # off unless set (asr.augment)
    init_from: Path | None = None  # a checkpoint to fine-tune from (weights only)
    mix_manifest: Path | None = None  # general data mixed into every epoch (against forgetting)
    mix_fraction: float = 0.3  # share of each epoch drawn afresh from mix_manifest
    max_minutes: float | None = 10.0  # wall-clock budget; None: steps only
    max_steps: int | None = None  # step budget; None: time only
    lr: float = 5e-3  # peak learning rate (AdamW); measured best for the conv model on CPU
    min_lr_ratio: float = 0.05  # cosine decay floor, as a fraction of lr
    warmup_steps: int = 200  # short linear warm-up
    weight_decay: float = 1e-3
    batch_frames: int = 4000  # padded input frames per batch (length-bucketed)
    grad_clip: float = 1.0  # global gradient norm clip
    eval_every: int = 500  # steps between evaluations/checkpoints
    eval_utterances: int = 300  # validation utterances scored at each evaluation
    seed: int = 1337
    device: str = "auto"  # "auto" picks CUDA when present
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    threads: int | None = None  # torch CPU threads; None leaves torch's default
    resume: bool = True  # continue from out_dir/checkpoint.pt when it exists
    progress: bool = True  # a tqdm bar on stderr (rank 0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()} | {
            "train_manifests": [str(p) for p in self.train_manifests]
        }


@dataclass
class TrainResult:
    checkpoint: Path
    steps: int
    seconds: float
    utterances_per_second: float
    valid_wer: float | None
    valid_cer: float | None
    history: list[dict[str, float]]
    stopped: bool = False  # should_stop ended the run before its budget was spent


class TrainError(ValueError):
    """A training configuration that cannot run (no data, unusable checkpoint)."""


def train(
    cfg: TrainConfig,
    *,
    on_eval: Callable[[dict[str, float]], None] | None = None,
    on_step: Callable[[float, dict[str, float]], None] | None = None,
    init_weights: dict[str, torch.Tensor] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train until the step or time budget is spent, or ``should_stop()`` (polled before every
    step) says so; ``on_step(fraction, {"step", "loss", "lr"})`` follows every step (rank 0).

    ``init_weights`` starts a fine-tune from an in-memory state dict (e.g. a package's), like
    ``cfg.init_from`` does from a checkpoint file; a checkpoint in out_dir to resume wins over both.
    """
    # ---- setup: device, distributed, data -------------------------------------------------
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
    device = _pick_device(cfg.device, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        # Before NCCL starts: otherwise every rank's collectives (barriers) default to GPU 0.
        torch.cuda.set_device(device)
    if ddp:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    master = rank == 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    random.seed(cfg.seed + rank)
    use_amp = cfg.amp and device.type == "cuda"

    if not cfg.train_manifests:
        raise TrainError("no training manifests given")
    if cfg.init_from is not None and init_weights is not None:
        raise TrainError("give init_from or init_weights, not both")
    out_dir = Path(cfg.out_dir)
    checkpoint_path = out_dir / CHECKPOINT
    # Read once: it decides both whether anything is left to train and where to resume from.
    state: dict[str, Any] | None = None
    if cfg.resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    if state is not None and _budget_spent(state, cfg):
        # A finished run asked again (e.g. a recipe re-run to re-package): nothing to train.
        last = state["history"][-1] if state["history"] else {}
        return TrainResult(
            checkpoint=checkpoint_path,
            steps=state["step"],
            seconds=state["seconds"],
            utterances_per_second=state.get("utterances_per_second", 0.0),
            valid_wer=last.get("wer"),
            valid_cer=last.get("cer"),
            history=state["history"],
        )
    tokenizer = CharTokenizer.english()
    if cfg.model.vocab_size != tokenizer.vocab_size:
        raise TrainError(
            f"model vocab_size {cfg.model.vocab_size} ≠ tokenizer {tokenizer.vocab_size}"
        )
    featurizer = LogMel(cfg.features)
    train_utts = [
        u
        for manifest in cfg.train_manifests
        for u in load_utterances(
            manifest, tokenizer=tokenizer, featurizer=featurizer, progress=master and cfg.progress
        )
    ]
    mix_utts = (
        load_utterances(cfg.mix_manifest, tokenizer=tokenizer, featurizer=featurizer)
        if cfg.mix_manifest
        else []
    )
    valid_utts = (
        load_utterances(
            cfg.valid_manifest,
            tokenizer=tokenizer,
            featurizer=featurizer,
            limit=cfg.eval_utterances,
        )
        if cfg.valid_manifest and master
        else []
    )
    if not train_utts:
        raise TrainError("the training manifests hold no utterances")

    # ---- model, optimizer, checkpoint ---------------------------------------------------------
    model = CTCModel(cfg.model).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    step, spent, history = 0, 0.0, []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, spent, history = state["step"], state["seconds"], state["history"]
    elif init_weights is not None:
        _load_initial_weights(model, init_weights)
    elif cfg.init_from is not None:
        _load_initial_weights(model, load_weights(cfg.init_from))
    raw_model = model
    if ddp:
        device_ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=device_ids)  # type: ignore[assignment]

    budget_seconds = cfg.max_minutes * 60 if cfg.max_minutes else None
    if budget_seconds is None and cfg.max_steps is None:
        raise TrainError("set max_minutes, max_steps or both")

    def progress_fraction(now_spent: float) -> float:
        fractions = [step / cfg.max_steps] if cfg.max_steps else []
        if budget_seconds:
            fractions.append(now_spent / budget_seconds)
        return min(1.0, max(fractions))

    def lr_at(fraction: float) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * fraction))
        return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine)

    # ---- the loop ------------------------------------------------------------------------------
    started, seen = time.perf_counter() - spent, 0
    bar = tqdm(total=100, desc="train", unit="%", disable=not (master and cfg.progress))
    epoch = step  # a distinct batch order per (re)start
    done = progress_fraction(spent) >= 1.0
    stopped = False
    # Augmentation draws from its own generator: seeded per rank and (re)start, like the batches.
    augment_rng = torch.Generator().manual_seed(cfg.seed * 1_000_003 + rank * 7_919 + step)
    while not done:
        epoch += 1
        epoch_utts = _epoch_utterances(
            train_utts, mix_utts, cfg.mix_fraction, seed=cfg.seed, epoch=epoch
        )
        batches = length_batches(
            epoch_utts, max_frames=cfg.batch_frames, seed=cfg.seed, epoch=epoch
        )
        # Every rank takes the same number of batches, or DDP would wait forever on the last.
        batches = batches[: len(batches) - len(batches) % world] if ddp else batches
        for batch_indices in batches[rank::world]:
            fraction = progress_fraction(time.perf_counter() - started)
            stop = should_stop is not None and should_stop()
            if ddp:  # rank 0's clock and stop flag decide for all: every rank stops together
                shared = torch.tensor([fraction, float(stop)], device=device)
                dist.broadcast(shared, src=0)
                fraction, stop = float(shared[0]), bool(shared[1])
            if stop:
                stopped = done = True
                break
            if fraction >= 1.0:
                done = True
                break
            for group in optimizer.param_groups:
                group["lr"] = lr_at(fraction)

            # forward / backward (bf16 autocast on CUDA; the CTC loss itself runs in fp32)
            batch = collate([epoch_utts[i] for i in batch_indices])
            feats, feat_lengths = batch.feats, batch.feat_lengths
            if cfg.augment.active:
                feats = augment(feats, feat_lengths, cfg.augment, generator=augment_rng)
            feats, feat_lengths = feats.to(device), feat_lengths.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                log_probs, out_lengths = model(feats, feat_lengths)  # (B, T', V)
            loss = F.ctc_loss(
                log_probs.float().transpose(0, 1),  # (T', B, V)
                batch.labels.to(device),
                out_lengths,
                batch.label_lengths.to(device),
                blank=tokenizer.blank_id,
                zero_infinity=True,  # fast speech can have more characters than frames
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            seen += len(batch_indices) * world
            if master:
                bar.n = int(100 * progress_fraction(time.perf_counter() - started))
                bar.set_postfix(step=step, loss=f"{loss.item():.3f}", refresh=False)
                bar.refresh()
                if on_step is not None:
                    now = progress_fraction(time.perf_counter() - started)
                    on_step(now, {"step": float(step), "loss": loss.item(), "lr": lr_at(fraction)})
            # evaluate and checkpoint (rank 0) every eval_every steps
            if step % cfg.eval_every == 0 and master:
                spent_now = time.perf_counter() - started
                history.append(
                    _evaluate(
                        raw_model, valid_utts, tokenizer, device, step=step, lr=lr_at(fraction)
                    )
                )
                _save_checkpoint(
                    checkpoint_path, raw_model, optimizer, cfg, step, spent_now, history
                )
                if on_eval is not None:
                    on_eval(history[-1])
                model.train()
    bar.close()

    seconds = time.perf_counter() - started
    result_metrics: dict[str, float] = {}
    if master:
        if history and history[-1]["step"] == step:
            result_metrics = history[-1]  # the loop just evaluated this very step
        elif not stopped:  # a stop request is answered at once: no final evaluation
            result_metrics = _evaluate(raw_model, valid_utts, tokenizer, device, step=step, lr=0.0)
            history.append(result_metrics)
        rate = seen / max(seconds - spent, 1e-9)
        _save_checkpoint(checkpoint_path, raw_model, optimizer, cfg, step, seconds, history, rate)
    if ddp:
        dist.destroy_process_group()
    return TrainResult(
        checkpoint=checkpoint_path,
        steps=step,
        seconds=seconds,
        utterances_per_second=seen / max(seconds - spent, 1e-9),
        valid_wer=result_metrics.get("wer"),
        valid_cer=result_metrics.get("cer"),
        history=history,
        stopped=stopped,
    )


def _load_initial_weights(model: CTCModel, weights: dict[str, torch.Tensor]) -> None:
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:  # names the missing, unexpected or mis-shaped tensors
        reason = " ".join(str(err).split())[:300]
        raise TrainError(f"the initial weights do not fit the model config: {reason}") from None


def _budget_spent(state: dict[str, Any], cfg: TrainConfig) -> bool:
    if cfg.max_steps is not None and state["step"] >= cfg.max_steps:
        return True
    return cfg.max_minutes is not None and state["seconds"] >= cfg.max_minutes * 60


def _pick_device(name: str, *, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def _epoch_utterances(
    train_utts: list[Utterance],
    mix_utts: list[Utterance],
    fraction: float,
    *,
    seed: int,
    epoch: int,
) -> list[Utterance]:
    """The epoch's data: all training utterances plus a fresh random draw of the mix set.

    Drawing a new general subset every epoch (not a fixed one) is what limited forgetting when
    fine-tuning on domain data (../shared/notes/asr-recipe.md).
    """
    if not mix_utts or fraction <= 0:
        return train_utts
    wanted = min(len(mix_utts), int(len(train_utts) * fraction / max(1e-9, 1 - fraction)))
    rng = random.Random(seed * 1_000_003 + epoch)
    return train_utts + rng.sample(mix_utts, wanted)


@torch.no_grad()
def _evaluate(
    model: CTCModel,
    utterances: Sequence[Utterance],
    tokenizer: CharTokenizer,
    device: torch.device,
    *,
    step: int,
    lr: float,
) -> dict[str, float]:
    if not utterances:
        return {"step": float(step), "lr": lr}
    model.eval()
    hypotheses = transcribe_batch(model, [u.feats for u in utterances], tokenizer, device)
    references = [u.text for u in utterances]
    model.train()
    return {
        "step": float(step),
        "lr": lr,
        "wer": float(jiwer.wer(references, hypotheses)),
        "cer": float(jiwer.cer(references, hypotheses)),
    }


@torch.no_grad()
def transcribe_batch(
    model: CTCModel,
    feats: Sequence[torch.Tensor],
    tokenizer: CharTokenizer,
    device: torch.device,
    *,
    batch_frames: int = 20_000,
) -> list[str]:
    """Greedy transcripts of feature tensors (T, F), batched by length (evaluation helper)."""
    order = sorted(range(len(feats)), key=lambda i: feats[i].shape[0])
    texts = [""] * len(feats)
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and feats[order[end]].shape[0] * (end - start + 1) <= batch_frames:
            end += 1
        chunk = order[start:end]
        longest = max(feats[i].shape[0] for i in chunk)
        padded = torch.zeros(len(chunk), longest, feats[chunk[0]].shape[1])
        for row, i in enumerate(chunk):
            padded[row, : feats[i].shape[0]] = feats[i].float()
        lengths = torch.tensor([feats[i].shape[0] for i in chunk])
        log_probs, out_lengths = model(padded.to(device), lengths.to(device))
        best = log_probs.argmax(dim=-1).cpu()  # (B, T')
        for row, i in enumerate(chunk):
            path = best[row, : int(out_lengths[row])].tolist()
            collapsed = [p for j, p in enumerate(path) if j == 0 or p != path[j - 1]]
            texts[i] = " ".join(tokenizer.decode(collapsed).split())
        start = end
    return texts


def _save_checkpoint(
    path: Path,
    model: CTCModel,
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    step: int,
    seconds: float,
    history: list[dict[str, float]],
    utterances_per_second: float = 0.0,
) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "seconds": seconds,
        "history": history,
        "utterances_per_second": utterances_per_second,
        "model_config": cfg.model.to_dict(),
        "feature_config": cfg.features.to_dict(),
        "train_config": cfg.to_dict(),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a crash mid-save never leaves a half-written checkpoint


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Model weights from a training checkpoint (for fine-tuning)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError) as err:
        raise TrainError(f"cannot read checkpoint {path}: {err}") from None
    weights = state.get("model") if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise TrainError(f"{path} is not a training checkpoint")
    return weights


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m asr.train`` / ``torchrun --nproc_per_node N -m asr.train`` entry point."""
    import argparse

    parser = argparse.ArgumentParser(description="Train a CTC model on synthesised manifests.")
    parser.add_argument("--train-manifest", type=Path, action="append", required=True)
    parser.add_argument("--valid-manifest", type=Path)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--init-from", type=Path, help="checkpoint to fine-tune from")
    parser.add_argument("--max-minutes", type=float)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--encoder", choices=["conv", "conformer"], default="conv")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--n-layers", type=int, default=10)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--batch-frames", type=int, default=4000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--freq-warp", type=float, default=0.0, help="max mel-axis warp (0.1: factors 0.9-1.1)"
    )
    parser.add_argument(
        "--spec-augment", action="store_true", help="SpecAugment masks (2 x 8 bands, 2 x 25 frames)"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    kernels = [11 + 2 * i for i in range(args.n_layers)]
    model = ModelConfig(
        encoder=args.encoder, d_model=args.d_model, n_layers=args.n_layers, kernel_sizes=kernels
    )
    result = train(
        TrainConfig(
            train_manifests=args.train_manifest,
            valid_manifest=args.valid_manifest,
            out_dir=args.out_dir,
            model=model,
            init_from=args.init_from,
            max_minutes=args.max_minutes,
            max_steps=args.max_steps,
            lr=args.lr,
            batch_frames=args.batch_frames,
            eval_every=args.eval_every,
            device=args.device,
            augment=(
                AugmentConfig.spec_augment(freq_warp=args.freq_warp)
                if args.spec_augment
                else AugmentConfig(freq_warp=args.freq_warp)
            ),
            progress=not args.no_progress,
        )
    )
    if int(os.environ.get("RANK", "0")) == 0:
        print(  # noqa: T201 - the command's result
            f"steps={result.steps} seconds={result.seconds:.1f} "
            f"utt/s={result.utterances_per_second:.1f} wer={result.valid_wer} "
            f"checkpoint={result.checkpoint}"
        )


if __name__ == "__main__":
    main()
