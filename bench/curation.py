"""Curation speed: balance vs a naive per-cell pandas sample, and validation, on one manifest.

Prints one JSON object of figures on stdout; progress goes to stderr::

    .venv/bin/python -m bench.curation [--rows 1000000] [--hours 100] [--job-steps 150]

The synthetic manifest is skewed the way kept production audio is (85% one accent, 3% seniors,
12% noisy, 2% without a sex label; durations 1-15 s) and fixed by ``--seed``. Figures:

* ``balance_s``: ``curation.balance.balance`` over accent, age_group, sex and noise_type with
  an hours budget (median of ``--repeats``); ``naive_s``: what one writes first — the same
  number of rows from every cell with ``groupby(...).apply(lambda g: g.sample(...))``;
  ``naive_over_balance`` is their ratio;
* ``*_max_share_error``: per dimension, the largest gap between a value's share of the selected
  hours and its target share (``TARGETS``; uniform where not named), and ``*_selected_hours``;
  ``balance_at_naive_hours_*``: balance with the hours the naive sample reached, since that
  one stops short of the budget whenever small cells run out;
* ``validation_s``: ``curation.validation.validate`` (default rules) on the same manifest;
* ``job_train_utterances_per_second``: a fine-tuning job's training throughput (the recipe
  ``mip worker`` runs: ``asr.finetune`` from the shipped base model, 30% general mix), on
  ``--job-utterances`` synthetic medical utterances for ``--job-steps`` steps (0 skips it).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console

from curation import schema
from curation.balance import BalanceSpec, balance
from curation.validation import validate

console = Console(stderr=True)

DIMENSIONS = ("accent", "age_group", "sex", "noise_type")
ACCENTS = {"us": 0.85, "rp": 0.04, "indian": 0.03, "scottish": 0.02, "irish": 0.02}
ACCENTS |= {"australian": 0.02, "south_african": 0.02}
AGE_GROUPS = {"adult": 0.80, "teen": 0.08, "child": 0.09, "senior": 0.03}
SEXES = {"female": 0.45, "male": 0.53, None: 0.02}
NOISES = {"none": 0.88, "white": 0.04, "pink": 0.03, "babble": 0.03, "street": 0.02}
PHRASES = ("turn the lights on", "what is the weather", "call my office", "play some music")
# What a DataOps target file would say: accents and ages even, sexes even, 40% noisy audio.
TARGETS = {
    "sex": {"female": 0.5, "male": 0.5},
    "noise_type": {"none": 0.6, "white": 0.1, "pink": 0.1, "babble": 0.1, "street": 0.1},
}


def synthetic_manifest(rows: int, seed: int) -> pd.DataFrame:
    """``rows`` skewed manifest rows (schema columns), the same for the same seed."""
    rng = np.random.default_rng(seed)

    def draw(weights: dict[Any, float]) -> np.ndarray[Any, Any]:
        labels = np.array(list(weights), dtype=object)
        return labels[rng.choice(len(labels), size=rows, p=list(weights.values()))]

    noise = draw(NOISES)
    frame = pd.DataFrame(
        {
            "sample_id": [f"bench-{i:08d}" for i in range(rows)],
            "duration": rng.uniform(1.0, 15.0, rows),
            "transcript": np.array(PHRASES, dtype=object)[rng.integers(0, len(PHRASES), rows)],
            "language": "en",
            "accent": draw(ACCENTS),
            "age_group": draw(AGE_GROUPS),
            "sex": draw(SEXES),
            "noise_type": noise,
            "snr_db": np.where(noise == "none", np.nan, rng.uniform(0.0, 30.0, rows)),
            "consent": "opted_in",
            "created": pd.Timestamp("2026-11-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 30 * 86_400, rows), unit="s"),
        }
    )
    return schema.coerce(frame)


def naive_balance(frame: pd.DataFrame, hours: float, seed: int) -> pd.DataFrame:
    """Equal row counts per cell: the budget over the mean duration, split across cells."""
    groups = frame.groupby(list(DIMENSIONS), dropna=False, group_keys=False)
    per_cell = max(1, int(hours * 3600 / frame["duration"].mean() / groups.ngroups))
    picked = groups[["sample_id"]].apply(
        lambda g: g.sample(n=min(len(g), per_cell), random_state=seed)
    )
    return frame.loc[picked.index]


def share_errors(frame: pd.DataFrame, targets: pd.DataFrame) -> dict[str, float]:
    """Per dimension: max |share of hours - target share| over the target's values."""
    errors: dict[str, float] = {}
    for name in DIMENSIONS:
        wanted = targets[targets["dimension"] == name].set_index("value")["target_share"]
        hours = frame.groupby(frame[name].fillna("unknown"))["duration"].sum()
        got = hours / hours.sum()
        values = wanted.index.union(got.index)
        gap = got.reindex(values, fill_value=0.0) - wanted.reindex(values, fill_value=0.0)
        errors[name] = float(gap.abs().max())
    return errors


def _timed(run: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = run()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="manifest rows")
    parser.add_argument("--hours", type=float, default=100.0, help="budget of the balanced set")
    parser.add_argument("--repeats", type=int, default=3, help="balance runs (median kept)")
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument(
        "--job-utterances", type=int, default=300, help="fine-tuning job corpus (0: skip the job)"
    )
    parser.add_argument("--job-steps", type=int, default=150, help="fine-tuning job steps")
    parser.add_argument("--work", type=Path, default=Path("var/bench-curation"), help="corpora")
    args = parser.parse_args()

    console.print(f"building a {args.rows:,}-row manifest")
    build_s, manifest = _timed(lambda: synthetic_manifest(args.rows, args.seed))
    spec = BalanceSpec(DIMENSIONS, hours=args.hours, targets=TARGETS, seed=1)
    console.print("balance")
    runs = [_timed(lambda: balance(manifest, spec)) for _ in range(max(1, args.repeats))]
    balance_s = statistics.median(seconds for seconds, _ in runs)
    result = runs[-1][1]
    console.print("naive groupby sample")
    naive_s, naive = _timed(lambda: naive_balance(manifest, args.hours, args.seed))
    balance_errors = share_errors(result.selected, result.after)
    naive_errors = share_errors(naive, result.after)
    # The naive sample falls short of the budget (small cells give less): compare at its hours.
    same_hours = balance(manifest, dataclasses.replace(spec, hours=schema.hours(naive)))
    figures: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.python_version()} pandas {pd.__version__}",
        "rows": len(manifest),
        "input_hours": round(schema.hours(manifest), 3),
        "budget_hours": args.hours,
        "dimensions": list(DIMENSIONS),
        "spec": json.loads(spec.to_json()),
        "manifest_build_s": round(build_s, 3),
        "balance_s": round(balance_s, 3),
        "balance_runs_s": [round(seconds, 3) for seconds, _ in runs],
        "balance_selected_hours": round(result.summary["selected_hours"], 3),
        "balance_max_share_error": balance_errors,
        "balance_deficit_values": len(result.deficit),
        "naive_s": round(naive_s, 3),
        "naive_selected_hours": round(schema.hours(naive), 3),
        "naive_max_share_error": naive_errors,
        "naive_over_balance": round(naive_s / balance_s, 2),
        "balance_at_naive_hours_max_share_error": share_errors(same_hours.selected, result.after),
    }
    # --- validation (curation.validation.validate, default rules, same manifest) -------------
    console.print("validate")
    validation_s, validation = _timed(lambda: validate(manifest))
    figures["validation_s"] = round(validation_s, 3)
    figures["validation_valid_rows"] = int(validation.statistics["valid_rows"])
    if args.job_utterances:
        figures |= job_throughput(args.job_utterances, args.job_steps, args.work)
    print(json.dumps(figures))


def job_throughput(utterances: int, steps: int, work: Path) -> dict[str, Any]:
    """Training utterances/s of a fine-tuning job (the recipe a training job runs).

    The job's recipe (``asr.finetune``) on ``utterances`` synthetic medical utterances with a
    30% general mix, for ``steps`` steps from the shipped base model; the corpora are cached
    in ``work``.
    """
    from asr.corpus import load_sentences
    from asr.finetune import FinetuneRecipe, finetune
    from asr.synth import plan_corpus, synthesize

    def corpus(name: str, n: int, seed: int) -> Path:
        manifest = work / name / "manifest.jsonl"
        if manifest.exists():
            return manifest
        specs = plan_corpus(load_sentences(name), n=n, seed=seed, voices="train", id_prefix=name)
        return synthesize(specs, work / name, workers=2, progress=False)

    console.print(f"fine-tune job: {utterances} utterances, {steps} steps")
    train = corpus("medical", utterances, 1)
    run = work / f"run-{time.time_ns()}"
    result = finetune(
        FinetuneRecipe(
            base_package=next((Path(__file__).resolve().parents[1] / "models").glob("*.dg")),
            train_manifest=train,
            eval_manifest=corpus("general", 40, 2),
            mix_manifest=corpus("general", 40, 2),
            work_dir=run / "work",
            out_dir=run / "out",
            minutes=None,
            max_steps=steps,
        )
    )
    return {
        "job_train_utterances_per_second": round(result.train.utterances_per_second, 1),
        "job_train_steps": result.train.steps,
        "job_device": "cuda" if torch.cuda.is_available() else "cpu",
    }


if __name__ == "__main__":
    main()
