"""``mip asr``: synthesise speech corpora, train the base model, evaluate and try packages.

torch and the corpus tools are imported inside the commands so ``mip --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from app.kit.cli import console, err_console, print_json

asr_app = typer.Typer(help="The ASR engine: synthetic corpora, base model training, evaluation.")

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@asr_app.command("synth")
def synth(
    out: Annotated[Path, typer.Option("--out", help="Output folder (audio/ + manifest.jsonl).")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of utterances.")] = 100,
    corpus: Annotated[
        str, typer.Option(help="Text: 'general', 'medical' or a file with one sentence per line.")
    ] = "general",
    seed: Annotated[int, typer.Option(help="Same seed, same corpus (bytes).")] = 0,
    voices: Annotated[
        str, typer.Option(help="'train' or 'test' voice variants (held out), or 'all'.")
    ] = "all",
    split: Annotated[
        str, typer.Option(help="Sentences: 'all', or the 'train'/'test' side of the stable split.")
    ] = "all",
    accent: Annotated[
        list[str] | None, typer.Option(help="Only these accents (repeat the option).")
    ] = None,
    noise: Annotated[
        list[str] | None, typer.Option(help="Noise types: none, white, pink, babble.")
    ] = None,
    environment: Annotated[
        list[str] | None, typer.Option(help="Environments: dry, room, reverberant.")
    ] = None,
    snr_min: Annotated[float, typer.Option(help="Lowest target SNR (dB).")] = 5.0,
    snr_max: Annotated[float, typer.Option(help="Highest target SNR (dB).")] = 30.0,
    domain: Annotated[str, typer.Option(help="Domain label written to the manifest.")] = "",
    workers: Annotated[int, typer.Option(min=1, help="Rendering processes.")] = 2,
) -> None:
    """Render a synthetic speech corpus with espeak-ng over a grid of speaker attributes."""
    from asr.corpus import CorpusError, load_sentences, split_sentences
    from asr.synth import ENVIRONMENTS, NOISE_TYPES, SynthError, plan_corpus, synthesize

    try:
        sentences = load_sentences(corpus)
        if split != "all":
            train_text, test_text = split_sentences(
                sentences, test_fraction=0.05, salt=f"{corpus}-base"
            )
            sentences = train_text if split == "train" else test_text
        specs = plan_corpus(
            sentences,
            n=n,
            seed=seed,
            voices=voices,  # type: ignore[arg-type]
            domain=domain or (corpus if corpus in {"general", "medical"} else "general"),
            accents=accent or None,
            noise_types=noise or NOISE_TYPES,
            snr_db=(snr_min, snr_max),
            environments=environment or ENVIRONMENTS,
        )
        manifest = synthesize(specs, out, workers=workers)
    except (CorpusError, SynthError) as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"wrote {len(specs)} utterances; manifest {manifest}")


@asr_app.command("train-base")
def train_base_command(
    work_dir: Annotated[
        Path, typer.Option(help="Corpora, checkpoint and report (reused to resume).")
    ] = Path("var/asr-base"),
    out: Annotated[Path, typer.Option(help="Where the .dg package is written.")] = Path("models"),
    minutes: Annotated[float, typer.Option(min=0.1, help="Training budget (wall clock).")] = 30.0,
    train_utterances: Annotated[int, typer.Option(min=100)] = 45_000,
    test_utterances: Annotated[int, typer.Option(min=10)] = 1_000,
    encoder: Annotated[
        str,
        typer.Option(
            help="'conformer' or 'conv'. On 2 CPU cores the conformer reached the lower WER in "
            "the same training time (docs/benchmarks.md, 'Choosing the encoder')."
        ),
    ] = "conformer",
    seed: Annotated[int, typer.Option()] = 0,
    version: Annotated[str | None, typer.Option(help="Package version (default: today.1).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Synthesis processes.")] = 2,
    init_from: Annotated[
        Path | None,
        typer.Option(
            help="A second stage: start from this .dg package's weights (same --encoder) and "
            "train on a fresh corpus drawn with --train-seed; valid and test sets stay those of "
            "--seed, so the stages compare. Use a new --work-dir."
        ),
    ] = None,
    train_seed: Annotated[
        int | None, typer.Option(help="Seed of the training corpus (default: --seed).")
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(min=1e-9, help="Peak learning rate (default 5e-3; 2e-3 for a second stage)."),
    ] = None,
    freq_warp: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.49,
            help="Augment: warp each utterance's mel axis by a factor in [1-x, 1+x] "
            "(vocal tract length perturbation; 0 is off, 0.1 a usual setting).",
        ),
    ] = 0.0,
    spec_augment: Annotated[
        bool,
        typer.Option(help="Augment: SpecAugment masks (2 x 8 mel bands, 2 x 25 frames)."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Train the general base model from the synthetic corpus and package it as a .dg file.

    Synthesises the train/valid/test corpora (unseen sentences and voices in test), trains for
    --minutes, evaluates on the held-out test set and writes the package with its metrics.
    """
    from asr.augment import AugmentConfig
    from asr.model import ModelConfigError, encoder_preset
    from asr.recipes import BaseRecipe, RecipeError, train_base

    try:
        model = encoder_preset(encoder)
    except ModelConfigError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    recipe = BaseRecipe(
        work_dir=work_dir,
        out_dir=out,
        minutes=minutes,
        train_utterances=train_utterances,
        test_utterances=test_utterances,
        model=model,
        seed=seed,
        version=version,
        workers=workers,
        init_from=init_from,
        train_seed=train_seed,
        lr=lr,
        augment=(
            AugmentConfig.spec_augment(freq_warp=freq_warp)
            if spec_augment
            else AugmentConfig(freq_warp=freq_warp)
        ),
    )
    try:
        result = train_base(recipe, log=lambda line: err_console.print(line))
    except RecipeError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    summary = {
        "package": str(result.package),
        "wer": round(result.report.wer, 4),
        "cer": round(result.report.cer, 4),
        "wer_greedy": round(result.greedy_report.wer, 4),
        "train_minutes": round(result.train.seconds / 60, 1),
        "steps": result.train.steps,
    }
    if as_json:
        print_json(summary)
    else:
        console.print(result.report.to_markdown())
        console.print(json.dumps(summary, indent=2))


@asr_app.command("eval")
def eval_command(
    package: Annotated[Path, typer.Argument(help="A .dg model package.")],
    manifest: Annotated[Path, typer.Option(help="A manifest.jsonl (mip asr synth).")],
    decoder: Annotated[
        str, typer.Option(help="'package' (its tuned settings), 'beam' (LM) or 'greedy'.")
    ] = "package",
    terms: Annotated[
        Path | None, typer.Option(help="Domain terms, one per line: reports term recall.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """WER and CER of a package on a manifest, overall and per attribute group."""
    from asr.inference import DecodeOptions, Transcriber
    from asr.package import PackageError, read_package
    from asr.recipes import evaluate_manifest

    try:
        transcriber = Transcriber(read_package(package))
    except PackageError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    term_list = terms.read_text(encoding="utf-8").split() if terms else None
    options = {
        "package": transcriber.default_options,
        "greedy": DecodeOptions(decoder="greedy", snap=False),
        "beam": DecodeOptions(),
    }.get(decoder)
    if options is None:
        err_console.print("[red]--decoder must be package, beam or greedy[/red]")
        raise typer.Exit(2)
    report = evaluate_manifest(transcriber, manifest, options=options, terms=term_list)
    if as_json:
        print_json(report.to_dict())
    else:
        console.print(report.to_markdown())


@asr_app.command("transcribe")
def transcribe_command(
    package: Annotated[Path, typer.Argument(help="A .dg model package.")],
    audio: Annotated[Path, typer.Argument(help="WAV, FLAC, OGG or MP3 file.")],
    keyterm: Annotated[list[str] | None, typer.Option(help="Boost a term (repeat).")] = None,
) -> None:
    """Transcribe one file locally with a package (no service, nothing recorded)."""
    from asr.audio import AudioError, decode
    from asr.inference import KEYTERM_BOOST, Transcriber
    from asr.package import PackageError, read_package

    try:
        transcriber = Transcriber(read_package(package))
        samples = decode(audio.read_bytes()).samples
    except (PackageError, AudioError, OSError) as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    result = transcriber.transcribe(
        samples, transcriber.options(keywords=dict.fromkeys(keyterm or [], KEYTERM_BOOST))
    )
    console.print(result.text)
