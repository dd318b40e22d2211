"""ASR engine throughput: inference real-time factor, /v1/listen overhead, training speed.

Prints one JSON object of figures on stdout; progress goes to stderr::

    .venv/bin/python -m bench.asr [--package models/X.dg] [--clips 20] [--train-seconds 60]

Figures (docs/benchmarks.md, section "ASR engine"):

* ``rtf_*``: audio seconds transcribed per compute (wall) second — greedy, beam search with
  the word LM, and the package's tuned decoder,
  one stream, and all streams together under concurrency (threads sharing the model);
  ``rtf_long_recording``: the clips back to back as one recording, long-form inference
  (stretches of speech encoded one by one), and ``rtf_long_recording_windows`` the encoder in
  20 s windows instead;
* ``wer_clips``, ``wer_long_recording``, ``wer_long_recording_windows``: WER of the clips one by
  one and of the recording both ways, in the same run;
* ``listen_rps`` vs ``inference_rps``: the same clips through ``POST /v1/listen`` (decode,
  inference, ledger row, sampling decision, sample encryption when selected) and through the
  transcriber alone, in the same run; ``governance_overhead`` is 1 - listen/inference;
* ``train_utt_per_s_<encoder>``: training utterances per second of the conv encoder and of
  the base model's Conformer (CPU, or CUDA when present) on a freshly synthesised corpus;
* ``beam_search_ms_10s``, ``beam_search_oov_ms_10s``, ``snap_ms_50k_words``, ``snr_ms_30s``:
  the parts that run on every request, alone (median of 5): the beam search with a word LM and
  a boosted term over 10 s of model-like output, without and with the out-of-vocabulary
  penalty (a 50,000-word vocabulary), lexicon snapping of one utterance against 50,000 words,
  and the SNR estimate of a 30 s clip.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import math
import platform
import random
import statistics
import string
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import numpy.typing as npt
import torch
from fastapi.testclient import TestClient
from rich.console import Console

from app.kit.db import create_db_engine, make_sessionmaker, session_scope
from app.kit.settings import BUNDLED_MODELS_DIR, Settings
from app.main import create_app
from app.tenancy import service as tenancy
from asr.audio import decode, encode_wav
from asr.corpus import load_sentences, split_sentences
from asr.decode import Lexicon, beam_search, snap_to_lexicon
from asr.inference import DecodeOptions, Transcriber
from asr.lm import WordLM
from asr.model import CTCModel, encoder_preset
from asr.package import read_package
from asr.snr import estimate_snr_db
from asr.synth import plan_corpus, render, synthesize
from asr.tokenizer import CharTokenizer
from asr.train import TrainConfig, train
from migrations.run import upgrade

console = Console(stderr=True)


def _clips(n: int) -> tuple[list[str], list[bytes]]:
    """``n`` held-out clips (unseen sentences and voices, the training mix of noise and rooms):
    their transcripts and WAV bytes."""
    _, test_text = split_sentences(
        load_sentences("general"), test_fraction=0.05, salt="general-base"
    )
    specs = plan_corpus(test_text, n=n, seed=7, voices="test", id_prefix="bench")
    return [spec.text for spec in specs], [encode_wav(render(spec), 16_000) for spec in specs]


def _rtf(transcriber: Transcriber, clips: list[bytes], options: DecodeOptions) -> float:
    audio = [decode(c).samples for c in clips]
    seconds = sum(len(a) for a in audio) / 16_000
    transcriber.transcribe(audio[0], options)  # untimed: the first call pays torch's warm-up
    started = time.perf_counter()
    for samples in audio:
        transcriber.transcribe(samples, options)
    return round(seconds / (time.perf_counter() - started), 1)


def _long_recording(
    package: Path, texts: list[str], clips: list[bytes], options: DecodeOptions
) -> dict[str, float]:
    """The clips back to back (0.5 s apart) as one recording: long-form inference (speech
    spans encoded one by one) against the encoder in 20 s windows, accuracy and speed, with
    the clips' own WER one by one as the reference."""
    gap = np.zeros(8_000, dtype=np.float32)
    audio = [decode(c).samples for c in clips]
    recording = np.concatenate([part for samples in audio for part in (samples, gap)])
    long_form = Transcriber(read_package(package))
    windows = Transcriber(read_package(package), long_form_seconds=math.inf)
    figures = {
        "wer_clips": round(
            jiwer.wer(texts, [long_form.transcribe(a, options).text for a in audio]), 3
        )
    }
    for name, transcriber in (("", long_form), ("_windows", windows)):
        started = time.perf_counter()
        text = transcriber.transcribe(recording, options).text
        seconds = time.perf_counter() - started
        figures[f"wer_long_recording{name}"] = round(jiwer.wer(" ".join(texts), text), 3)
        figures[f"rtf_long_recording{name}"] = round(len(recording) / 16_000 / seconds, 1)
    return figures


def _rtf_concurrent(transcriber: Transcriber, clips: list[bytes], workers: int) -> float:
    audio = [decode(c).samples for c in clips]
    seconds = sum(len(a) for a in audio) / 16_000
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(transcriber.transcribe, audio))
    return round(seconds / (time.perf_counter() - started), 1)


def _listen_vs_inference(
    package: Path, clips: list[bytes], tmp: Path, *, rounds: int
) -> dict[str, float]:
    settings = Settings(
        env="test",
        data_dir=tmp / "var",
        models_dir=package.parent,
        bundled_models_dir=None,
        sampling_rate=0.05,
        log_level="WARNING",
    )
    upgrade(settings.effective_database_url)
    engine = create_db_engine(settings.effective_database_url)
    with session_scope(make_sessionmaker(engine)) as session:
        org = tenancy.create_organization(session, name="Bench", plan="growth", actor="bench")
        project = tenancy.create_project(session, organization_id=org.id, name="p", actor="bench")
        _key, secret = tenancy.create_project_key(session, project_id=project.id, actor="bench")
    transcriber = Transcriber(read_package(package))
    headers = {"Authorization": f"Token {secret}", "Content-Type": "audio/wav"}

    def through_listen(client: TestClient) -> float:
        started = time.perf_counter()
        for clip in clips:
            response = client.post("/v1/listen", content=clip, headers=headers)
            if response.status_code != 200:
                raise SystemExit(f"/v1/listen answered {response.status_code}: {response.text}")
        return time.perf_counter() - started

    def inference_alone() -> float:
        started = time.perf_counter()
        for clip in clips:
            transcriber.transcribe(decode(clip).samples)
        return time.perf_counter() - started

    listen_s: list[float] = []
    inference_s: list[float] = []
    with TestClient(create_app(settings)) as client:
        client.post("/v1/listen", content=clips[0], headers=headers)  # warm the model cache
        inference_alone()
        for round_ in range(rounds):  # alternate which goes first, take medians
            if round_ % 2:
                inference_s.append(inference_alone())
                listen_s.append(through_listen(client))
            else:
                listen_s.append(through_listen(client))
                inference_s.append(inference_alone())
    listen, inference = statistics.median(listen_s), statistics.median(inference_s)
    return {
        "listen_rps": round(len(clips) / listen, 2),
        "inference_rps": round(len(clips) / inference, 2),
        "governance_overhead": round(1 - inference / listen, 3),
        "listen_rounds": rounds,
    }


ENCODERS = ("conv", "conformer")


def _train_speed(tmp: Path, seconds: float, encoders: list[str]) -> dict[str, Any]:
    train_text, _ = split_sentences(
        load_sentences("general"), test_fraction=0.05, salt="general-base"
    )
    specs = plan_corpus(train_text, n=800, seed=11, voices="train", id_prefix="bench")
    manifest = synthesize(specs, tmp / "train", workers=2, progress=False)
    figures: dict[str, Any] = {"train_device": "cuda" if torch.cuda.is_available() else "cpu"}
    for name in encoders:
        cfg = encoder_preset(name)
        result = train(
            TrainConfig(
                train_manifests=[manifest],
                out_dir=tmp / f"run-{name}",
                model=cfg,
                max_minutes=seconds / 60,
                eval_every=10**9,
                progress=False,
                resume=False,
            )
        )
        figures[f"train_utt_per_s_{name}"] = round(result.utterances_per_second, 1)
        figures[f"params_{name}"] = CTCModel(cfg).num_parameters()
    return figures


def _median_ms(action: Callable[[], object], repeats: int = 5) -> float:
    action()  # untimed: caches and indexes are built once, as in a serving process
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 2)


def _parts(clip: npt.NDArray[np.float32]) -> dict[str, float]:
    """What each request pays for decoding and measuring, each part alone."""
    tokenizer = CharTokenizer.english()
    rng = random.Random(0)
    words = ["the", "quick", "brown", "fox", "jumps"] * 4
    labels = "".join(c * rng.randint(1, 3) + "_" for w in words for c in w + " ")[:250]
    ids = torch.tensor([0 if c == "_" else tokenizer.symbols.index(c) for c in labels])
    logits = torch.randn(len(ids), tokenizer.vocab_size, generator=torch.Generator().manual_seed(0))
    logits[torch.arange(len(ids)), ids] += 6.0  # the label leads each frame by a logit margin
    log_probs = torch.log_softmax(logits, dim=1)
    lm = WordLM.from_sentences([" ".join(words)])
    lexicon: set[str] = set()
    while len(lexicon) < 50_000:
        size = min(max(int(rng.gauss(7, 2.5)), 2), 14)
        lexicon.add("".join(rng.choices(string.ascii_lowercase, k=size)))
    frozen = frozenset(lexicon)
    vocabulary = Lexicon.of(frozen | set(words))  # the penalty checks spellings against it
    utterance = " ".join(w[:-1] + "q" for w in rng.sample(sorted(frozen), 15))
    thirty = np.resize(clip, 30 * 16_000)
    return {
        "beam_search_ms_10s": _median_ms(
            lambda: beam_search(log_probs, tokenizer, frame_seconds=0.04, lm=lm, boost={"fox": 2.0})
        ),
        "beam_search_oov_ms_10s": _median_ms(
            lambda: beam_search(
                log_probs,
                tokenizer,
                frame_seconds=0.04,
                lm=lm,
                boost={"fox": 2.0},
                lexicon=vocabulary,
                oov_penalty=8.0,
            )
        ),
        "snap_ms_50k_words": _median_ms(lambda: snap_to_lexicon(utterance, frozen)),
        "snr_ms_30s": _median_ms(lambda: estimate_snr_db(thirty, 16_000)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package", type=Path, help="a .dg package (default: the bundled one)")
    parser.add_argument("--clips", type=int, default=20, help="test clips (unseen voices)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5, help="listen/inference rounds")
    parser.add_argument("--train-seconds", type=float, default=60.0)
    parser.add_argument("--encoders", nargs="+", choices=ENCODERS, default=["conv", "conformer"])
    args = parser.parse_args()
    package = args.package or next(iter(sorted(BUNDLED_MODELS_DIR.glob("*.dg"))), None)
    if package is None:
        sys.exit("no package: pass --package or run `mip asr train-base`")

    console.print(f"rendering {args.clips} clips")
    texts, clips = _clips(args.clips)
    transcriber = Transcriber(read_package(package))
    figures: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads",
        "package": package.name,
        "clips": len(clips),
    }
    console.print("real-time factors")
    figures["rtf_greedy"] = _rtf(transcriber, clips, DecodeOptions(decoder="greedy", snap=False))
    figures["rtf_beam_lm"] = _rtf(transcriber, clips, DecodeOptions())
    figures["rtf_package_default"] = _rtf(transcriber, clips, transcriber.default_options)
    figures["package_decoding"] = transcriber.default_options.to_dict()
    figures.update(_parts(decode(clips[0]).samples))
    console.print("a long recording: long-form inference against 20 s windows")
    figures.update(_long_recording(package, texts, clips, transcriber.default_options))
    figures[f"rtf_{args.concurrency}_streams"] = _rtf_concurrent(
        transcriber, clips, args.concurrency
    )
    with tempfile.TemporaryDirectory(prefix="mip-bench-asr-") as tmp:
        console.print("/v1/listen against inference alone")
        figures.update(_listen_vs_inference(package, clips, Path(tmp), rounds=args.rounds))
        console.print(f"training for {args.train_seconds:.0f} s")
        figures.update(_train_speed(Path(tmp), args.train_seconds, args.encoders))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
