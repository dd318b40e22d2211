"""Features, tokenizer, the CTC model and the training loop on real (espeak-ng) speech."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.augment import AugmentConfig
from asr.data import (
    DataError,
    Utterance,
    collate,
    length_batches,
    load_utterances,
    read_manifest_rows,
)
from asr.features import FeatureConfig, LogMel, mel_filterbank
from asr.model import CTCModel, ModelConfig, ModelConfigError
from asr.synth import plan_corpus, synthesize
from asr.tokenizer import CharTokenizer, TokenizerError
from asr.train import CHECKPOINT, TrainConfig, TrainError, load_weights, parse_args, train

SMALL = ModelConfig(d_model=32, n_layers=2, kernel_sizes=[5, 7], subsampling_channels=8)
SENTENCES = [
    "the cat sat on the mat",
    "a quick brown fox jumps",
    "she sells sea shells by the shore",
    "we walked home after the rain",
    "turn left at the next corner",
    "the music was far too loud",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    specs = plan_corpus(SENTENCES, n=24, seed=3, noise_types=("none",), environments=("dry",))
    return synthesize(specs, tmp_path_factory.mktemp("corpus"), workers=1, progress=False)


class TestTokenizer:
    def test_round_trip(self) -> None:
        tok = CharTokenizer.english()
        assert tok.decode(tok.encode("It's OK, Café-au-lait 42!")) == "it's ok cafe au lait"

    def test_blank_and_space_ids(self) -> None:
        tok = CharTokenizer.english()
        assert (tok.blank_id, tok.space_id, tok.vocab_size) == (0, 1, 29)

    def test_from_dict_round_trip_and_errors(self) -> None:
        tok = CharTokenizer.english()
        assert CharTokenizer.from_dict(tok.to_dict()) == tok
        with pytest.raises(TokenizerError):
            CharTokenizer.from_dict({"type": "bpe"})
        with pytest.raises(TokenizerError):
            CharTokenizer(("<blank>", " ", "a", "a"))


class TestFeatures:
    def test_shape_and_normalisation(self) -> None:
        fx = LogMel()
        samples = torch.from_numpy(np.random.default_rng(0).standard_normal(16_000).astype("f4"))
        feats = fx(samples)
        assert feats.shape == (fx.num_frames(16_000), 64)
        assert abs(float(feats.mean())) < 1e-3
        assert abs(float(feats.std(dim=0).mean()) - 1.0) < 0.05

    def test_gain_invariant(self) -> None:
        samples = torch.from_numpy(np.random.default_rng(1).standard_normal(8_000).astype("f4"))
        fx = LogMel()
        assert torch.allclose(fx(samples), fx(samples * 0.05), atol=1e-2)

    def test_filterbank_covers_band(self) -> None:
        filters = mel_filterbank(FeatureConfig())
        assert filters.shape == (201, 64)
        assert bool((filters.sum(dim=0) > 0).all())


class TestModel:
    def test_output_shape_and_lengths(self) -> None:
        model = CTCModel(SMALL)
        log_probs, lengths = model(torch.randn(2, 100, 64), torch.tensor([100, 60]))
        assert log_probs.shape == (2, 25, 29)
        assert lengths.tolist() == [25, 15]
        assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 25), atol=1e-4)

    def test_padding_does_not_change_real_frames(self) -> None:
        model = CTCModel(SMALL).eval()
        x = torch.randn(1, 80, 64)
        alone, _ = model(x, torch.tensor([80]))
        padded, _ = model(torch.cat([x, torch.randn(1, 40, 64)], dim=1), torch.tensor([80]))
        assert torch.allclose(alone[0], padded[0, :20], atol=1e-4)

    def test_conformer_runs(self) -> None:
        cfg = ModelConfig(encoder="conformer", d_model=32, n_layers=1, kernel_sizes=[7], n_heads=2)
        log_probs, _ = CTCModel(cfg)(torch.randn(1, 40, 64), torch.tensor([40]))
        assert log_probs.shape == (1, 10, 29)

    @pytest.mark.parametrize(
        "fields",
        [{"encoder": "rnn"}, {"subsampling": 3}, {"kernel_sizes": [4] * 10}, {"n_layers": 2}],
    )
    def test_bad_config(self, fields: dict[str, object]) -> None:
        with pytest.raises(ModelConfigError):
            ModelConfig(**fields)  # type: ignore[arg-type]

    def test_config_round_trip(self) -> None:
        assert ModelConfig.from_dict(SMALL.to_dict()) == SMALL
        with pytest.raises(ModelConfigError, match="unknown"):
            ModelConfig.from_dict({**SMALL.to_dict(), "layers": 3})


class TestData:
    def test_load_and_batch(self, corpus: Path) -> None:
        utts = load_utterances(corpus, tokenizer=CharTokenizer.english())
        assert len(utts) == 24
        assert all(u.feats.dtype == torch.float16 for u in utts)
        batches = length_batches(utts, max_frames=1500, seed=0, epoch=1)
        assert sorted(i for b in batches for i in b) == list(range(24))
        for batch in batches:
            longest = max(utts[i].num_frames for i in batch)
            assert longest * len(batch) <= 1500 or len(batch) == 1
        collated = collate([utts[i] for i in batches[0]])
        assert collated.labels.numel() == int(collated.label_lengths.sum())

    def test_batches_group_similar_lengths(self) -> None:
        # 400 utterances of 0.5-15 s: bucketed batches pad far less than the same batch sizes
        # filled at random, which is what bucketing is for
        rng = np.random.default_rng(0)
        lengths = rng.integers(50, 1500, size=400).tolist()
        utts = [
            Utterance(str(i), "a", torch.zeros(n, 2, dtype=torch.float16), torch.ones(1))
            for i, n in enumerate(lengths)
        ]
        batches = length_batches(utts, max_frames=6000, seed=0, epoch=0)

        def padding(groups: list[list[int]]) -> float:
            padded: int = sum(max(lengths[i] for i in g) * len(g) for g in groups)
            return 1.0 - float(sum(lengths)) / padded

        order = rng.permutation(len(utts)).tolist()
        cuts = np.cumsum([len(b) for b in batches])[:-1].tolist()
        at_random = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]
        assert padding(batches) < 0.1
        assert padding(at_random) > 3 * padding(batches)
        assert 1 < len(batches) < len(utts)  # real batches, not one each or one in all

    def test_batches_differ_between_epochs(self, corpus: Path) -> None:
        utts = load_utterances(corpus, tokenizer=CharTokenizer.english())
        first = length_batches(utts, max_frames=1500, seed=0, epoch=1)
        assert first == length_batches(utts, max_frames=1500, seed=0, epoch=1)
        assert first != length_batches(utts, max_frames=1500, seed=0, epoch=2)

    def test_bad_manifest_line(self, tmp_path: Path) -> None:
        manifest = tmp_path / "manifest.jsonl"
        manifest.write_text('{"id": "a", "audio": "a.wav", "text": "hi"}\nnot json\n')
        with pytest.raises(DataError, match=":2:"):
            read_manifest_rows(manifest)

    def test_missing_audio(self, tmp_path: Path) -> None:
        manifest = tmp_path / "manifest.jsonl"
        manifest.write_text('{"id": "m", "audio": "missing.wav", "text": "hi"}\n')
        with pytest.raises(DataError, match=r"missing\.wav"):
            load_utterances(manifest, tokenizer=CharTokenizer.english())


class TestTrain:
    def test_loss_falls_checkpoint_and_resume(self, corpus: Path, tmp_path: Path) -> None:
        cfg = TrainConfig(
            train_manifests=[corpus],
            valid_manifest=corpus,
            out_dir=tmp_path / "run",
            model=SMALL,
            max_minutes=None,
            max_steps=30,
            eval_every=15,
            eval_utterances=8,
            batch_frames=3000,
            warmup_steps=5,
            progress=False,
        )
        result = train(cfg)
        assert result.steps == 30
        assert result.checkpoint.exists()
        assert [h["step"] for h in result.history] == [15.0, 30.0]
        assert 0.0 <= (result.valid_cer or 0.0) <= 1.5
        weights = load_weights(result.checkpoint)
        CTCModel(SMALL).load_state_dict(weights)  # strict: every tensor present

        # Resuming with a larger budget continues from step 30, not from scratch.
        cfg.max_steps = 40
        resumed = train(cfg)
        assert resumed.steps == 40
        assert len(resumed.history) == 3

    def test_progress_bar_on_stderr_and_nothing_without_it(
        self, corpus: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
    ) -> None:
        def run(progress: bool, name: str) -> str:
            cfg = TrainConfig(
                train_manifests=[corpus],
                valid_manifest=corpus,
                out_dir=tmp_path / name,
                model=SMALL,
                max_minutes=None,
                max_steps=3,
                eval_every=1000,
                batch_frames=3000,
                progress=progress,
            )
            assert train(cfg).steps == 3
            return capfd.readouterr().err

        shown = run(True, "shown")
        assert "train: 100%|" in shown  # tqdm's bar, ending full
        assert "features" in shown  # the feature pass has its own bar
        assert "%|" not in run(False, "quiet")

    def test_training_lowers_the_loss(self, corpus: Path, tmp_path: Path) -> None:
        torch.manual_seed(0)
        cfg = TrainConfig(
            train_manifests=[corpus],
            valid_manifest=corpus,
            out_dir=tmp_path / "run",
            model=SMALL,
            max_minutes=None,
            max_steps=60,
            eval_every=1000,
            batch_frames=3000,
            warmup_steps=5,
            lr=3e-3,
            progress=False,
        )
        before = train(TrainConfig(**{**cfg.__dict__, "max_steps": 1, "out_dir": tmp_path / "b"}))
        after = train(cfg)
        assert after.valid_cer is not None
        assert before.valid_cer is not None
        assert after.valid_cer < before.valid_cer

    def test_fine_tune_from_checkpoint_with_mix(self, corpus: Path, tmp_path: Path) -> None:
        base = train(
            TrainConfig(
                train_manifests=[corpus],
                out_dir=tmp_path / "base",
                model=SMALL,
                max_minutes=None,
                max_steps=3,
                progress=False,
            )
        )
        tuned = train(
            TrainConfig(
                train_manifests=[corpus],
                out_dir=tmp_path / "tuned",
                model=SMALL,
                init_from=base.checkpoint,
                mix_manifest=corpus,
                mix_fraction=0.3,
                max_minutes=None,
                max_steps=3,
                progress=False,
            )
        )
        assert tuned.steps == 3

    def test_errors(self, tmp_path: Path) -> None:
        with pytest.raises(TrainError, match="no training manifests"):
            train(TrainConfig(out_dir=tmp_path, progress=False))
        bad = tmp_path / "bad.pt"
        torch.save([1, 2], bad)
        with pytest.raises(TrainError, match="not a training checkpoint"):
            load_weights(bad)
        bad.write_bytes(b"not a checkpoint at all")  # torch's error, as a TrainError
        with pytest.raises(TrainError, match="refusing to load"):
            load_weights(bad)
        bad.write_bytes(b"")
        with pytest.raises(TrainError, match="cannot read checkpoint"):
            load_weights(bad)


class _MakesDirectory:
    """Unpickling this calls ``os.mkdir(marker)``: any code a hostile checkpoint could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
        return (os.mkdir, (str(self.marker),))


class TestCheckpointSafety:
    @pytest.mark.parametrize("where", ["init_from", "resume"])
    def test_code_in_a_checkpoint_never_runs(
        self, corpus: Path, tmp_path: Path, where: str
    ) -> None:
        out_dir, marker = tmp_path / "run", tmp_path / "marker"
        hostile = tmp_path / "hostile.pt" if where == "init_from" else out_dir / CHECKPOINT
        hostile.parent.mkdir(parents=True, exist_ok=True)
        # Shaped like a training checkpoint; its "model" is the payload.
        torch.save({"model": _MakesDirectory(marker), "step": 0, "seconds": 0.0}, hostile)
        cfg = TrainConfig(
            train_manifests=[corpus],
            out_dir=out_dir,
            model=SMALL,
            init_from=hostile if where == "init_from" else None,
            max_minutes=None,
            max_steps=2,
            progress=False,
        )
        with pytest.raises(TrainError, match="refusing to load") as refused:
            train(cfg)
        assert str(hostile) in str(refused.value)
        assert not marker.exists()
        if where == "init_from":
            assert not (out_dir / CHECKPOINT).exists()  # refused before any step or save
        with pytest.raises(TrainError, match="mkdir"):  # the message names the refused callable
            load_weights(hostile)
        assert not marker.exists()
        # The payload is real: a full unpickle (the old weights_only=False) runs it.
        torch.load(hostile, map_location="cpu", weights_only=False)
        assert marker.is_dir()


class TestCommandLine:
    REQUIRED = ("--train-manifest", "train.jsonl", "--out-dir", "out")

    def test_defaults_are_train_configs(self) -> None:
        parsed = parse_args(self.REQUIRED)
        expected = TrainConfig(train_manifests=[Path("train.jsonl")], out_dir=Path("out"))
        for spec in dataclasses.fields(TrainConfig):
            assert getattr(parsed, spec.name) == getattr(expected, spec.name), spec.name
        assert parsed.max_minutes == 10.0  # TrainConfig's, not the old CLI's unset budget

    def test_flags_reach_the_config(self) -> None:
        cfg = parse_args(
            [
                *self.REQUIRED,
                *("--train-manifest", "more.jsonl", "--valid-manifest", "valid.jsonl"),
                *("--init-from", "base.pt", "--max-minutes", "none", "--max-steps", "7"),
                *("--encoder", "conv", "--d-model", "32", "--n-layers", "2", "--lr", "0.01"),
                *("--batch-frames", "1500", "--eval-every", "3", "--device", "cpu"),
                *("--freq-warp", "0.1", "--spec-augment", "--no-progress"),
            ]
        )
        assert cfg.train_manifests == [Path("train.jsonl"), Path("more.jsonl")]
        assert (cfg.valid_manifest, cfg.init_from) == (Path("valid.jsonl"), Path("base.pt"))
        assert (cfg.max_minutes, cfg.max_steps) == (None, 7)
        assert cfg.model == ModelConfig(d_model=32, n_layers=2, kernel_sizes=[11, 13])
        assert (cfg.lr, cfg.batch_frames, cfg.eval_every, cfg.device) == (0.01, 1500, 3, "cpu")
        assert cfg.augment == AugmentConfig.spec_augment(freq_warp=0.1)
        assert cfg.progress is False
        assert parse_args([*self.REQUIRED, "--max-minutes", "2.5"]).max_minutes == 2.5

    def test_help_shows_the_defaults(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exited:
            parse_args(["--help"])
        assert exited.value.code == 0
        text = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal
        defaults = TrainConfig()
        for flag, value in [
            ("--lr", defaults.lr),
            ("--max-minutes", defaults.max_minutes),
            ("--batch-frames", defaults.batch_frames),
            ("--eval-every", defaults.eval_every),
            ("--d-model", defaults.model.d_model),
            ("--n-layers", defaults.model.n_layers),
        ]:
            assert f"(default: {value})" in text.split(flag, 2)[2].split(" --", 1)[0], flag


class TestTorchrun:
    def test_two_processes_with_ddp(self, corpus: Path, tmp_path: Path) -> None:
        # gloo on CPU: the same loop DistributedDataParallel runs on several GPUs.
        torchrun = Path(sys.executable).parent / "torchrun"
        result = subprocess.run(
            [
                str(torchrun),
                "--nproc_per_node",
                "2",
                "--master_port",
                str(_free_port()),
                "-m",
                "asr.train",
                "--train-manifest",
                str(corpus),
                "--out-dir",
                str(tmp_path),
                "--max-steps",
                "4",
                "--d-model",
                "32",
                "--n-layers",
                "2",
                "--no-progress",
                "--batch-frames",
                "1500",
                "--device",
                "cpu",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert "steps=4" in result.stdout
        state = torch.load(tmp_path / "checkpoint.pt", map_location="cpu", weights_only=True)
        assert state["step"] == 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
