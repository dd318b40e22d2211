"""The base model recipe: synthesise a corpus, train, evaluate on held-out speech, package.

    result = train_base(BaseRecipe(work_dir=Path("var/asr-base"), out_dir=Path("models")))
    result.package, result.report.wer

The held-out test set uses sentences never seen in training (a stable hash split of the text
corpus) spoken by espeak voice variants never heard in training (``asr.synth.voice_split``), so
its WER says how the model does on new speech, not how well it remembers its training set.
Every step is resumable: a corpus that is already synthesised is reused, and training continues
from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import soundfile as sf
import torch

from asr.augment import AugmentConfig
from asr.corpus import load_sentences, split_sentences
from asr.data import read_manifest_rows
from asr.decode import snap_to_lexicon
from asr.evaluate import EvalReport, evaluate, snr_band
from asr.features import FeatureConfig
from asr.inference import DecodeOptions, Transcriber
from asr.lm import WordLM
from asr.model import ModelConfig, encoder_preset
from asr.package import (
    ASR_KIND,
    ModelPackage,
    PackageError,
    new_manifest,
    read_package,
    write_package,
)
from asr.synth import UtteranceSpec, plan_corpus, synthesize
from asr.tokenizer import CharTokenizer
from asr.train import TrainConfig, TrainResult, load_weights, train

GROUP_ATTRIBUTES = ("accent", "sex", "age_group", "noise_type", "environment", "snr_band")


@dataclass
class BaseRecipe:
    work_dir: Path  # corpora, checkpoint and reports (kept for resuming)
    out_dir: Path  # where the .dg package is written
    corpus: str = "general"  # asr.corpus.load_sentences name or path
    domain: str = "general"
    train_utterances: int = 45_000
    valid_utterances: int = 300
    test_utterances: int = 1_000
    test_sentence_fraction: float = 0.05
    minutes: float = 30.0  # training budget (wall clock)
    seed: int = 0
    workers: int = 2  # synthesis processes
    threads: int | None = None  # torch threads for training
    model: ModelConfig = field(default_factory=lambda: encoder_preset("conformer"))
    version: str | None = None  # default: today's date + ".1"
    progress: bool = True
    # A second stage: start from a package's weights and train on a fresh corpus (its own seed),
    # with valid and test sets unchanged (they follow ``seed``) so the stages compare.
    init_from: Path | None = None  # a .dg package to continue training from
    train_seed: int | None = None  # seed of the training corpus; None: ``seed``
    lr: float | None = None  # peak learning rate; None: TrainConfig's default
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # off unless set (asr.augment)


@dataclass
class BaseResult:
    package: Path
    report: EvalReport
    greedy_report: EvalReport
    train: TrainResult
    test_manifest: Path


def synthesize_splits(
    recipe: BaseRecipe, *, log: Callable[[str], None] = print
) -> tuple[Path, Path, Path, list[str]]:
    """Train/valid/test corpora under work_dir (reused when complete); returns the train text."""
    sentences = load_sentences(recipe.corpus)
    train_text, test_text = split_sentences(
        sentences, test_fraction=recipe.test_sentence_fraction, salt=f"{recipe.domain}-base"
    )
    train_offset = 0 if recipe.train_seed is None else recipe.train_seed - recipe.seed
    # split -> (sentences, utterances, seed offset, voice variants)
    splits: dict[str, tuple[list[str], int, int, Literal["train", "test"]]] = {
        "train": (train_text, recipe.train_utterances, train_offset, "train"),
        "valid": (test_text, recipe.valid_utterances, 1, "test"),
        "test": (test_text, recipe.test_utterances, 2, "test"),
    }
    plans = {
        split: plan_corpus(
            text,
            n=n,
            seed=recipe.seed + offset,
            voices=voices,
            domain=recipe.domain,
            id_prefix=split,
        )
        for split, (text, n, offset, voices) in splits.items()
    }
    manifests = {}
    for split, specs in plans.items():
        out = recipe.work_dir / split
        manifest = out / "manifest.jsonl"
        if not _corpus_matches(manifest, specs):
            log(f"synthesising {len(specs)} {split} utterances into {out}")
            synthesize(specs, out, workers=recipe.workers, progress=recipe.progress)
        manifests[split] = manifest
    return manifests["train"], manifests["valid"], manifests["test"], train_text


def _corpus_matches(manifest: Path, specs: Sequence[UtteranceSpec]) -> bool:
    """Whether ``manifest`` is the finished rendering of exactly these specs.

    Same count is not enough: another seed (``--train-seed``), corpus or domain plans the same
    ids with other sentences and voices, and training on the old corpus would be silent.
    """
    if not manifest.exists():
        return False
    rows = read_manifest_rows(manifest)
    return [(r.get("id"), r.get("text"), r.get("seed")) for r in rows] == [
        (s.id, s.text, s.seed) for s in specs
    ]


def evaluate_manifest(
    transcriber: Transcriber,
    manifest: Path,
    *,
    options: DecodeOptions | None = None,
    terms: Sequence[str] | None = None,
) -> EvalReport:
    """WER/CER of a model on a synthesised manifest, overall and per attribute group."""
    rows = read_manifest_rows(manifest)
    references = [str(row["text"]) for row in rows]
    hypotheses = []
    for row in rows:
        samples, _ = sf.read(manifest.parent / str(row["audio"]), dtype="float32")
        hypotheses.append(transcriber.transcribe(samples, options).text)
    attributes: dict[str, list[str | None]] = {}
    for name in GROUP_ATTRIBUTES:
        if name == "snr_band":
            attributes[name] = [snr_band(_float_or_none(r.get("snr_db"))) for r in rows]
        else:
            attributes[name] = [None if r.get(name) is None else str(r[name]) for r in rows]
    return evaluate(references, hypotheses, attributes=attributes, terms=terms)


# Decoder settings tried on the validation set; the best WER is shipped in the package. The
# grid runs at beam width 8; wider beams are then tried at the best LM setting of the grid.
# The out-of-vocabulary penalty took the stage-3 base model from 0.341 to 0.288 on validation
# and 0.303 to 0.270 on test (docs/benchmarks.md, "A lexicon-aware beam search").
LM_WEIGHTS = (0.1, 0.2, 0.3, 0.5, 0.7)
WORD_BONUSES = (0.0, 1.0, 2.0, 3.0)
OOV_PENALTIES = (0.0, 4.0, 8.0)
WIDER_BEAMS = (16, 32)


def tune_decoding(
    transcriber: Transcriber, manifest: Path, *, limit: int = 200
) -> tuple[DecodeOptions, list[dict[str, Any]]]:
    """The decoder settings with the lowest WER on ``manifest``, and every setting's scores.

    The acoustic model runs once per utterance; only the search is repeated. Greedy decoding is
    a candidate too: with a weak acoustic model the word LM can do more harm than good.
    """
    rows = read_manifest_rows(manifest)[:limit]
    references = [str(row["text"]) for row in rows]
    log_probs = [
        transcriber.log_probs(sf.read(manifest.parent / str(row["audio"]), dtype="float32")[0])
        for row in rows
    ]
    results: list[tuple[float, DecodeOptions, dict[str, Any]]] = []

    def score(options: DecodeOptions, texts: list[str]) -> None:
        for snap in (False, True) if transcriber.lexicon else (False,):
            hyps = [snap_to_lexicon(t, transcriber.lexicon) for t in texts] if snap else texts
            report = evaluate(references, hyps)
            chosen = dataclasses.replace(options, snap=snap)
            row = {**chosen.to_dict(), "wer": round(report.wer, 4), "cer": round(report.cer, 4)}
            results.append((report.wer, chosen, row))

    def search(options: DecodeOptions) -> list[str]:  # the path transcribe() serves
        return [transcriber.decode(lp, options).text for lp in log_probs]

    score(DecodeOptions(decoder="greedy", snap=False), search(DecodeOptions(decoder="greedy")))
    if transcriber.lm is not None:
        grid = itertools.product(LM_WEIGHTS, WORD_BONUSES, OOV_PENALTIES)
        for weight, bonus, penalty in grid:
            options = DecodeOptions(
                decoder="beam",
                lm_weight=weight,
                word_bonus=bonus,
                oov_penalty=penalty,
                snap=False,
            )
            score(options, search(options))
        best_lm = min((r for r in results if r[1].decoder == "beam"), key=lambda r: r[0])[1]
        for width in WIDER_BEAMS:
            options = dataclasses.replace(best_lm, beam_width=width, snap=False)
            score(options, search(options))
    best = min(results, key=lambda r: r[0])
    return best[1], [row for _, _, row in results]


class RecipeError(ValueError):
    """A recipe that cannot run, e.g. a package to continue from that does not fit it."""


def _read_parent(recipe: BaseRecipe) -> ModelPackage | None:
    """The package a continuation stage starts from; its encoder must be the recipe's."""
    if recipe.init_from is None:
        return None
    try:
        parent = read_package(recipe.init_from)
    except PackageError as exc:
        raise RecipeError(f"cannot continue from {recipe.init_from}: {exc}") from None
    if parent.manifest.kind != ASR_KIND:
        raise RecipeError(f"{recipe.init_from} is a {parent.manifest.kind} model, not ASR")
    if parent.model_config != recipe.model:
        raise RecipeError(
            f"{recipe.init_from} holds a {parent.model_config.encoder} model whose configuration "
            f"differs from the recipe's {recipe.model.encoder} preset"
        )
    return parent


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def build_package(
    recipe: BaseRecipe,
    *,
    weights: dict[str, torch.Tensor],
    lm: WordLM,
    metrics: dict[str, float],
    training_set: dict[str, Any],
    model_uuid: str,
    out_dir: Path,
    decoding: dict[str, Any] | None = None,
) -> Path:
    version = recipe.version or f"{dt.datetime.now(dt.UTC):%Y-%m-%d}.1"
    architecture = f"ctc{recipe.model.encoder}"
    manifest = new_manifest(
        name=f"{architecture}-{recipe.domain}",
        architecture=architecture,
        domain=recipe.domain,
        version=version,
        uuid=model_uuid,
        aliases=[recipe.domain, "base"] if recipe.domain == "general" else [recipe.domain],
        tags=["base"] if recipe.domain == "general" else [],
        training_set=training_set,
        metrics=metrics,
    )
    return write_package(
        out_dir,
        manifest,
        model_config=recipe.model,
        feature_config=FeatureConfig(),
        tokenizer=CharTokenizer.english(),
        state_dict=weights,
        lm=lm.to_dict(),
        decoding=decoding,
    )


def train_base(recipe: BaseRecipe, *, log: Callable[[str], None] = print) -> BaseResult:
    parent = _read_parent(recipe)  # before any work: a package that does not fit stops here
    recipe.work_dir.mkdir(parents=True, exist_ok=True)
    train_manifest, valid_manifest, test_manifest, train_text = synthesize_splits(recipe, log=log)

    log(f"training for {recipe.minutes} min")
    config = TrainConfig(
        train_manifests=[train_manifest],
        valid_manifest=valid_manifest,
        out_dir=recipe.work_dir / "run",
        model=recipe.model,
        max_minutes=recipe.minutes,
        seed=recipe.seed,
        threads=recipe.threads,
        augment=recipe.augment,
        progress=recipe.progress,
    )
    if recipe.lr is not None:
        config.lr = recipe.lr
    result = train(
        config,
        on_eval=lambda m: log(json.dumps(m)),
        init_weights=None if parent is None else parent.state_dict,
    )
    weights = load_weights(result.checkpoint)
    lm = WordLM.from_sentences(train_text)
    model_uuid = str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"mip:{recipe.domain}:{recipe.seed}:{recipe.version}")
    )
    training_set = {
        "corpus": recipe.corpus,
        "utterances": recipe.train_utterances,
        "sentences": len(train_text),
        "seed": recipe.seed,
        "minutes": recipe.minutes,
        "steps": result.steps,
    }
    if recipe.train_seed is not None:
        training_set["train_seed"] = recipe.train_seed
    if recipe.augment.active:
        training_set["augment"] = dataclasses.asdict(recipe.augment)
    if parent is not None:  # lineage: what this stage continued from
        training_set["init_from"] = {
            "name": parent.manifest.name,
            "version": parent.manifest.version,
            "uuid": parent.manifest.uuid,
            "training_set": parent.manifest.training_set,
        }
    # Package once without metrics so the evaluation runs the exact shipped artefact.
    draft_dir = recipe.work_dir / "draft"
    draft = build_package(
        recipe,
        weights=weights,
        lm=lm,
        metrics={},
        training_set=training_set,
        model_uuid=model_uuid,
        out_dir=draft_dir,
    )
    transcriber = Transcriber(read_package(draft))
    log("tuning the decoder on the validation set")
    decoding, tried = tune_decoding(transcriber, valid_manifest)
    log(json.dumps({"decoding": decoding.to_dict(), "tried": tried}))
    log("evaluating on the held-out test set (unseen sentences, unseen voices)")
    report = evaluate_manifest(transcriber, test_manifest, options=decoding)
    greedy_report = evaluate_manifest(
        transcriber, test_manifest, options=DecodeOptions(decoder="greedy", snap=False)
    )
    metrics: dict[str, float] = {
        "test_utterances": report.utterances,
        "wer": round(report.wer, 4),
        "cer": round(report.cer, 4),
        "wer_greedy": round(greedy_report.wer, 4),
        "cer_greedy": round(greedy_report.cer, 4),
        "train_seconds": round(result.seconds, 1),
    }
    if result.utterances_per_second:
        metrics["train_utterances_per_second"] = round(result.utterances_per_second, 1)
    for group in report.groups:  # flat keys: the manifest holds numbers only
        metrics[f"wer/{group.attribute}={group.value}"] = round(group.wer, 4)
    training_set["test_set"] = "synthetic held-out: unseen sentences, unseen voices"
    package = build_package(
        recipe,
        weights=weights,
        lm=lm,
        metrics=metrics,
        training_set=training_set,
        model_uuid=model_uuid,
        out_dir=recipe.out_dir,
        decoding=decoding.to_dict(),
    )
    draft.unlink(missing_ok=True)
    (recipe.work_dir / "report.md").write_text(report.to_markdown(), encoding="utf-8")
    (recipe.work_dir / "decoding.json").write_text(json.dumps(tried, indent=1), encoding="utf-8")
    return BaseResult(
        package=package,
        report=report,
        greedy_report=greedy_report,
        train=result,
        test_manifest=test_manifest,
    )
