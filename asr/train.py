"""Train a CTC model: ``train(cfg)`` reads top to bottom, on CPU, one GPU or under torchrun.

    cfg = TrainConfig(train_manifests=[Path("corpus/train/manifest.jsonl")], out_dir=Path("run"))
    result = train(cfg)  # result.checkpoint, result.valid_wer

CPU runs are budgeted in minutes (``max_minutes``); the schedule follows whichever of the step and
time budgets runs out first. ``torchrun --nproc_per_node N -m asr.train ...`` runs the same loop
with DistributedDataParallel: each rank takes every N-th batch, rank 0 evaluates and saves.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import random
import time
from collections.abc import Callable, Iterator, Sequence
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
from durable import atomic_path

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
    env = _init_process(cfg)
    if not cfg.train_manifests:
        raise TrainError("no training manifests given")
    if cfg.init_from is not None and init_weights is not None:
        raise TrainError("give init_from or init_weights, not both")
    checkpoint = Path(cfg.out_dir) / CHECKPOINT
    # Read once: it decides both whether anything is left to train and where to resume from.
    saved = _read_checkpoint(checkpoint) if cfg.resume and checkpoint.exists() else None
    if saved is not None and _budget_spent(saved, cfg):
        # A finished run asked again (e.g. a recipe re-run to re-package): nothing to train.
        return _finished(checkpoint, saved)
    run = _setup(cfg, env, checkpoint)
    loop = _restore(run, saved, init_weights)

    loop.started = time.perf_counter() - loop.spent
    bar = tqdm(total=100, desc="train", unit="%", disable=not (env.master and cfg.progress))
    # Augmentation draws from its own generator: seeded per rank and (re)start, like the batches.
    augment_rng = torch.Generator().manual_seed(cfg.seed * 1_000_003 + env.rank * 7_919 + loop.step)
    budget_left = _progress(cfg, loop.step, loop.spent) < 1.0  # a resumed run may have none
    for utts in _batches(run, epoch=loop.step + 1) if budget_left else iter(()):
        fraction, stop = _poll(run, loop, should_stop)
        if stop or fraction >= 1.0:
            loop.stopped = stop
            break
        loss = _step(run, utts, _lr_at(cfg, loop.step, fraction), augment_rng)
        loop.step += 1
        loop.seen += len(utts) * env.world
        # Logged and recorded as the schedule stands at the new step (during warm-up, the next
        # step's rate): what on_step and the checkpoint history have always reported.
        lr = _lr_at(cfg, loop.step, fraction)
        if env.master:
            _log(run, loop, bar, loss, lr, on_step)
        if loop.step % cfg.eval_every == 0 and env.master:
            _evaluate_and_save(run, loop, lr, on_eval)
    bar.close()
    return _finish(run, loop)


@dataclass
class _Env:
    """Where this process trains: its device and its place among torchrun's ranks."""

    device: torch.device
    rank: int
    world: int
    ddp: bool

    @property
    def master(self) -> bool:
        return self.rank == 0  # rank 0 evaluates, saves and shows progress


@dataclass
class _Run:
    """What the loop trains with, built once by ``_setup``."""

    cfg: TrainConfig
    env: _Env
    checkpoint: Path
    tokenizer: CharTokenizer
    train_utts: list[Utterance]
    mix_utts: list[Utterance]
    valid_utts: list[Utterance]  # rank 0 only; empty elsewhere
    model: CTCModel  # the bare model: evaluated and saved
    net: torch.nn.Module  # what a step calls: the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer


@dataclass
class _Loop:
    """The loop's state: what a checkpoint restores, plus this (re)start's counters."""

    step: int = 0
    spent: float = 0.0  # seconds trained before this (re)start (from the checkpoint)
    history: list[dict[str, float]] = field(default_factory=list)
    started: float = 0.0  # perf_counter() at which the whole run, `spent` included, began
    seen: int = 0  # utterances trained on since this (re)start, all ranks together
    stopped: bool = False  # should_stop ended the run

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def _init_process(cfg: TrainConfig) -> _Env:
    """Pick the device, join torchrun's process group (if any) and seed this rank."""
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
    device = _pick_device(cfg.device, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        # Before NCCL starts: otherwise every rank's collectives (barriers) default to GPU 0.
        torch.cuda.set_device(device)
    if ddp:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    random.seed(cfg.seed + rank)
    return _Env(device=device, rank=rank, world=world, ddp=ddp)


def _finished(checkpoint: Path, state: dict[str, Any]) -> TrainResult:
    """The result of a run whose checkpoint has already spent its budget."""
    last = state["history"][-1] if state["history"] else {}
    return TrainResult(
        checkpoint=checkpoint,
        steps=state["step"],
        seconds=state["seconds"],
        utterances_per_second=state.get("utterances_per_second", 0.0),
        valid_wer=last.get("wer"),
        valid_cer=last.get("cer"),
        history=state["history"],
    )


def _setup(cfg: TrainConfig, env: _Env, checkpoint: Path) -> _Run:
    """Load the data and build the model and optimizer (no weights restored yet)."""
    if not cfg.max_minutes and cfg.max_steps is None:
        raise TrainError("set max_minutes, max_steps or both")
    tokenizer = CharTokenizer.english()
    if cfg.model.vocab_size != tokenizer.vocab_size:
        raise TrainError(
            f"model vocab_size {cfg.model.vocab_size} ≠ tokenizer {tokenizer.vocab_size}"
        )
    train_utts, mix_utts, valid_utts = _load_data(cfg, tokenizer, master=env.master)
    model = CTCModel(cfg.model).to(env.device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay
    )
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    return _Run(
        cfg=cfg,
        env=env,
        checkpoint=checkpoint,
        tokenizer=tokenizer,
        train_utts=train_utts,
        mix_utts=mix_utts,
        valid_utts=valid_utts,
        model=model,
        net=model,
        optimizer=optimizer,
    )


def _load_data(
    cfg: TrainConfig, tokenizer: CharTokenizer, *, master: bool
) -> tuple[list[Utterance], list[Utterance], list[Utterance]]:
    """Training, mix and (rank 0's) validation utterances, as features in memory."""
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
    return train_utts, mix_utts, valid_utts


def _restore(
    run: _Run, saved: dict[str, Any] | None, init_weights: dict[str, torch.Tensor] | None
) -> _Loop:
    """Resume from the saved checkpoint, or start from initial weights; then go distributed."""
    loop = _Loop()
    if saved is not None:
        run.model.load_state_dict(saved["model"])
        run.optimizer.load_state_dict(saved["optimizer"])
        loop.step, loop.spent, loop.history = saved["step"], saved["seconds"], saved["history"]
    elif init_weights is not None:
        _load_initial_weights(run.model, init_weights)
    elif run.cfg.init_from is not None:
        _load_initial_weights(run.model, load_weights(run.cfg.init_from))
    if run.env.ddp:
        # Wrapped only now: DDP starts every rank from rank 0's restored weights.
        device_ids = [run.env.device.index] if run.env.device.type == "cuda" else None
        run.net = DistributedDataParallel(run.model, device_ids=device_ids)
    return loop


def _batches(run: _Run, *, epoch: int) -> Iterator[list[Utterance]]:
    """This rank's batches, epoch after epoch without end, each epoch in its own order."""
    cfg, env = run.cfg, run.env
    while True:
        utts = _epoch_utterances(
            run.train_utts, run.mix_utts, cfg.mix_fraction, seed=cfg.seed, epoch=epoch
        )
        batches = length_batches(utts, max_frames=cfg.batch_frames, seed=cfg.seed, epoch=epoch)
        # Every rank takes the same number of batches, or DDP would wait forever on the last.
        batches = batches[: len(batches) - len(batches) % env.world] if env.ddp else batches
        for indices in batches[env.rank :: env.world]:
            yield [utts[i] for i in indices]
        epoch += 1


def _progress(cfg: TrainConfig, step: int, seconds: float) -> float:
    """How much of the budget is spent (0-1): the larger of the step and the time share."""
    fractions = [step / cfg.max_steps] if cfg.max_steps else []
    if cfg.max_minutes:
        fractions.append(seconds / (cfg.max_minutes * 60))
    return min(1.0, max(fractions))


def _lr_at(cfg: TrainConfig, step: int, fraction: float) -> float:
    """Linear warm-up over warmup_steps, then cosine decay to min_lr_ratio by the budget's end."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    cosine = 0.5 * (1.0 + math.cos(math.pi * fraction))
    return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine)


def _poll(run: _Run, loop: _Loop, should_stop: Callable[[], bool] | None) -> tuple[float, bool]:
    """The budget spent so far and whether to stop now, as rank 0 sees them."""
    fraction = _progress(run.cfg, loop.step, loop.elapsed())
    stop = should_stop is not None and should_stop()
    if run.env.ddp:  # rank 0's clock and stop flag decide for all: every rank stops together
        shared = torch.tensor([fraction, float(stop)], device=run.env.device)
        dist.broadcast(shared, src=0)
        fraction, stop = float(shared[0]), bool(shared[1])
    return fraction, stop


def _step(
    run: _Run, utts: list[Utterance], lr: float, augment_rng: torch.Generator
) -> torch.Tensor:
    """One optimisation step on one batch; returns its CTC loss (a scalar tensor)."""
    cfg, device = run.cfg, run.env.device
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    batch = collate(utts)
    feats, feat_lengths = batch.feats, batch.feat_lengths  # (B, T, F), (B,)
    if cfg.augment.active:
        feats = augment(feats, feat_lengths, cfg.augment, generator=augment_rng)
    feats, feat_lengths = feats.to(device), feat_lengths.to(device)
    # forward / backward (bf16 autocast on CUDA; the CTC loss itself runs in fp32)
    use_amp = cfg.amp and device.type == "cuda"
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
        log_probs, out_lengths = run.net(feats, feat_lengths)  # (B, T', V), (B,)
    loss = F.ctc_loss(
        log_probs.float().transpose(0, 1),  # (T', B, V)
        batch.labels.to(device),  # (sum L,)
        out_lengths,
        batch.label_lengths.to(device),
        blank=run.tokenizer.blank_id,
        zero_infinity=True,  # fast speech can have more characters than frames
    )
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    torch.nn.utils.clip_grad_norm_(run.net.parameters(), cfg.grad_clip)
    run.optimizer.step()
    return loss


def _log(
    run: _Run,
    loop: _Loop,
    bar: Any,
    loss: torch.Tensor,
    lr: float,
    on_step: Callable[[float, dict[str, float]], None] | None,
) -> None:
    """Advance the progress bar and report the step (rank 0)."""
    bar.n = int(100 * _progress(run.cfg, loop.step, loop.elapsed()))
    bar.set_postfix(step=loop.step, loss=f"{loss.item():.3f}", refresh=False)
    bar.refresh()
    if on_step is not None:
        now = _progress(run.cfg, loop.step, loop.elapsed())
        on_step(now, {"step": float(loop.step), "loss": loss.item(), "lr": lr})


def _evaluate_and_save(
    run: _Run, loop: _Loop, lr: float, on_eval: Callable[[dict[str, float]], None] | None
) -> None:
    """Score the validation set and write the checkpoint (rank 0, every eval_every steps)."""
    seconds = loop.elapsed()  # the time trained: the evaluation itself is not counted
    scores = _evaluate(
        run.model, run.valid_utts, run.tokenizer, run.env.device, step=loop.step, lr=lr
    )
    loop.history.append(scores)
    _save_checkpoint(
        run.checkpoint, run.model, run.optimizer, run.cfg, loop.step, seconds, loop.history
    )
    if on_eval is not None:
        on_eval(scores)
    run.net.train()


def _finish(run: _Run, loop: _Loop) -> TrainResult:
    """Score the last step (unless just scored or stopped), save, and leave the process group."""
    seconds = loop.elapsed()
    rate = loop.seen / max(seconds - loop.spent, 1e-9)
    metrics: dict[str, float] = {}
    if run.env.master:
        if loop.history and loop.history[-1]["step"] == loop.step:
            metrics = loop.history[-1]  # the loop just evaluated this very step
        elif not loop.stopped:  # a stop request is answered at once: no final evaluation
            metrics = _evaluate(
                run.model, run.valid_utts, run.tokenizer, run.env.device, step=loop.step, lr=0.0
            )
            loop.history.append(metrics)
        _save_checkpoint(
            run.checkpoint,
            run.model,
            run.optimizer,
            run.cfg,
            loop.step,
            seconds,
            loop.history,
            rate,
        )
    if run.env.ddp:
        dist.destroy_process_group()
    return TrainResult(
        checkpoint=run.checkpoint,
        steps=loop.step,
        seconds=seconds,
        utterances_per_second=rate,
        valid_wer=metrics.get("wer"),
        valid_cer=metrics.get("cer"),
        history=loop.history,
        stopped=loop.stopped,
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
    fine-tuning on domain data, in a feasibility run on 2 CPU cores.
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
    # Tensors and plain data only (configs as dicts): _read_checkpoint loads it weights_only.
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
    # A crash mid-save never leaves a half-written checkpoint (no fsync: a checkpoint is
    # rewritten every eval_every steps, and a lost one only costs the steps since the last).
    with atomic_path(path, mode=0o644, fsync=False) as partial:
        torch.save(state, partial)


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Model weights from a training checkpoint (for fine-tuning)."""
    weights = _read_checkpoint(path).get("model")
    if not isinstance(weights, dict):
        raise TrainError(f"{path} is not a training checkpoint")
    return weights


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's contents, unpickling nothing but tensors and plain data.

    ``weights_only=True``: a checkpoint (``init_from`` above all) may come from anywhere, and a
    full unpickle runs whatever callables the file names. ``_save_checkpoint`` writes tensors,
    numbers, strings, lists, tuples and dicts only (configs as ``to_dict()`` dicts, no RNG state),
    so every checkpoint asr.train has written loads this way.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # a global outside torch's allow-list, or not a pickle
        raise TrainError(
            f"refusing to load {path}: not a checkpoint of tensors and plain data only"
            f" ({_unpickling_reason(err)})"
        ) from None
    except (OSError, RuntimeError, EOFError) as err:
        raise TrainError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(state, dict):
        raise TrainError(f"{path} is not a training checkpoint")
    return state


def _unpickling_reason(err: pickle.UnpicklingError) -> str:
    """The specific line of torch's weights-only error (e.g. "unsupported GLOBAL posix.system")."""
    boilerplate = ("Weights only load failed", "Check the documentation")
    parts = [p.strip() for p in str(err).split("\n\n") if p.strip()]
    specific = [p for p in parts if not p.startswith(boilerplate)]
    return " ".join(" ".join(specific or parts[:1]).split())[:300]


def _minutes(text: str) -> float | None:
    """``--max-minutes``: a number, or "none" for a step budget only."""
    return None if text.strip().lower() == "none" else float(text)


def _parser() -> argparse.ArgumentParser:
    """The command line; every default is ``TrainConfig``'s (one source of truth)."""
    cfg = TrainConfig()
    parser = argparse.ArgumentParser(
        description="Train a CTC model on synthesised manifests.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    arg = parser.add_argument
    none = argparse.SUPPRESS  # required: no "(default: None)" in --help
    arg(
        "--train-manifest",
        type=Path,
        action="append",
        required=True,
        default=none,
        help="JSONL manifest; repeat for more",
    )
    arg("--valid-manifest", type=Path, default=cfg.valid_manifest, help="held-out manifest")
    arg("--out-dir", type=Path, required=True, default=none, help="checkpoint.pt goes here")
    arg("--init-from", type=Path, default=cfg.init_from, help="checkpoint to fine-tune from")
    arg("--max-minutes", type=_minutes, default=cfg.max_minutes, help='minutes; "none": steps only')
    arg("--max-steps", type=int, default=cfg.max_steps, help="step budget")
    arg("--encoder", choices=["conv", "conformer"], default=cfg.model.encoder, help="encoder")
    arg("--d-model", type=int, default=cfg.model.d_model, help="channels per encoder block")
    arg("--n-layers", type=int, default=cfg.model.n_layers, help="encoder blocks")
    arg("--lr", type=float, default=cfg.lr, help="peak learning rate")
    arg("--batch-frames", type=int, default=cfg.batch_frames, help="padded frames per batch")
    arg("--eval-every", type=int, default=cfg.eval_every, help="steps between checkpoints")
    arg("--device", default=cfg.device, help='"auto": CUDA when present')
    arg(
        "--freq-warp",
        type=float,
        default=cfg.augment.freq_warp,
        help="max mel-axis warp (0.1: factors 0.9-1.1)",
    )
    arg("--spec-augment", action="store_true", help="SpecAugment (2 x 8 bands, 2 x 25 frames)")
    arg("--no-progress", action="store_true", default=not cfg.progress, help="no tqdm bar")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """The ``TrainConfig`` that ``python -m asr.train ARGS`` trains with."""
    args = _parser().parse_args(argv)
    # The CLI's conv stack widens its kernels with depth: 11, 13, ... (ModelConfig's default).
    kernels = [11 + 2 * i for i in range(args.n_layers)]
    model = ModelConfig(
        encoder=args.encoder, d_model=args.d_model, n_layers=args.n_layers, kernel_sizes=kernels
    )
    return TrainConfig(
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


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m asr.train`` / ``torchrun --nproc_per_node N -m asr.train`` entry point."""
    result = train(parse_args(argv))
    if int(os.environ.get("RANK", "0")) == 0:
        print(  # noqa: T201 - the command's result
            f"steps={result.steps} seconds={result.seconds:.1f} "
            f"utt/s={result.utterances_per_second:.1f} wer={result.valid_wer} "
            f"checkpoint={result.checkpoint}"
        )


if __name__ == "__main__":
    main()
