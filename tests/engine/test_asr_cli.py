"""``mip asr``: synth, eval, transcribe — driven as a user would, on real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app as cli
from asr.audio import decode
from asr.data import read_manifest_rows
from asr.inference import DecodeOptions, Transcriber
from asr.package import read_package
from tests.engine.conftest import make_package

runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    result = runner.invoke(
        cli,
        [
            "asr",
            "synth",
            "--out",
            str(out),
            "--n",
            "6",
            "--seed",
            "4",
            "--workers",
            "1",
            "--noise",
            "white",
            "--snr-min",
            "10",
            "--snr-max",
            "10",
        ],
    )
    assert result.exit_code == 0, result.output
    return out / "manifest.jsonl"


class TestSynth:
    def test_writes_manifest_with_attributes(self, corpus: Path) -> None:
        rows = read_manifest_rows(corpus)
        assert len(rows) == 6
        assert {r["noise_type"] for r in rows} == {"white"}
        assert all(r["snr_db"] == 10.0 for r in rows)
        for row in rows:
            audio = decode((corpus.parent / str(row["audio"])).read_bytes())
            assert abs(audio.source.duration - float(row["duration"])) < 0.01  # type: ignore[arg-type]

    def test_bad_arguments_exit_2(self, tmp_path: Path) -> None:
        result = runner.invoke(cli, ["asr", "synth", "--out", str(tmp_path), "--noise", "thunder"])
        assert result.exit_code == 2
        assert "thunder" in result.output

    def test_unknown_corpus_file(self, tmp_path: Path) -> None:
        result = runner.invoke(
            cli, ["asr", "synth", "--out", str(tmp_path), "--corpus", str(tmp_path / "none.txt")]
        )
        assert result.exit_code == 2

    @pytest.mark.parametrize("command", ["synth", "train-base", "eval", "transcribe"])
    def test_help(self, command: str) -> None:
        result = runner.invoke(cli, ["asr", command, "--help"])
        assert result.exit_code == 0
        assert "Usage" in result.output


class TestEvalAndTranscribe:
    def test_eval_reports_groups(self, corpus: Path, tmp_path: Path) -> None:
        package = make_package(tmp_path)
        result = runner.invoke(
            cli, ["asr", "eval", str(package), "--manifest", str(corpus), "--json"]
        )
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["utterances"] == 6
        assert report["wer"] >= 0.0
        assert {g["attribute"] for g in report["groups"]} >= {"accent", "noise_type", "snr_band"}

    def test_eval_of_a_corrupt_package(self, corpus: Path, tmp_path: Path) -> None:
        bad = tmp_path / "ctcconv-general.en.non-formatted.batch.0000abcd.dg"
        bad.write_bytes(b"not a tar")
        result = runner.invoke(cli, ["asr", "eval", str(bad), "--manifest", str(corpus)])
        assert result.exit_code == 2

    def test_transcribe_matches_the_library(self, corpus: Path, tmp_path: Path) -> None:
        package = make_package(tmp_path)
        audio = corpus.parent / str(read_manifest_rows(corpus)[0]["audio"])
        result = runner.invoke(cli, ["asr", "transcribe", str(package), str(audio)])
        assert result.exit_code == 0, result.output
        expected = Transcriber(read_package(package)).transcribe(
            decode(audio.read_bytes()).samples, DecodeOptions()
        )
        assert result.output.strip() == expected.text

    def test_transcribe_bad_audio(self, tmp_path: Path) -> None:
        package = make_package(tmp_path)
        junk = tmp_path / "junk.wav"
        junk.write_bytes(b"RIFF....nope")
        result = runner.invoke(cli, ["asr", "transcribe", str(package), str(junk)])
        assert result.exit_code == 2


class TestTrainBaseSecondStage:
    """``--init-from`` is checked before any synthesis or training starts."""

    def test_a_corrupt_package_exits_2(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.dg"
        bad.write_bytes(b"not a tar")
        work = tmp_path / "work"
        result = runner.invoke(
            cli, ["asr", "train-base", "--work-dir", str(work), "--init-from", str(bad)]
        )
        assert result.exit_code == 2
        assert "cannot continue from" in " ".join(result.output.split())
        assert not work.exists()

    def test_a_package_of_another_encoder_exits_2(self, tmp_path: Path) -> None:
        package = make_package(tmp_path)  # a small conv model; train-base defaults to conformer
        work = tmp_path / "work"
        result = runner.invoke(
            cli, ["asr", "train-base", "--work-dir", str(work), "--init-from", str(package)]
        )
        assert result.exit_code == 2
        assert "differs from the recipe's conformer preset" in " ".join(result.output.split())
        assert not work.exists()

    def test_a_warp_out_of_range_exits_2_before_any_work(self, tmp_path: Path) -> None:
        work = tmp_path / "work"
        result = runner.invoke(
            cli, ["asr", "train-base", "--work-dir", str(work), "--freq-warp", "0.6"]
        )
        assert result.exit_code == 2
        assert "--freq-warp" in result.output
        assert not work.exists()

    def test_help_lists_the_augmentation_options(self) -> None:
        result = runner.invoke(cli, ["asr", "train-base", "--help"])
        assert result.exit_code == 0
        assert "--freq-warp" in result.output
        assert "--spec-augment" in result.output
