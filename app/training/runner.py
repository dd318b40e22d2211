"""A training job: decrypt its set to scratch, fine-tune, evaluate, register the candidate.

    outcome = execute_job(ctx)       # called by app.training.queue.work_once in `mip worker`

The decrypted audio and transcripts live only in a private scratch directory (0700) under
``MIP_SCRATCH_DIR`` that is removed when the job ends, whether it succeeded, failed or was
cancelled. General synthetic speech (not customer data) is mixed into every epoch against
forgetting; it is synthesised once and cached under the data directory. The candidate is scored
against the base model on the set's held-out split, overall and per group, and the package (with
its training set and metrics in the manifest) is registered as a candidate model version.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import soundfile as sf
from sqlalchemy.orm import Session

from app.datasets import repository as datasets_repository
from app.datasets.catalog import sample_transcript
from app.datasets.service import check_trainable, training_text
from app.kit.db import session_scope
from app.kit.errors import Conflict
from app.kit.settings import Settings
from app.samples.service import decrypt_object
from app.tables.datasets import TrainingSet
from app.tables.samples import Sample
from app.tables.training import TrainingJob
from app.training import promotion
from app.training.queue import JobCancelled, JobContext, JobOutcome
from app.training.schemas import CustomJobParams, JobParams
from app.training.service import find_base_package
from asr.audio import decode
from asr.corpus import load_sentences
from asr.evaluate import EvalReport
from asr.finetune import FinetuneCancelled, FinetuneRecipe, finetune
from asr.synth import plan_corpus, read_manifest, synthesize
from curation.vocabulary import ATTRIBUTE_COLUMNS

SAMPLE_RATE = 16_000


class TrainingDataGone(Conflict):
    """Samples of the set were erased or purged (the set is tainted): nothing is trained."""


def execute_job(ctx: JobContext) -> JobOutcome:
    """The executor of `mip worker`: see the module docstring (custom models' jobs:
    :mod:`app.training.custom_runner`)."""
    with session_scope(ctx.factory) as session:
        job = _job(session, ctx.job_id)
        if job.custom_model_id is not None:
            from app.training.custom_runner import execute_custom_job

            return execute_custom_job(ctx)
        params = JobParams.model_validate(job.hyperparameters)
        if job.training_set_id is None:
            raise TrainingDataGone(f"Training job {ctx.job_id} names no training set.")
        training_set = _training_set(session, job.training_set_id)
        check_trainable(training_set)
        base = find_base_package(ctx.settings, job.base_model)
        lineage = _lineage(training_set)
        base_ref = f"{base.manifest.name}:{base.manifest.version}"
        version = promotion.next_version(
            session, params.name or base.manifest.name, base.manifest.version
        )
    ctx.log(f"base model {base_ref}; training set {lineage['name']}:{lineage['version']}")
    with _scratch(ctx.settings, ctx.job_id) as scratch:
        counts = _decrypt_set(ctx, training_set_id=lineage_id(lineage), scratch=scratch)
        ctx.log(f"decrypted {counts['train']} training and {counts['eval']} evaluation samples")
        if counts["train"] == 0 or counts["eval"] == 0:
            raise TrainingDataGone(
                "The training set needs samples in both its train and eval splits "
                f"(train {counts['train']}, eval {counts['eval']}); build it with eval_fraction."
            )
        mix = _mix_corpus(ctx, params) if params.mix_utterances and params.mix_fraction else None
        recipe = FinetuneRecipe(
            base_package=base.path,
            train_manifest=scratch / "train" / "manifest.jsonl",
            eval_manifest=scratch / "eval" / "manifest.jsonl",
            work_dir=scratch / "run",
            out_dir=scratch / "out",
            mix_manifest=mix,
            mix_fraction=params.mix_fraction if mix else 0.0,
            minutes=params.minutes,
            max_steps=params.max_steps,
            device=params.device,
            name=params.name,
            version=version,
            training_set=lineage,
            seed=params.seed,
            lm_min_count=params.lm_min_count,
        )
        if params.lr is not None:
            recipe.lr = params.lr
        ctx.log(f"fine-tuning for up to {params.minutes} min on {params.device}")
        try:
            result = finetune(
                recipe,
                on_progress=lambda fraction, figures: ctx.progress(0.05 + 0.9 * fraction, figures),
                should_stop=ctx.cancelled,
            )
        except FinetuneCancelled:
            raise JobCancelled(f"Training job {ctx.job_id} was cancelled.") from None
        metrics = {"candidate": _scores(result.candidate), "base": _scores(result.base)}
        ctx.log(
            f"held-out WER: candidate {result.candidate.wer:.3f}, base {result.base.wer:.3f} "
            f"({result.candidate.utterances} utterances)"
        )
        with session_scope(ctx.factory) as session:
            # Erased while we trained? The candidate learned from data that must be gone.
            check_trainable(_training_set(session, lineage_id(lineage)))
            job = _job(session, ctx.job_id)
            registered = promotion.register_candidate(
                session,
                ctx.store,
                package=result.package,
                job=job,
                training_set_id=lineage_id(lineage),
                base_model=base_ref,
                metrics=metrics,
            )
            outcome: dict[str, Any] = {
                "model_version_id": str(registered.id),
                "name": registered.name,
                "version": registered.version,
                "uuid": str(registered.uuid),
                "steps": result.train.steps,
                "utterances_per_second": round(result.train.utterances_per_second, 2),
            }
            if params.auto_promote:
                verdict = promotion.maybe_auto_promote(
                    session, ctx.store, ctx.settings, registered, actor=f"job:{ctx.job_id}"
                )
                outcome["promoted"] = verdict["promoted"]
                # Why a candidate was left behind, where DataOps reads the job.
                outcome["promotion_reasons"] = verdict["reasons"]
    ctx.log(f"registered candidate {outcome['name']} {outcome['version']}")
    return JobOutcome(result=outcome, metrics=metrics)


def lineage_id(lineage: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(str(lineage["id"]))


def _job(session: Session, job_id: uuid.UUID) -> TrainingJob:
    job = session.get(TrainingJob, job_id)
    if job is None:
        raise TrainingDataGone(f"Training job {job_id} no longer exists.")
    return job


def _training_set(session: Session, set_id: uuid.UUID) -> TrainingSet:
    row = datasets_repository.get_training_set(session, set_id)
    if row is None:
        raise TrainingDataGone(f"Training set {set_id} no longer exists.")
    return row


def _lineage(training_set: TrainingSet) -> dict[str, Any]:
    return {
        "id": str(training_set.id),
        "name": training_set.name,
        "version": training_set.version,
        "manifest_hash": training_set.manifest_hash,
        "samples": training_set.sample_count,
        "eval_samples": training_set.eval_count,
    }


@contextmanager
def _scratch(settings: Settings, job_id: uuid.UUID) -> Iterator[Path]:
    """A private folder for the job's plaintext, removed however the job ends."""
    root = settings.effective_scratch_dir
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"job-{job_id}-", dir=root))
    os.chmod(folder, 0o700)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _decrypt_set(ctx: JobContext, *, training_set_id: uuid.UUID, scratch: Path) -> dict[str, int]:
    """Write each member's audio (16 kHz WAV) and text into scratch/{train,eval}/ manifests."""
    rows: dict[str, list[str]] = {"train": [], "eval": []}
    with session_scope(ctx.factory) as session:
        members = datasets_repository.members(session, training_set_id)
        for index, (sample_id, _organization_id, split) in enumerate(members):
            sample = session.get(Sample, sample_id)
            if sample is None:
                raise TrainingDataGone(
                    f"Sample {sample_id} of the training set is gone (erased or purged)."
                )
            text = training_text(sample_transcript(session, ctx.store, sample))
            audio = decode(decrypt_object(session, ctx.store, sample, "audio"))
            folder = scratch / split
            (folder / "audio").mkdir(parents=True, exist_ok=True)
            name = f"audio/{sample.id}.wav"
            sf.write(folder / name, audio.samples, audio.sample_rate, subtype="PCM_16")
            row: dict[str, Any] = {
                "id": str(sample.id),
                "audio": name,
                "text": text or "",
                "duration": round(audio.duration, 4),
                "sample_rate": audio.sample_rate,
            }
            for attribute in ATTRIBUTE_COLUMNS:
                row[attribute] = getattr(sample, attribute)
            rows[split].append(json.dumps(row))
            if index % 20 == 0:
                ctx.progress(0.05 * index / max(len(members), 1))
                if ctx.cancelled():
                    raise JobCancelled(f"Training job {ctx.job_id} was cancelled.")
    for split, lines in rows.items():
        (scratch / split).mkdir(parents=True, exist_ok=True)
        (scratch / split / "manifest.jsonl").write_text(
            "".join(f"{line}\n" for line in lines), encoding="utf-8"
        )
    return {split: len(lines) for split, lines in rows.items()}


def _mix_corpus(ctx: JobContext, params: JobParams | CustomJobParams) -> Path:
    """General synthetic speech (not customer data), synthesised once per size and seed."""
    folder = ctx.settings.data_dir / "cache" / f"general-mix-{params.mix_utterances}-{params.seed}"
    manifest = folder / "manifest.jsonl"
    if manifest.exists() and len(read_manifest(manifest)) == params.mix_utterances:
        return manifest
    ctx.log(f"synthesising {params.mix_utterances} general utterances (cached for next jobs)")
    specs = plan_corpus(
        load_sentences("general"),
        n=params.mix_utterances,
        seed=10_000 + params.seed,
        voices="train",
        id_prefix="mix",
    )
    return synthesize(specs, folder, workers=1, progress=False)


def _scores(report: EvalReport) -> dict[str, Any]:
    groups: dict[str, dict[str, dict[str, float | int]]] = {}
    for group in report.groups:
        groups.setdefault(group.attribute, {})[group.value] = {
            "wer": round(group.wer, 4),
            "utterances": group.utterances,
        }
    return {
        "wer": round(report.wer, 4),
        "cer": round(report.cer, 4),
        "utterances": report.utterances,
        "groups": groups,
    }
