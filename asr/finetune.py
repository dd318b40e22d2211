"""Fine-tune a packaged model on domain speech into a candidate package, scored against its base.

    recipe = FinetuneRecipe(base_package=Path("models/ctcconformer-general.en....dg"),
                            domain="medical", train_manifest=train, eval_manifest=held_out,
                            work_dir=w, out_dir=o)
    result = finetune(recipe)  # result.package, result.candidate.wer vs result.base.wer

The candidate keeps the base's architecture, features, tokenizer and decoder settings; it
trains from the base's weights with a fresh draw of general speech (``mix_manifest``) in every
epoch against forgetting, and its word LM is the base's plus the training transcripts, so domain
words become known to the beam search and to lexicon snapping.
Both models are scored on ``eval_manifest`` with the same decoder settings; the candidate's
manifest records the training set's lineage and both models' figures.

The checkpoint in ``work_dir`` is kept: a re-run of the same recipe (after a crash or a
cancellation) resumes it, and one whose budget is spent only evaluates and packages again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
import unicodedata
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import soundfile as sf
import torch

from asr.data import DataError, read_manifest_rows
from asr.evaluate import EvalReport
from asr.inference import DecodeOptions, Transcriber
from asr.lm import START, LMError, WordLM
from asr.package import (
    ASR_KIND,
    ModelPackage,
    PackageError,
    PackageManifest,
    new_manifest,
    read_package,
    write_package,
)
from asr.recipes import evaluate_manifest
from asr.tokenizer import CharTokenizer
from asr.train import CHECKPOINT, TrainConfig, TrainError, TrainResult, load_weights, train

ProgressCallback = Callable[[float, dict[str, float]], None]

# Share of the whole recipe each phase takes, for on_progress (training dominates).
_BASE_EVAL, _TRAINING, _CANDIDATE_EVAL = 0.05, 0.85, 0.09
PROGRESS_SECONDS = 1.0  # on_progress at most this often during training (phase ends always)
STOP_POLL_SECONDS = 0.25  # should_stop at most this often: it may ask a database
# Punctuation the tokenizer drops without loss: it is not spoken. Digits and symbols ("5",
# "%", "&") are spoken, so a transcript holding them would teach the model the wrong words.
_SILENT = frozenset('.,;:!?"()[]{}-_/\u2013\u2014\u2026\u00ab\u00bb\u201c\u201d\u2018\u2019`')
_LINEAGE_KEYS = ("base_model", "fine_tune", "data")
_OWN_METRICS = frozenset(
    {"eval_utterances", "train_steps", "train_seconds"}
    | {f"{p}{m}" for p in ("", "base_") for m in ("wer", "cer", "term_recall")}
)


class FinetuneError(ValueError):
    """A recipe that cannot run: unreadable base package, empty or unusable manifest, bad name."""


class FinetuneCancelled(Exception):
    """``should_stop`` ended the run; no package was written (the checkpoint is kept)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        super().__init__(f"fine-tuning cancelled after {steps} training steps")


@dataclass
class FinetuneRecipe:
    base_package: Path  # the .dg to start from: config, weights, tokenizer, features, LM, decoding
    train_manifest: Path  # domain speech, JSONL (asr.synth format), audio relative to its folder
    eval_manifest: Path  # held-out speech, same format: both models are scored on it
    work_dir: Path  # checkpoint (a re-run resumes it) and report.md
    out_dir: Path  # where the candidate .dg goes
    mix_manifest: Path | None = None  # general speech drawn afresh into every epoch (forgetting)
    mix_fraction: float = 0.3  # share of each epoch taken from mix_manifest
    minutes: float | None = 2.0  # training wall-clock budget; None: max_steps only
    max_steps: int | None = None  # training step budget; None: minutes only
    lr: float = (
        3e-3  # peak; a 30 s CPU run cut medical CER by 17% at 1e-3, 26% at 3e-3, 25% at 5e-3
    )
    warmup_steps: int = 20  # the weights are trained already: a short warm-up suffices
    batch_frames: int = 4000  # padded input frames per batch
    eval_every: int = 200  # steps between greedy scores on eval_manifest (and checkpoints)
    device: str = "auto"  # "auto" picks CUDA (bf16 autocast) when present
    threads: int | None = None  # torch CPU threads; None leaves torch's default
    name: str | None = None  # default "{architecture}-{domain}"
    domain: str | None = None  # default: the base's domain
    version: str | None = None  # YYYY-MM-DD.N; default today, after the base's version
    uuid: str | None = None  # default: derived from the base, the training data, name and version
    training_set: dict[str, Any] = field(default_factory=dict)  # lineage: id, name, version, hash…
    extra_metrics: dict[str, float] = field(default_factory=dict)  # added to the manifest
    lm_text: bool = True  # add the training transcripts to the base's word LM
    # A training-text word pair enters the LM only if this many transcripts contain it: the
    # package is not secret, so a phrase one customer said once must not be readable from it.
    lm_min_count: int = 1
    lm_sentences: Sequence[str] = ()  # more domain text for the LM (e.g. a vocabulary list)
    terms: Sequence[str] = ()  # domain terms whose recall is reported (term_recall metrics)
    tags: Sequence[str] = ()  # added to the candidate's manifest tags (after "fine-tuned")
    # merged over the base's decoder settings in the candidate's package (e.g. a vocabulary)
    decoding: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    progress: bool = False  # a tqdm bar on stderr (for a terminal; workers use on_progress)


@dataclass
class FinetuneResult:
    package: Path
    candidate: EvalReport
    base: EvalReport
    train: TrainResult


@dataclass
class _Plan:
    """Everything checked and derived before the first minute of work is spent."""

    base: ModelPackage
    manifest: PackageManifest  # the candidate's identity, without metrics yet
    lineage: dict[str, Any]  # its training_set
    lm: dict[str, Any] | None  # the candidate's word LM (ModelPackage.lm)
    options: DecodeOptions  # the base's decoder settings, used for both models
    device: str  # where both models are scored


def finetune(
    recipe: FinetuneRecipe,
    *,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FinetuneResult:
    """Train, score both models, write the candidate; every input is checked before training.

    ``on_progress(fraction of the whole recipe, metrics so far)`` reports the base's scores,
    then training step/loss/lr (at most every PROGRESS_SECONDS), then the candidate's scores.
    ``should_stop()`` is polled between phases and training steps; True raises FinetuneCancelled.
    """
    progress, stop = _Progress(on_progress), _Poll(should_stop)
    plan = _plan(recipe)

    stop.check(steps=0)
    base_report = _score(plan.base, recipe, plan)
    progress.metrics.update(_summary("base_", base_report))
    progress.report(_BASE_EVAL, force=True)

    stop.check(steps=0)
    trained = _train(recipe, plan.base, progress, stop)
    if trained.stopped:
        raise FinetuneCancelled(trained.steps)
    weights = load_weights(trained.checkpoint)
    candidate = replace(plan.base, manifest=plan.manifest, state_dict=weights, lm=plan.lm)
    candidate_report = _score(candidate, recipe, plan)
    progress.metrics.update(_summary("", candidate_report))
    progress.report(_BASE_EVAL + _TRAINING + _CANDIDATE_EVAL, force=True)

    stop.check(steps=trained.steps)
    plan.lineage["fine_tune"]["steps"] = trained.steps
    metrics = _metrics(candidate_report, base_report, trained, recipe.extra_metrics)
    created = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    manifest = replace(plan.manifest, metrics=metrics, training_set=plan.lineage, created=created)
    try:
        package = write_package(
            recipe.out_dir,
            manifest,
            model_config=candidate.model_config,
            feature_config=candidate.feature_config,
            tokenizer=candidate.tokenizer,
            state_dict=candidate.state_dict,
            lm=candidate.lm,
            decoding={**(plan.base.decoding or {}), **recipe.decoding} or None,
        )
    except PackageError as err:
        raise FinetuneError(f"cannot write the candidate package: {err}") from None
    _write_report(recipe.work_dir / "report.md", candidate_report, base_report)
    progress.report(1.0, force=True)
    return FinetuneResult(package, candidate_report, base_report, trained)


def extend_lm(
    base: dict[str, Any] | None, sentences: Iterable[str], *, min_count: int = 1
) -> WordLM | None:
    """The base's word bigram LM (``ModelPackage.lm``) with ``sentences`` counted in as well.

    Only word pairs found in at least ``min_count`` of ``sentences`` are added (the base's
    counts are kept as they are). Discounts are estimated again from the merged counts. None
    when there is nothing at all.
    """
    bigrams: defaultdict[str, Counter[str]] = defaultdict(Counter)
    if base is not None:
        WordLM.from_dict(base)  # validates the description before its counts are trusted
        for previous, followers in base["bigrams"].items():
            bigrams[previous].update(followers)
    added: Counter[tuple[str, str]] = Counter()
    holding: Counter[tuple[str, str]] = Counter()  # sentences containing each pair
    for sentence in sentences:
        words = sentence.split()
        pairs = list(zip([START, *words], words, strict=False))
        added.update(pairs)
        holding.update(set(pairs))
    for (previous, word), count in added.items():
        if holding[previous, word] >= min_count:
            bigrams[previous][word] += count
    return WordLM(bigrams) if bigrams else None


def _plan(recipe: FinetuneRecipe) -> _Plan:
    base = _read_base(recipe.base_package)
    tokenizer = base.tokenizer
    train_rows = _checked_rows(recipe.train_manifest, tokenizer, "training")
    eval_rows = _checked_rows(recipe.eval_manifest, tokenizer, "evaluation")
    mix_rows = _checked_rows(recipe.mix_manifest, tokenizer, "mix") if recipe.mix_manifest else []
    lineage = _lineage(recipe, base.manifest, train_rows, eval_rows, mix_rows)
    manifest = _candidate_manifest(recipe, base.manifest, lineage)
    _check_settings(recipe)
    texts = [str(row["text"]) for row in train_rows] if recipe.lm_text else []
    try:
        lm = extend_lm(
            base.lm,
            [tokenizer.normalize(t) for t in texts],
            min_count=recipe.lm_min_count,
        )
        if recipe.lm_sentences:  # text the operator supplied (a vocabulary list), not samples
            lm = extend_lm(
                lm.to_dict() if lm is not None else None,
                [tokenizer.normalize(t) for t in recipe.lm_sentences],
            )
    except LMError as err:
        raise FinetuneError(f"{recipe.base_package}: unusable word LM: {err}") from None
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    _claim_work_dir(recipe.work_dir, base.manifest, lineage)
    return _Plan(
        base=base,
        manifest=manifest,
        lineage=lineage,
        lm=lm.to_dict() if lm is not None else None,
        options=DecodeOptions(**(base.decoding or {})),
        device=auto if recipe.device == "auto" else recipe.device,
    )


def _read_base(path: Path) -> ModelPackage:
    try:
        package = read_package(path)
    except PackageError as err:
        raise FinetuneError(f"cannot read the base package: {err}") from None
    if package.manifest.kind != ASR_KIND:
        raise FinetuneError(f"{path}: a {package.manifest.kind!r} package is not an ASR model")
    if package.tokenizer != CharTokenizer.english():
        # asr.train encodes transcripts with the English alphabet.
        raise FinetuneError(f"{path}: only the English character tokenizer can be fine-tuned")
    return package


def _checked_rows(manifest: Path, tokenizer: CharTokenizer, what: str) -> list[dict[str, object]]:
    """The manifest's rows, once every row has audio on disk and a speakable transcript."""
    try:
        rows = read_manifest_rows(manifest)
    except DataError as err:
        raise FinetuneError(f"{what} manifest: {err}") from None
    if not rows:
        raise FinetuneError(f"{what} manifest {manifest} holds no utterances")
    for row in rows:
        text, where = str(row["text"]), f"{what} manifest {manifest}, utterance {row['id']!r}"
        unspeakable = unspeakable_characters(text, tokenizer)
        if unspeakable:
            shown = ", ".join(repr(c) for c in sorted(unspeakable)[:8])
            raise FinetuneError(
                f"{where}: characters outside the tokenizer's alphabet: {shown} "
                "(spell numbers and symbols out as they are spoken)"
            )
        if not tokenizer.normalize(text):
            raise FinetuneError(f"{where}: the transcript is empty")
        if not (manifest.parent / str(row["audio"])).is_file():
            raise FinetuneError(f"{where}: audio {row['audio']} does not exist")
    return rows


def unspeakable_characters(text: str, tokenizer: CharTokenizer) -> set[str]:
    """Characters that normalising would drop although they are spoken (digits, symbols)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())  # "é" -> "e" + a combining accent
    return {
        c
        for c in decomposed
        if c not in tokenizer.charset
        and c not in _SILENT
        and not c.isspace()
        and not unicodedata.combining(c)
    }


def _lineage(
    recipe: FinetuneRecipe,
    base: PackageManifest,
    train_rows: list[dict[str, object]],
    eval_rows: list[dict[str, object]],
    mix_rows: list[dict[str, object]],
) -> dict[str, Any]:
    """The caller's training-set lineage plus what this recipe used: base, data, settings."""
    taken = sorted(set(recipe.training_set) & set(_LINEAGE_KEYS))
    if taken:
        raise FinetuneError(f"training_set keys {taken} are reserved for the recipe's lineage")
    data = {"train": _describe(recipe.train_manifest, train_rows)}
    data["eval"] = _describe(recipe.eval_manifest, eval_rows)
    if recipe.mix_manifest is not None:
        data["mix"] = _describe(recipe.mix_manifest, mix_rows)
    lineage = {
        **recipe.training_set,
        "base_model": {"name": base.name, "version": base.version, "uuid": base.uuid},
        "fine_tune": {
            "minutes": recipe.minutes,
            "max_steps": recipe.max_steps,
            "lr": recipe.lr,
            "mix_fraction": recipe.mix_fraction if recipe.mix_manifest else 0.0,
            "seed": recipe.seed,
            "lm_text": recipe.lm_text,
            "lm_min_count": recipe.lm_min_count,
        },
        "data": data,
    }
    try:
        json.dumps(lineage, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise FinetuneError(f"training_set must be plain JSON: {err}") from None
    return lineage


def _describe(manifest: Path, rows: list[dict[str, object]]) -> dict[str, Any]:
    try:
        seconds = sum(float(str(row.get("duration") or 0.0)) for row in rows)
    except ValueError:
        raise FinetuneError(f"{manifest}: every duration must be a number of seconds") from None
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    return {"utterances": len(rows), "hours": round(seconds / 3600, 4), "sha256": digest}


def _candidate_manifest(
    recipe: FinetuneRecipe, base: PackageManifest, lineage: dict[str, Any]
) -> PackageManifest:
    domain = recipe.domain or base.domain
    name = recipe.name or f"{base.architecture}-{domain}"
    version = recipe.version or _next_version(base.version)
    # A new version of the same model answers to the same aliases ("general" stays "general").
    aliases = list(base.aliases) if name == base.name else [domain] if domain != "general" else []
    identity = f"mip:finetune:{base.uuid}:{lineage['data']['train']['sha256']}:{name}:{version}"
    try:
        return new_manifest(
            name=name,
            architecture=base.architecture,
            domain=domain,
            version=version,
            uuid=recipe.uuid or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{identity}:{recipe.seed}")),
            languages=base.languages,
            formatted=base.formatted,
            mode=base.mode,
            aliases=aliases,
            tags=list(dict.fromkeys(["fine-tuned", *recipe.tags])),
            training_set=lineage,
        )
    except PackageError as err:
        raise FinetuneError(f"bad candidate identity: {err.reason}") from None


def _next_version(base_version: str) -> str:
    """Today's ``YYYY-MM-DD.1``, or the base's number plus one when the base is from today
    (or, with a skewed clock, later): the candidate always sorts after its base."""
    today = f"{dt.datetime.now(dt.UTC):%Y-%m-%d}"
    date, _, number = base_version.partition(".")
    return f"{date}.{int(number) + 1}" if date >= today else f"{today}.1"


def _check_settings(recipe: FinetuneRecipe) -> None:
    if recipe.minutes is None and recipe.max_steps is None:
        raise FinetuneError("set minutes, max_steps or both: training needs a budget")
    if not (0.0 <= recipe.mix_fraction < 1.0 and recipe.lr > 0.0):
        raise FinetuneError("mix_fraction must lie in [0, 1) and lr must be positive")
    if recipe.lm_min_count < 1:
        raise FinetuneError("lm_min_count must be at least 1")
    for key, value in recipe.extra_metrics.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (isinstance(key, str) and number and math.isfinite(value)):
            raise FinetuneError(f"extra metric {key!r} must be a finite number, not {value!r}")
        if key in _OWN_METRICS or key.startswith(("wer/", "base_wer/")):
            raise FinetuneError(f"extra metric {key!r} would overwrite the recipe's own")


def _claim_work_dir(work_dir: Path, base: PackageManifest, lineage: dict[str, Any]) -> None:
    """Record what work_dir's checkpoint is trained from; refuse to resume another recipe's."""
    identity = {
        "base_uuid": base.uuid,
        "train_sha256": lineage["data"]["train"]["sha256"],
        "mix_sha256": lineage["data"].get("mix", {}).get("sha256"),
    }
    marker = work_dir / "recipe.json"
    if (work_dir / "run" / CHECKPOINT).exists() and marker.exists():
        if json.loads(marker.read_text(encoding="utf-8")) != identity:
            raise FinetuneError(
                f"{work_dir} holds a run from another base model or training set: "
                "use a fresh work_dir per fine-tuning job"
            )
    work_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(identity, indent=1) + "\n", encoding="utf-8")


def _train(
    recipe: FinetuneRecipe, base: ModelPackage, progress: _Progress, stop: _Poll
) -> TrainResult:
    first = True

    def on_step(fraction: float, metrics: dict[str, float]) -> None:
        nonlocal first
        progress.metrics.update(metrics)
        progress.report(_BASE_EVAL + _TRAINING * fraction, force=first)  # training has begun
        first = False

    def on_eval(metrics: dict[str, float]) -> None:
        progress.metrics.update(
            {f"valid_{k}": v for k, v in metrics.items() if k in ("wer", "cer")}
        )

    config = TrainConfig(
        train_manifests=[recipe.train_manifest],
        valid_manifest=recipe.eval_manifest,  # greedy scores to watch; nothing is chosen by them
        out_dir=recipe.work_dir / "run",
        model=base.model_config,
        features=base.feature_config,
        mix_manifest=recipe.mix_manifest,
        mix_fraction=recipe.mix_fraction,
        max_minutes=recipe.minutes,
        max_steps=recipe.max_steps,
        lr=recipe.lr,
        warmup_steps=recipe.warmup_steps,
        batch_frames=recipe.batch_frames,
        eval_every=recipe.eval_every,
        seed=recipe.seed,
        device=recipe.device,
        threads=recipe.threads,
        progress=recipe.progress,
    )
    try:
        return train(
            config,
            on_eval=on_eval,
            on_step=on_step,
            init_weights=base.state_dict,
            should_stop=stop.due,
        )
    except (TrainError, DataError) as err:
        raise FinetuneError(f"training failed: {err}") from None


def _score(package: ModelPackage, recipe: FinetuneRecipe, plan: _Plan) -> EvalReport:
    transcriber = Transcriber(package, device=plan.device)
    terms = list(recipe.terms) or None
    try:
        return evaluate_manifest(
            transcriber, recipe.eval_manifest, options=plan.options, terms=terms
        )
    except (DataError, sf.SoundFileError, ValueError) as err:  # unreadable audio, empty terms
        raise FinetuneError(f"cannot score {recipe.eval_manifest}: {err}") from None


def _summary(prefix: str, report: EvalReport) -> dict[str, float]:
    summary = {f"{prefix}wer": round(report.wer, 4), f"{prefix}cer": round(report.cer, 4)}
    if report.term_recall is not None:
        summary[f"{prefix}term_recall"] = round(report.term_recall, 4)
    return summary


def _metrics(
    candidate: EvalReport, base: EvalReport, trained: TrainResult, extra: dict[str, float]
) -> dict[str, float]:
    """Flat numbers for the manifest: the candidate's own, then the base's on the same set."""
    metrics: dict[str, float] = {
        **_summary("", candidate),
        **_summary("base_", base),
        "eval_utterances": candidate.utterances,
        "train_steps": trained.steps,
        "train_seconds": round(trained.seconds, 1),
    }
    for prefix, report in (("", candidate), ("base_", base)):
        for group in report.groups:
            metrics[f"{prefix}wer/{group.attribute}={group.value}"] = round(group.wer, 4)
    return metrics | extra


def _write_report(path: Path, candidate: EvalReport, base: EvalReport) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"# Candidate\n\n{candidate.to_markdown()}\n# Base model\n\n{base.to_markdown()}"
    path.write_text(text, encoding="utf-8")


class _Progress:
    """Forwards (fraction, metrics so far) to on_progress, throttled unless ``force``."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self.metrics: dict[str, float] = {}
        self.last = -math.inf

    def report(self, fraction: float, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.callback is not None and (force or now - self.last >= PROGRESS_SECONDS):
            self.last = now
            self.callback(min(1.0, fraction), dict(self.metrics))


class _Poll:
    """Asks should_stop at most every STOP_POLL_SECONDS, unless ``force``."""

    def __init__(self, should_stop: Callable[[], bool] | None) -> None:
        self.should_stop = should_stop
        self.last = -math.inf

    def due(self, *, force: bool = False) -> bool:
        now = time.monotonic()
        if self.should_stop is None or not (force or now - self.last >= STOP_POLL_SECONDS):
            return False
        self.last = now
        return bool(self.should_stop())

    def check(self, *, steps: int) -> None:
        """Between phases: always asks."""
        if self.due(force=True):
            raise FinetuneCancelled(steps)
