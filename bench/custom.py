"""Custom models: resumable uploads, pair validation, and fine-tuning on an unseen domain.

Prints one JSON object of figures on stdout; progress goes to stderr::

    .venv/bin/python -m bench.custom [--archive-mb 50] [--chunk-mib 8] [--pairs 200]
        [--hours 1.0] [--minutes 10] [--test-utterances 200] [--work var/bench-custom]

Three measurements, each against a baseline of the same run:

1. **Upload**: a zip of synthetic WAV + transcript pairs (``--archive-mb``) sent through the
   real HTTP API with the official tus client (tuspy) in ``--chunk-mib`` PATCHes, to the app
   (``app.main.create_app``: temporary data directory, SQLite, local blob store, the bundled base
   model served) under uvicorn on 127.0.0.1 in a thread of this process; against the same bytes
   sealed the same way (``encrypt_stream`` under a fresh AES-256 data key) and written to the
   same local blob store in chunks of the same size, with no HTTP, database or tus around it.
   The last PATCH is answered at once; the server then reads the whole archive (decrypting
   the parts, checking and sealing every pair, the base model scoring each transcript): that
   *finish* is timed inside the server and reported apart.
2. **Validation**: ``asr.pairs.check_pair`` with the base model's ``TranscriptScorer`` over
   ``--pairs`` synthetic pairs, one after another: compute seconds per hour of audio.
3. **Domain adaptation (the headline)**: medical dictation, a domain the base model was not
   trained on (its corpus is general English). About ``--hours`` of medical speech (training
   sentences, training voice variants) fine-tunes the bundled base model with the training
   job's recipe (``asr.finetune``: a 30% general-speech mix in every epoch, the word LM
   extended with the training transcripts and the medical term list as a vocabulary) for
   ``--minutes`` of CPU training; the base (*standard*) and fine-tuned (*custom*) models are
   scored with the same decoder settings on a test set of sentences AND voice variants that
   training never saw.

Synthesised audio is cached under ``--work`` (a re-run renders nothing new); the servers'
data, the fine-tuning checkpoint and the candidate package live in a temporary folder there,
removed at the end. MB is 2**20 bytes, as in bench/store.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import torch
import uvicorn
from rich.console import Console
from tusclient.client import TusClient

from app.custom import data as custom_data
from app.custom import endpoints as custom_endpoints
from app.custom import uploads
from app.kit.crypto import encrypt_stream, new_data_key
from app.kit.db import create_db_engine, make_sessionmaker, session_scope
from app.kit.settings import BUNDLED_MODELS_DIR, Settings
from app.main import create_app
from app.samples.runtime import open_sample_store
from app.tenancy import service as tenancy
from asr.corpus import medical_terms
from asr.finetune import FinetuneRecipe, finetune
from asr.package import read_package
from asr.pairs import PairReport, TranscriptScorer, check_pair
from asr.synth import read_manifest
from bench import custom_corpus
from migrations.run import upgrade

console = Console(stderr=True)
MB = 1 << 20
BASE_PACKAGE = next(iter(sorted(BUNDLED_MODELS_DIR.glob("*.dg"))))
URL = "/v1/governance/custom-models"
TARGET_RELATIVE_WER_REDUCTION = 0.30

FIGURES = """\
figures (one JSON object on stdout):
  upload (1):
    archive_mb, archive_pairs, archive_audio_hours   the zip sent (stored, WAV + .txt pairs)
    chunk_mib, tus_patches                            PATCH size and how many were sent
    tus_create_ms                                     the creation POST
    tus_seconds                                       creation POST to the last PATCH's answer
                                                      (answered at once: the server reads the
                                                      archive after it)
    tus_until_complete_seconds                        creation POST until GET .../uploads/{id}
                                                      says complete (the archive read)
    tus_finish_seconds                                the server reading the archive after the
                                                      last PATCH: _assemble (decrypt and join
                                                      the parts: tus_finish_assemble_seconds),
                                                      check_pair on every pair
                                                      (tus_finish_validation_seconds), sealing
                                                      pairs and rows (..._other_seconds)
    tus_scorer_load_seconds                           building the base model's scorer
                                                      (scorer_for: once per server process)
    tus_transfer_seconds                              = tus_seconds
    tus_mb_per_s                                      archive MB / tus_seconds: HTTP, auth, tus,
                                                      sealing and writing each part
    tus_mb_per_s_including_finish                     archive MB / tus_until_complete_seconds
    tus_patch_ms_median                               a PATCH before the last, client side
    raw_encrypted_write_mb_per_s                      the same bytes, encrypt_stream + blob put
                                                      per chunk of the same size, no HTTP; median
                                                      of --raw-runs (raw_encrypted_write_seconds,
                                                      each run: ..._seconds_runs)
    tus_vs_raw                                        tus_mb_per_s / raw_encrypted_write_mb_per_s
    tus_pairs_accepted, tus_pairs_rejected,
    tus_rejections_by_reason, tus_archive_problems    the upload's outcome (GET .../data)
    tus_finish_validation_seconds_per_audio_hour      check_pair inside the server, per audio hour
  validation (2):
    validation_pairs, validation_audio_hours          pairs checked one after another
    validation_seconds                                time spent in check_pair (first call,
                                                      torch's warm-up, untimed)
    validation_seconds_per_audio_hour                 validation_seconds / audio hours (wall
                                                      time: it grows on a busy machine)
    validation_real_time_factor                       audio seconds per compute second
    validation_accepted, validation_rejections_by_reason, validation_loss_per_char_median
  domain adaptation (3, the headline; test set: unseen sentences and unseen voice variants):
    wer_standard, cer_standard                        the base model on the test set
    wer_custom, cer_custom                            the fine-tuned model, same decoder settings
    relative_wer_reduction                            1 - wer_custom / wer_standard (target 0.30:
                                                      target_relative_wer_reduction, target_met)
    relative_cer_reduction                            1 - cer_custom / cer_standard
    term_recall_standard, term_recall_custom          share of medical-term occurrences recognised
    train_utterances, train_hours, train_sentences    the domain training set (distinct sentences)
    test_utterances, test_hours, test_sentences,
    test_words                                        the held-out test set
    test_sentences_seen_in_training, test_voices_seen_in_training   leak checks: both must be 0
    mix_utterances, mix_fraction                      general speech mixed into every epoch
    lr, lm_vocabulary_terms                           peak learning rate; medical terms given
                                                      to the word LM as a vocabulary
    train_minutes, train_steps, train_utterances_per_second   the training loop (its
                                                      budget; the recipe's greedy scoring of the
                                                      test set every 200 steps counts in it)
    training_minutes_per_audio_hour                   train_minutes / train_hours
    finetune_minutes                                  the whole recipe: loading features, scoring
                                                      both models, training, packaging
  and: when, machine, threads, device, package (the base model), seed, synthesis_seconds
  (about 1 s when all audio was cached), wall_seconds.
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- 1. upload: tus through HTTP against encrypt_stream + blob put ---------------------------


@dataclass
class FinishTimes:
    """Seconds the server spent in the parts of the tus finish, timed in place."""

    finish: float = 0.0
    assemble: float = 0.0
    validation: float = 0.0
    validated_audio_seconds: float = 0.0
    scorer: float = 0.0  # scorer_for: the base model's scorer is built on the first PATCH


@contextmanager
def timing_finish(times: FinishTimes) -> Iterator[None]:
    """Wrap ``uploads._finish``, ``uploads._assemble``, the ``check_pair`` of
    ``app.custom.data`` and ``app.custom.endpoints.scorer_for`` (each reached as a module
    attribute) with timers; restore after."""
    finish, assemble = uploads._finish, uploads._assemble
    check = custom_data.check_pair  # type: ignore[attr-defined]
    scorer_for = custom_endpoints.scorer_for

    def timed_finish(*args: Any, **kwargs: Any) -> None:
        began = time.perf_counter()
        try:
            finish(*args, **kwargs)
        finally:
            times.finish += time.perf_counter() - began

    def timed_assemble(*args: Any, **kwargs: Any) -> bytes:
        began = time.perf_counter()
        try:
            return assemble(*args, **kwargs)
        finally:
            times.assemble += time.perf_counter() - began

    def timed_check(*args: Any, **kwargs: Any) -> PairReport:
        began = time.perf_counter()
        report = check(*args, **kwargs)
        times.validation += time.perf_counter() - began
        times.validated_audio_seconds += report.duration or 0.0
        return report

    def timed_scorer_for(*args: Any, **kwargs: Any) -> TranscriptScorer | None:
        began = time.perf_counter()
        try:
            return scorer_for(*args, **kwargs)
        finally:
            times.scorer += time.perf_counter() - began

    uploads._finish = timed_finish
    uploads._assemble = timed_assemble
    custom_data.check_pair = timed_check  # type: ignore[attr-defined]
    custom_endpoints.scorer_for = timed_scorer_for
    try:
        yield
    finally:
        uploads._finish, uploads._assemble = finish, assemble
        custom_data.check_pair = check  # type: ignore[attr-defined]
        custom_endpoints.scorer_for = scorer_for


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """The app under uvicorn on 127.0.0.1 in a thread; yields its base URL once started."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # the registry loads the base model first
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise SystemExit("the app did not start under uvicorn")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def reseller_headers(settings: Settings) -> dict[str, str]:
    engine = create_db_engine(settings.effective_database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            reseller = tenancy.create_reseller(session, name="Bench", actor="bench")
            _key, secret = tenancy.create_reseller_key(
                session, reseller_id=reseller.id, actor="bench"
            )
    finally:
        engine.dispose()
    return {"Authorization": f"Token {secret}"}


def tus_upload(
    base_url: str, headers: dict[str, str], archive: bytes, chunk: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Create a model, send the archive with tuspy chunk by chunk; (timings, outcome)."""
    with httpx.Client(base_url=base_url, headers=headers, timeout=600) as client:
        created = client.post(URL, json={"name": "bench", "language": "en", "domain": "medical"})
        if created.status_code != 201:
            raise SystemExit(f"creating the model answered {created.status_code}: {created.text}")
        model_id = created.json()["id"]
        tus = TusClient(f"{base_url}{URL}/{model_id}/uploads", headers=headers)
        patches: list[float] = []
        with io.BytesIO(archive) as stream:
            uploader = tus.uploader(
                file_stream=stream, chunk_size=chunk, metadata={"filename": "bench.zip"}
            )
            began = time.perf_counter()
            uploader.set_url(uploader.create_url())
            uploader.offset = 0
            created_at = time.perf_counter()
            while uploader.offset < len(archive):
                sent = time.perf_counter()
                uploader.upload_chunk()  # type: ignore[no-untyped-call]
                patches.append(time.perf_counter() - sent)
            seconds = time.perf_counter() - began
            url = str(uploader.url)
        # The last PATCH is answered at once; the server then reads the archive.
        state = client.get(url.removeprefix(base_url)).json()
        while state.get("status") == "validating":
            time.sleep(0.05)
            state = client.get(url.removeprefix(base_url)).json()
        complete = time.perf_counter() - began
        if state.get("status") != "complete":
            raise SystemExit(f"the upload ended {state.get('status')}: {state.get('result')}")
        files = client.get(f"{URL}/{model_id}/data").json()["files"]
    reasons = Counter(reason["code"] for f in files for reason in f["reasons"])
    timings = {
        "seconds": seconds,
        "complete": complete,
        "create": created_at - began,
        "patches": patches,
    }
    outcome = {
        "accepted": sum(1 for f in files if f["status"] == "accepted"),
        "rejected": sum(1 for f in files if f["status"] == "rejected"),
        "reasons": dict(sorted(reasons.items())),
        "problems": len(state["result"]["problems"]),
    }
    return timings, outcome


def raw_encrypted_write(settings: Settings, archive: bytes, chunk: int, run: int) -> float:
    """Seconds to seal ``archive`` chunk by chunk and put each into the app's blob store."""
    blobs = open_sample_store(settings).blobs
    key = new_data_key()
    prefix = f"bench/raw-{run}/"
    began = time.perf_counter()
    for offset in range(0, len(archive), chunk):
        context = {"custom_model": "bench", "upload": str(run), "offset": str(offset)}
        sealed = encrypt_stream(
            [archive[offset : offset + chunk]], key=key, key_version=1, context=context
        )
        blobs.put(f"{prefix}{offset:015d}", sealed)
    seconds = time.perf_counter() - began
    blobs.delete_prefix(prefix)
    return seconds


def bench_upload(
    tmp: Path, archive: custom_corpus.Archive, chunk: int, raw_runs: int
) -> dict[str, Any]:
    size = len(archive.data)
    models = tmp / "models"
    models.mkdir(parents=True)
    settings = Settings(
        env="test",
        data_dir=tmp / "var",
        models_dir=models,
        bundled_models_dir=BUNDLED_MODELS_DIR,
        models_poll_seconds=600.0,
        log_level="WARNING",
        custom_max_archive_bytes=max(64 * MB, size),
    )
    upgrade(settings.effective_database_url)
    headers = reseller_headers(settings)
    raw: list[float] = []
    times = FinishTimes()
    console.print(f"raw baseline: {size / MB:.1f} MB in {chunk / MB:g} MiB chunks")
    raw.append(raw_encrypted_write(settings, archive.data, chunk, 0))
    console.print("tus upload through HTTP (tuspy, uvicorn in a thread)")
    with timing_finish(times), serving(settings) as base_url:
        timings, outcome = tus_upload(base_url, headers, archive.data, chunk)
    for run in range(1, raw_runs):
        raw.append(raw_encrypted_write(settings, archive.data, chunk, run))
    # Every PATCH answered: the finish (reading the archive) runs after the last answer.
    transfer = timings["seconds"]
    raw_seconds = statistics.median(raw)
    tus_mb_s = size / MB / transfer
    raw_mb_s = size / MB / raw_seconds
    patches = timings["patches"]
    return {
        "archive_mb": round(size / MB, 2),
        "archive_pairs": archive.pairs,
        "archive_audio_hours": round(archive.audio_seconds / 3600, 4),
        "chunk_mib": round(chunk / MB, 3),
        "tus_patches": len(patches),
        "tus_create_ms": round(timings["create"] * 1e3, 1),
        "tus_seconds": round(timings["seconds"], 3),
        "tus_finish_seconds": round(times.finish, 3),
        "tus_finish_assemble_seconds": round(times.assemble, 3),
        "tus_finish_validation_seconds": round(times.validation, 3),
        "tus_finish_other_seconds": round(times.finish - times.assemble - times.validation, 3),
        "tus_transfer_seconds": round(transfer, 3),
        "tus_scorer_load_seconds": round(times.scorer, 3),
        "tus_mb_per_s": round(tus_mb_s, 1),
        "tus_until_complete_seconds": round(timings["complete"], 3),
        "tus_mb_per_s_including_finish": round(size / MB / timings["complete"], 2),
        "tus_patch_ms_median": round(statistics.median(patches[:-1]) * 1e3, 1)
        if len(patches) > 1
        else None,
        "raw_encrypted_write_seconds": round(raw_seconds, 3),
        "raw_encrypted_write_seconds_runs": [round(s, 3) for s in raw],
        "raw_encrypted_write_mb_per_s": round(raw_mb_s, 1),
        "tus_vs_raw": round(tus_mb_s / raw_mb_s, 3),
        "tus_pairs_accepted": outcome["accepted"],
        "tus_pairs_rejected": outcome["rejected"],
        "tus_rejections_by_reason": outcome["reasons"],
        "tus_archive_problems": outcome["problems"],
        "tus_finish_validation_seconds_per_audio_hour": round(
            times.validation / (times.validated_audio_seconds / 3600), 1
        )
        if times.validated_audio_seconds
        else None,
    }


# --- 2. validation: check_pair with the base model's scorer ----------------------------------


def bench_validation(manifest: Path, pairs: int) -> dict[str, Any]:
    rows = read_manifest(manifest)[:pairs]
    if not rows:
        raise SystemExit("no pairs to validate")
    loaded = [
        ((manifest.parent / str(row["audio"])).read_bytes(), str(row["text"])) for row in rows
    ]
    scorer = TranscriptScorer(read_package(BASE_PACKAGE))
    check_pair(*loaded[0], scorer=scorer)  # untimed: torch's first call pays its warm-up
    seen: set[str] = set()
    reports: list[PairReport] = []
    seconds = 0.0
    for audio, text in loaded:
        began = time.perf_counter()
        report = check_pair(audio, text, scorer=scorer, seen_hashes=seen)
        seconds += time.perf_counter() - began
        if report.accepted and report.audio_sha256:
            seen.add(report.audio_sha256)
        reports.append(report)
    audio_seconds = sum(r.duration or 0.0 for r in reports)
    losses = [r.ctc_loss_per_char for r in reports if r.ctc_loss_per_char is not None]
    reasons = Counter(code.value for r in reports for code in r.codes)
    return {
        "validation_pairs": len(reports),
        "validation_audio_hours": round(audio_seconds / 3600, 4),
        "validation_seconds": round(seconds, 3),
        "validation_seconds_per_audio_hour": round(seconds / (audio_seconds / 3600), 1),
        "validation_real_time_factor": round(audio_seconds / seconds, 1),
        "validation_accepted": sum(1 for r in reports if r.accepted),
        "validation_rejections_by_reason": dict(sorted(reasons.items())),
        "validation_loss_per_char_median": round(statistics.median(losses), 3) if losses else None,
    }


# --- 3. the headline: fine-tuning on a domain the base model has not seen -------------------


def _hours(rows: list[dict[str, object]]) -> float:
    return sum(float(str(r["duration"])) for r in rows) / 3600


def _relative(before: float, after: float) -> float | None:
    return round(1 - after / before, 4) if before > 0 else None


def bench_domain(
    tmp: Path, train: Path, test: Path, mix: Path, args: argparse.Namespace
) -> dict[str, Any]:
    train_rows, test_rows = read_manifest(train), read_manifest(test)
    train_text = {str(r["text"]) for r in train_rows}
    test_text = {str(r["text"]) for r in test_rows}
    train_voices = {str(r["variant"]) for r in train_rows}
    test_voices = {str(r["variant"]) for r in test_rows}
    terms = medical_terms()
    console.print(
        f"fine-tuning on {len(train_rows)} medical utterances ({_hours(train_rows):.2f} h) "
        f"for {args.minutes:g} min; scoring both models on {len(test_rows)} held-out ones"
    )
    began = time.perf_counter()
    result = finetune(
        FinetuneRecipe(
            base_package=BASE_PACKAGE,
            train_manifest=train,
            eval_manifest=test,
            work_dir=tmp / "finetune" / "work",
            out_dir=tmp / "finetune" / "out",
            mix_manifest=mix,
            mix_fraction=args.mix_fraction,
            minutes=args.minutes,
            lr=args.lr,
            domain="medical",
            lm_sentences=terms,
            terms=terms,
            seed=args.seed,
            progress=True,
        )
    )
    wall = time.perf_counter() - began
    base, custom = result.base, result.candidate
    train_hours = _hours(train_rows)
    train_minutes = result.train.seconds / 60
    reduction = _relative(base.wer, custom.wer)
    return {
        "domain": "medical",
        "wer_standard": round(base.wer, 4),
        "wer_custom": round(custom.wer, 4),
        "relative_wer_reduction": reduction,
        "target_relative_wer_reduction": TARGET_RELATIVE_WER_REDUCTION,
        "target_met": reduction is not None and reduction >= TARGET_RELATIVE_WER_REDUCTION,
        "cer_standard": round(base.cer, 4),
        "cer_custom": round(custom.cer, 4),
        "relative_cer_reduction": _relative(base.cer, custom.cer),
        "term_recall_standard": None if base.term_recall is None else round(base.term_recall, 4),
        "term_recall_custom": None if custom.term_recall is None else round(custom.term_recall, 4),
        "train_utterances": len(train_rows),
        "train_hours": round(train_hours, 4),
        "train_sentences": len(train_text),
        "test_utterances": len(test_rows),
        "test_hours": round(_hours(test_rows), 4),
        "test_sentences": len(test_text),
        "test_words": base.words,
        "test_sentences_seen_in_training": len(test_text & train_text),
        "test_voices_seen_in_training": len(test_voices & train_voices),
        "mix_utterances": len(read_manifest(mix)),
        "mix_fraction": args.mix_fraction,
        "lr": args.lr,
        "lm_vocabulary_terms": len(terms),
        "train_minutes": round(train_minutes, 2),
        "train_steps": result.train.steps,
        "train_utterances_per_second": round(result.train.utterances_per_second, 1),
        "training_minutes_per_audio_hour": round(train_minutes / train_hours, 2),
        "finetune_minutes": round(wall / 60, 2),
    }


# --- main ------------------------------------------------------------------------------------


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.custom",
        description=__doc__,
        epilog=FIGURES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--archive-mb",
        type=_positive(float),
        default=50.0,
        help="size of the uploaded zip in MB (2**20 bytes; default 50)",
    )
    parser.add_argument(
        "--chunk-mib",
        type=_positive(float),
        default=8.0,
        help="tus PATCH size, and the raw baseline's chunk (default 8)",
    )
    parser.add_argument(
        "--raw-runs", type=int, default=3, help="runs of the raw baseline, median taken (default 3)"
    )
    parser.add_argument(
        "--pairs", type=int, default=200, help="pairs validated with check_pair (default 200)"
    )
    parser.add_argument(
        "--hours",
        type=_positive(float),
        default=1.0,
        help="hours of medical training speech (default 1.0)",
    )
    parser.add_argument(
        "--minutes",
        type=_positive(float),
        default=10.0,
        help="fine-tuning training budget in minutes (default 10)",
    )
    parser.add_argument(
        "--test-utterances", type=int, default=200, help="held-out test utterances (default 200)"
    )
    parser.add_argument(
        "--mix-utterances",
        type=int,
        default=1000,
        help="general utterances mixed in (default 1000, as a training job)",
    )
    parser.add_argument(
        "--mix-fraction",
        type=float,
        default=0.3,
        help="share of each epoch from the general mix (default 0.3)",
    )
    parser.add_argument(
        "--lr",
        type=_positive(float),
        default=FinetuneRecipe.lr,
        help=f"peak learning rate (default {FinetuneRecipe.lr:g}, the recipe's)",
    )
    parser.add_argument("--workers", type=int, default=2, help="synthesis processes (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("var/bench-custom"),
        help="cache of synthesised audio and temporary data",
    )
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["upload", "validation", "domain"],
        help="parts not to run",
    )
    args = parser.parse_args(argv)
    if min(args.raw_runs, args.pairs, args.test_utterances, args.workers) < 1:
        parser.error("--raw-runs, --pairs, --test-utterances and --workers must be at least 1")
    if args.mix_utterances < 1 or not 0 <= args.mix_fraction < 1:
        parser.error("--mix-utterances must be at least 1 and --mix-fraction in [0, 1)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "package": BASE_PACKAGE.name,
        "seed": args.seed,
    }

    console.print(f"synthesising (cached under {args.work})")
    synth_began = time.perf_counter()
    split = custom_corpus.domain_split()
    train = custom_corpus.training_set(
        args.work, split.train_sentences, hours=args.hours, seed=args.seed, workers=args.workers
    )
    test = custom_corpus.test_set(
        args.work,
        split.test_sentences,
        n=args.test_utterances,
        seed=args.seed,
        workers=args.workers,
    )
    mix = custom_corpus.general_mix(
        args.work, n=args.mix_utterances, seed=args.seed, workers=args.workers
    )
    figures["synthesis_seconds"] = round(time.perf_counter() - synth_began, 1)

    tmp = Path(tempfile.mkdtemp(prefix="run-", dir=args.work))
    try:
        if "upload" not in args.skip:
            archive = custom_corpus.zip_archive([train, mix], round(args.archive_mb * MB))
            figures |= bench_upload(
                tmp / "upload", archive, round(args.chunk_mib * MB), args.raw_runs
            )
        if "validation" not in args.skip:
            console.print(f"check_pair on {args.pairs} pairs")
            figures |= bench_validation(train, args.pairs)
        if "domain" not in args.skip:
            figures |= bench_domain(tmp, train, test, mix, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    sys.stdout.write(json.dumps(figures) + "\n")


if __name__ == "__main__":
    main()
