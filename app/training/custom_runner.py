"""A custom model's training job: decrypt its confirmed set, fine-tune, test, register.

    outcome = execute_custom_job(ctx)   # app.training.runner.execute_job hands custom jobs here

The accepted files of the confirmed data set are decrypted into the job's private scratch
folder (removed however the job ends) and split: a held-out test share (whole speakers when
the files name them) and the rest to train on. The base model is fine-tuned on the rest with
general synthetic speech mixed in against forgetting (never another customer's data, never
MIP samples); the version's word LM is the base's plus the customer's transcripts and
vocabulary, and its decoder boosts the vocabulary. Then the new version and the standard
model transcribe the same held-out audio and :mod:`asr.compare` scores both (WER and CER with
bootstrap intervals, per speaker, the most common errors). The package and the report are
sealed under the model's key and the version is registered as a candidate for its owner.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import soundfile as sf
from sqlalchemy.orm import Session

from app.custom import versions
from app.custom.data import read_audio, read_transcript
from app.custom.dataset import DataSetNotReady, accepted_files
from app.engine.registry import RESTRICTED_TAG
from app.kit.db import session_scope, utcnow
from app.tables.custom import CustomModel
from app.training.queue import JobCancelled, JobContext, JobOutcome
from app.training.runner import TrainingDataGone, _job, _mix_corpus, _scratch
from app.training.schemas import CustomJobParams
from app.training.service import find_base_package
from asr.audio import decode
from asr.compare import compare, render_html, split_held_out
from asr.finetune import FinetuneCancelled, FinetuneRecipe, finetune
from asr.inference import Transcriber
from asr.package import read_package
from asr.vocabulary import Vocabulary


def execute_custom_job(ctx: JobContext) -> JobOutcome:
    with session_scope(ctx.factory) as session:
        job = _job(session, ctx.job_id)
        params = CustomJobParams.model_validate(job.hyperparameters)
        model = _model(session, job.custom_model_id)
        model_id = model.id
        if model.data_hash is None:
            raise DataSetNotReady(f"The data set of {model.name} is no longer confirmed.")
        base = find_base_package(ctx.settings, job.base_model)
        number = versions.next_number(session, model)
        vocabulary = Vocabulary.parse(model.vocabulary or [])
        identity = {
            "name": model.name,
            "domain": model.domain.replace("-", "_"),
            "data_hash": model.data_hash,
            "model_id": str(model.id),
        }
        files = [(f.id, f.speaker) for f in accepted_files(session, model)]
    ctx.log(f"custom model {identity['name']} version {number}: {len(files)} files")
    with _scratch(ctx.settings, ctx.job_id) as scratch:
        rows = _decrypt(ctx, scratch, model_id)
        split = split_held_out(
            rows,
            speakers=[r["speaker"] for r in rows],
            fraction=params.test_fraction,
            seed=params.seed,
        )
        _write_manifest(scratch / "train", [rows[i] for i in split.train])
        _write_manifest(scratch / "test", [rows[i] for i in split.test])
        ctx.log(
            f"{len(split.train)} files to train on, {len(split.test)} held out to test "
            f"({'speaker-disjoint' if split.speaker_disjoint else 'not speaker-disjoint'})"
        )
        mix = _mix_corpus(ctx, params) if params.mix_utterances and params.mix_fraction else None
        today = utcnow().date().isoformat()
        recipe = FinetuneRecipe(
            base_package=base.path,
            train_manifest=scratch / "train" / "manifest.jsonl",
            eval_manifest=scratch / "test" / "manifest.jsonl",
            work_dir=scratch / "run",
            out_dir=scratch / "out",
            mix_manifest=mix,
            mix_fraction=params.mix_fraction if mix else 0.0,
            minutes=params.minutes,
            max_steps=params.max_steps,
            device=params.device,
            name=identity["name"],
            domain=identity["domain"],
            version=f"{today}.{number}",
            training_set={
                "custom_model": identity["model_id"],
                "custom_version": number,
                "data_hash": identity["data_hash"],
            },
            seed=params.seed,
            lm_min_count=params.lm_min_count,
            lm_sentences=vocabulary.lm_sentences(),
            terms=[t.term for t in vocabulary.terms],
            tags=[RESTRICTED_TAG],
            decoding={"vocabulary": vocabulary.to_dicts()} if vocabulary.terms else {},
        )
        if params.lr is not None:
            recipe.lr = params.lr
        ctx.log(f"fine-tuning for up to {params.minutes} min on {params.device}")
        try:
            result = finetune(
                recipe,
                on_progress=lambda fraction, figures: ctx.progress(0.05 + 0.85 * fraction, figures),
                should_stop=ctx.cancelled,
            )
        except FinetuneCancelled:
            raise JobCancelled(f"Training job {ctx.job_id} was cancelled.") from None
        ctx.log("testing the new version against the standard model on the held-out files")
        test, report = _test(base.path, result.package, [rows[i] for i in split.test], scratch)
        test["speaker_disjoint"] = split.speaker_disjoint
        test["warnings"] = _warnings(test, speakers_given=any(r["speaker"] for r in rows))
        for warning in test["warnings"]:
            ctx.log(warning, level="warning")
        ctx.progress(0.98)
        settings = {**params.model_dump(mode="json"), "steps": result.train.steps}
        with session_scope(ctx.factory) as session:
            model = _model(session, model_id)
            version = versions.register_version(
                session,
                ctx.store,
                model,
                number=number,
                package=result.package,
                test=test,
                report=report,
                settings=settings,
                vocabulary=vocabulary.to_dicts(),
                job_id=ctx.job_id,
                actor=f"job:{ctx.job_id}",
            )
            outcome = {
                "custom_model_id": identity["model_id"],
                "version": version.number,
                "package_uuid": version.package_uuid,
                "wer_custom": test["wer_custom"],
                "wer_standard": test["wer_standard"],
            }
    ctx.log(
        f"version {number}: held-out WER {test['wer_custom']:.3f} against the standard "
        f"model's {test['wer_standard']:.3f} ({test['utterances']} files)"
    )
    return JobOutcome(result=outcome, metrics={"test": test})


# Fewer held-out files than this: the test's intervals are too wide to tell the models apart.
MIN_TEST_FILES = 50


def _warnings(test: dict[str, Any], *, speakers_given: bool) -> list[str]:
    """What the owner should know before trusting the test (shown with the version)."""
    warnings = []
    if test["utterances"] < MIN_TEST_FILES:
        warnings.append(
            f"Only {test['utterances']} held-out files: too few for the test to tell the models "
            "apart reliably (see the intervals); add data or raise test_fraction."
        )
    if speakers_given and not test["speaker_disjoint"]:
        warnings.append(
            "The held-out files share speakers with the training files (too few named "
            "speakers to hold whole ones out): the test flatters the new version."
        )
    return warnings


def _model(session: Session, model_id: uuid.UUID | None) -> CustomModel:
    model = session.get(CustomModel, model_id) if model_id is not None else None
    if model is None:
        raise TrainingDataGone(f"Custom model {model_id} no longer exists.")
    return model


def _decrypt(ctx: JobContext, scratch: Path, model_id: uuid.UUID) -> list[dict[str, Any]]:
    """Each accepted file as 16 kHz WAV in scratch/audio, with its transcript and speaker."""
    rows: list[dict[str, Any]] = []
    (scratch / "audio").mkdir(parents=True, exist_ok=True)
    with session_scope(ctx.factory) as session:
        model = _model(session, model_id)
        records = accepted_files(session, model)
        for index, record in enumerate(records):
            audio = decode(read_audio(session, ctx.store, model, record))
            path = scratch / "audio" / f"{record.id}.wav"
            sf.write(path, audio.samples, audio.sample_rate, subtype="PCM_16")
            rows.append(
                {
                    "id": str(record.id),
                    "audio": f"../audio/{record.id}.wav",
                    "text": read_transcript(session, ctx.store, model, record),
                    "duration": round(audio.duration, 4),
                    "sample_rate": audio.sample_rate,
                    "speaker": record.speaker,
                }
            )
            if index % 20 == 0:
                ctx.progress(0.05 * index / max(len(records), 1))
                if ctx.cancelled():
                    raise JobCancelled(f"Training job {ctx.job_id} was cancelled.")
    return rows


def _write_manifest(folder: Path, rows: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8"
    )


def _test(
    standard_path: Path, custom_path: Path, rows: list[dict[str, Any]], scratch: Path
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Both models on the held-out files: the summary kept on the version (figures only, no
    customer words) and the full report files, sealed with the version."""
    standard = Transcriber(read_package(standard_path))
    custom = Transcriber(read_package(custom_path))
    references, by_custom, by_standard = [], [], []
    for row in rows:
        audio = decode((scratch / "test" / row["audio"]).read_bytes()).samples
        references.append(row["text"])
        by_custom.append(custom.transcribe(audio, custom.options()).text)
        by_standard.append(standard.transcribe(audio, standard.options()).text)
    speakers = [row["speaker"] for row in rows]
    comparison = compare(
        references,
        by_custom,
        by_standard,
        speakers=speakers if any(s is not None for s in speakers) else None,
    )
    full = comparison.to_dict()
    reduction = comparison.relative_wer_reduction
    summary: dict[str, Any] = {
        "utterances": comparison.utterances,
        "words": comparison.words,
        "wer_custom": comparison.custom.wer.value,
        "wer_standard": comparison.standard.wer.value,
        "cer_custom": comparison.custom.cer.value,
        "cer_standard": comparison.standard.cer.value,
        "wer_custom_ci": [comparison.custom.wer.low, comparison.custom.wer.high],
        "wer_standard_ci": [comparison.standard.wer.low, comparison.standard.wer.high],
        "relative_wer_reduction": reduction.to_dict() if reduction is not None else None,
        "tested_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    title = f"{custom.package.manifest.name} {custom.package.manifest.version} vs standard"
    report = {
        "test.json": json.dumps(full, indent=2).encode(),
        "test.html": render_html(comparison, title=title).encode(),
    }
    return summary, report
