"""The program's central claim, measured: does a balanced training set lower the worst group's WER?

Prints one JSON object of figures on stdout; progress goes to stderr::

    .venv/bin/python -m bench.fairness [--pool 2000] [--hours 0.25] [--minutes 3] [--work DIR]

A skewed pool of opted-in medical speech is synthesised (85% US English, the rest spread over
five other accents; few noisy recordings), as a customer base dominated by one market would
send it. Two training sets with the same hours budget are drawn from it: an *unbalanced* one
(a seeded random sample, what you get without curation) and a *balanced* one
(``curation.balance`` with uniform accents, capped at 40%). The shipped base model is fine-tuned
on each with the same recipe and time budget, and all three models are scored on the same
held-out set: unseen medical sentences, the same number per accent.

Figures: per-accent WER of the base model and both candidates, each one's overall and worst
accent WER, the accents' hours in each set, and the training throughput of both jobs.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console

from asr.corpus import load_sentences, split_sentences
from asr.finetune import FinetuneRecipe, finetune
from asr.inference import Transcriber
from asr.package import read_package
from asr.recipes import evaluate_manifest
from asr.synth import plan_corpus, read_manifest, synthesize
from curation.balance import BalanceSpec, balance
from curation.manifests import from_synth_manifest

console = Console(stderr=True)
BASE_PACKAGE = next((Path(__file__).resolve().parents[1] / "models").glob("*.dg"))
# The pool's accent mix: one dominant market, five small ones.
POOL_SHARES = {
    "us": 0.85,
    "rp": 0.03,
    "scottish": 0.03,
    "caribbean": 0.03,
    "northern_english": 0.03,
    "west_midlands": 0.03,
}
NOISE_WEIGHTS = (0.85, 0.05, 0.05, 0.05)  # none, white, pink, babble


def synthesise_pool(work: Path, *, n: int, held_out: int, seed: int) -> tuple[Path, Path]:
    """The skewed pool and a held-out set with ``held_out`` utterances per accent."""
    seen, unseen = split_sentences(load_sentences("medical"), test_fraction=0.2, salt="fairness")
    pool_rows: list[dict[str, Any]] = []
    for index, (accent, share) in enumerate(POOL_SHARES.items()):
        specs = plan_corpus(
            seen,
            n=max(1, round(n * share)),
            seed=seed + index,
            voices="train",
            domain="medical",
            accents=(accent,),
            noise_weights=NOISE_WEIGHTS,
            id_prefix=f"pool-{accent}",
        )
        manifest = synthesize(specs, work / "pool" / accent, workers=2, progress=False)
        for row in read_manifest(manifest):
            pool_rows.append({**row, "audio": str(manifest.parent / str(row["audio"]))})
    pool = work / "pool" / "manifest.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in pool_rows), encoding="utf-8")
    held = plan_corpus(
        unseen,
        n=held_out * len(POOL_SHARES),
        seed=seed + 100,
        voices="train",
        domain="medical",
        accents=tuple(POOL_SHARES),
        noise_weights=NOISE_WEIGHTS,
        id_prefix="held",
    )
    # plan_corpus draws accents at random: keep the first held_out of each for an even set.
    rows_by_accent: dict[str, int] = {}
    even = []
    for spec in held:
        if rows_by_accent.get(spec.accent, 0) < held_out:
            rows_by_accent[spec.accent] = rows_by_accent.get(spec.accent, 0) + 1
            even.append(spec)
    return pool, synthesize(even, work / "held", workers=2, progress=False)


def unbalanced_sample(manifest: pd.DataFrame, hours: float, seed: int) -> pd.DataFrame:
    """A seeded random sample of whole utterances up to ``hours``: no curation."""
    shuffled = manifest.sample(frac=1.0, random_state=seed)
    within = shuffled["duration"].cumsum() <= hours * 3600
    return shuffled[within.to_numpy()]


def write_subset(pool: Path, ids: set[str], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = [r for r in read_manifest(pool) if str(r["id"]) in ids]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return out


def accent_wer(report: Any) -> dict[str, float]:
    return {g.value: round(g.wer, 4) for g in report.groups if g.attribute == "accent"}


def summary(report: Any) -> dict[str, Any]:
    per_accent = accent_wer(report)
    worst = max(per_accent, key=lambda a: per_accent[a])
    return {
        "wer": round(report.wer, 4),
        "worst_accent": worst,
        "worst_accent_wer": per_accent[worst],
        "accent_wer": per_accent,
        "accent_wer_spread": round(max(per_accent.values()) - min(per_accent.values()), 4),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=2000, help="utterances in the skewed pool")
    parser.add_argument("--held-out", type=int, default=40, help="test utterances per accent")
    parser.add_argument("--hours", type=float, default=0.25, help="hours budget of both sets")
    parser.add_argument("--minutes", type=float, default=3.0, help="training time per job")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path("var/bench-fairness"))
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    args.work.mkdir(parents=True, exist_ok=True)

    console.print(f"synthesising a skewed pool of {args.pool} medical utterances")
    pool_manifest, held = synthesise_pool(
        args.work, n=args.pool, held_out=args.held_out, seed=args.seed
    )
    pool = from_synth_manifest(pool_manifest)
    sets = {
        "unbalanced": unbalanced_sample(pool, args.hours, args.seed),
        "balanced": balance(
            pool,
            BalanceSpec.from_json(
                {
                    "dimensions": ["accent"],
                    "hours": args.hours,
                    "targets": {"accent": "uniform"},
                    "max_share": {"accent": 0.4},
                    "seed": args.seed,
                }
            ),
        ).selected,
    }
    base = Transcriber(read_package(BASE_PACKAGE))
    figures: dict[str, Any] = {
        "pool_utterances": len(pool),
        "pool_hours": round(float(pool["duration"].sum()) / 3600, 3),
        "held_out_per_accent": args.held_out,
        "minutes_per_job": args.minutes,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "base": summary(evaluate_manifest(base, held)),
    }
    for name, frame in sets.items():
        subset = write_subset(
            pool_manifest, set(frame["sample_id"]), args.work / name / "train.jsonl"
        )
        console.print(f"fine-tuning on the {name} set ({len(frame)} utterances)")
        started = time.perf_counter()
        result = finetune(
            FinetuneRecipe(
                base_package=BASE_PACKAGE,
                train_manifest=subset,
                eval_manifest=held,
                work_dir=args.work / name / "run",
                out_dir=args.work / name / "out",
                minutes=args.minutes,
                seed=args.seed,
            )
        )
        hours_by_accent = frame.groupby("accent")["duration"].sum().div(3600).round(4)
        figures[name] = {
            **summary(result.candidate),
            "utterances": len(frame),
            "hours": round(float(frame["duration"].sum()) / 3600, 4),
            "accent_hours": hours_by_accent.to_dict(),
            "train_utterances_per_second": round(result.train.utterances_per_second, 1),
            "steps": result.train.steps,
            "seconds": round(time.perf_counter() - started, 1),
        }
    unbalanced, balanced = figures["unbalanced"], figures["balanced"]
    figures["worst_accent_wer_reduction"] = round(
        unbalanced["worst_accent_wer"] - balanced["worst_accent_wer"], 4
    )
    figures["overall_wer_change"] = round(balanced["wer"] - unbalanced["wer"], 4)
    sys.stdout.write(json.dumps(figures, default=float) + "\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
