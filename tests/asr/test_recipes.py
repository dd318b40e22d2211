"""The base model recipe (asr.recipes.train_base) end to end, at toy size.

The real build takes an hour and a half (README); here a tiny Conformer trains for a few seconds
on 120 utterances. What is checked is the recipe, not the accuracy: held-out data is really
held out, the package carries its evaluation and tuned decoder, and a second run re-packages
without training again.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from asr.augment import AugmentConfig
from asr.data import read_manifest_rows
from asr.model import ModelConfig
from asr.package import read_package
from asr.recipes import (
    LM_WEIGHTS,
    OOV_PENALTIES,
    WIDER_BEAMS,
    WORD_BONUSES,
    BaseRecipe,
    BaseResult,
    RecipeError,
    synthesize_splits,
    train_base,
)

TINY_CONFORMER = ModelConfig(
    encoder="conformer", d_model=16, n_layers=1, n_heads=2, kernel_sizes=[5], subsampling_channels=4
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[BaseRecipe, BaseResult, list[str]]:
    root = tmp_path_factory.mktemp("base")
    recipe = BaseRecipe(
        work_dir=root / "work",
        out_dir=root / "out",
        train_utterances=120,
        valid_utterances=12,
        test_utterances=12,
        minutes=0.1,
        model=TINY_CONFORMER,
        version="2030-01-01.1",
        workers=1,
        threads=1,
        progress=False,
    )
    lines: list[str] = []
    return recipe, train_base(recipe, log=lines.append), lines


def _rows(recipe: BaseRecipe, split: str) -> list[dict[str, object]]:
    return read_manifest_rows(recipe.work_dir / split / "manifest.jsonl")


class TestBaseRecipe:
    def test_test_set_has_unseen_sentences_and_unseen_voices(
        self, built: tuple[BaseRecipe, BaseResult, list[str]]
    ) -> None:
        recipe, _, _ = built
        train, test = _rows(recipe, "train"), _rows(recipe, "test")
        assert (len(train), len(test)) == (120, 12)
        assert not {r["text"] for r in train} & {r["text"] for r in test}
        assert not {r["variant"] for r in train} & {r["variant"] for r in test}

    def test_package_carries_architecture_metrics_and_tuned_decoder(
        self, built: tuple[BaseRecipe, BaseResult, list[str]]
    ) -> None:
        recipe, result, _ = built
        package = read_package(result.package)
        manifest = package.manifest
        assert result.package.parent == recipe.out_dir
        assert (manifest.name, manifest.architecture) == ("ctcconformer-general", "ctcconformer")
        assert (manifest.version, manifest.aliases) == ("2030-01-01.1", ["general", "base"])
        assert package.model_config == TINY_CONFORMER
        assert manifest.metrics["test_utterances"] == 12
        assert manifest.metrics["wer"] == round(result.report.wer, 4)
        assert manifest.metrics["wer_greedy"] == round(result.greedy_report.wer, 4)
        assert any(key.startswith("wer/accent=") for key in manifest.metrics)
        assert manifest.training_set is not None
        assert manifest.training_set["utterances"] == 120
        assert manifest.training_set["steps"] == result.train.steps > 0
        # The shipped decoder is the best one tried on the validation set.
        tried = json.loads((recipe.work_dir / "decoding.json").read_text(encoding="utf-8"))
        best = min(tried, key=lambda row: row["wer"])
        assert package.decoding == {k: v for k, v in best.items() if k not in {"wer", "cer"}}
        assert {row["beam_width"] for row in tried if row["decoder"] == "beam"} == {8, 16, 32}
        grid = len(LM_WEIGHTS) * len(WORD_BONUSES) * len(OOV_PENALTIES)
        assert len(tried) == 2 * (1 + grid + len(WIDER_BEAMS))
        penalties = {row["oov_penalty"] for row in tried if row["decoder"] == "beam"}
        assert penalties == set(OOV_PENALTIES)
        assert (recipe.work_dir / "report.md").read_text(encoding="utf-8").strip()
        assert not list(recipe.work_dir.glob("draft/*.dg"))  # the draft is gone

    def test_second_run_repackages_without_training(
        self, built: tuple[BaseRecipe, BaseResult, list[str]]
    ) -> None:
        recipe, first, _ = built
        lines: list[str] = []
        again = train_base(recipe, log=lines.append)
        assert not any(line.startswith("synthesising") for line in lines)  # corpora reused
        assert again.train.steps == first.train.steps
        assert again.report.wer == pytest.approx(first.report.wer)
        assert (
            read_package(again.package).manifest.uuid == read_package(first.package).manifest.uuid
        )

    def test_a_corpus_of_another_seed_is_synthesised_again_not_reused(
        self, built: tuple[BaseRecipe, BaseResult, list[str]], tmp_path: Path
    ) -> None:
        # Same work dir, same count, another training seed: the ids are the same
        # (train-000000, ...) but the sentences and voices are not, so the corpus is redone.
        recipe, _, _ = built
        work = tmp_path / "work"
        shutil.copytree(recipe.work_dir, work, ignore=shutil.ignore_patterns("run", "draft"))
        lines: list[str] = []
        reseeded = dataclasses.replace(recipe, work_dir=work, train_seed=recipe.seed + 5)
        synthesize_splits(reseeded, log=lines.append)
        assert [line.split(" into ")[0] for line in lines] == ["synthesising 120 train utterances"]
        old, new = _rows(recipe, "train"), _rows(reseeded, "train")
        assert [r["id"] for r in old] == [r["id"] for r in new]
        assert [r["text"] for r in old] != [r["text"] for r in new]
        assert {r["seed"] for r in new}.isdisjoint({r["seed"] for r in old})
        lines.clear()
        synthesize_splits(reseeded, log=lines.append)
        assert lines == []  # and that corpus, now complete, is reused


class TestContinuationStage:
    """A second stage starts from a package and trains on a fresh corpus; valid/test stay put."""

    def test_continues_from_the_package_on_a_fresh_corpus(
        self,
        built: tuple[BaseRecipe, BaseResult, list[str]],
        tmp_path: Path,
    ) -> None:
        first_recipe, first, _ = built
        parent = read_package(first.package)
        recipe = dataclasses.replace(
            first_recipe,
            work_dir=tmp_path / "stage2",
            out_dir=tmp_path / "out2",
            init_from=first.package,
            train_seed=7,
            lr=1e-12,  # the weights cannot move: what comes out is what went in
            version="2030-01-01.2",
            augment=AugmentConfig(freq_warp=0.1),
        )
        result = train_base(recipe, log=lambda _: None)
        # Fresh training speech, the same held-out sets.
        old_train, new_train = _rows(first_recipe, "train"), _rows(recipe, "train")
        assert [r["text"] for r in old_train] != [r["text"] for r in new_train]
        assert _rows(recipe, "test") == _rows(first_recipe, "test")
        assert _rows(recipe, "valid") == _rows(first_recipe, "valid")
        # Training started from the parent's weights.
        child = read_package(result.package)
        assert result.train.steps > 0
        # (Parameters only: BatchNorm's running statistics follow the new data whatever the lr.)
        parameters = [name for name, _ in parent.build_model().named_parameters()]
        assert parameters
        for name in parameters:
            assert torch.allclose(child.state_dict[name], parent.state_dict[name], atol=1e-6), name
        training_set = child.manifest.training_set
        assert training_set is not None
        assert training_set["train_seed"] == 7
        assert training_set["augment"]["freq_warp"] == 0.1
        assert "augment" not in (parent.manifest.training_set or {})  # off by default
        assert training_set["init_from"]["uuid"] == parent.manifest.uuid
        assert training_set["init_from"]["training_set"] == parent.manifest.training_set
        assert child.manifest.uuid != parent.manifest.uuid

    def test_refuses_a_package_of_another_configuration(
        self,
        built: tuple[BaseRecipe, BaseResult, list[str]],
        tmp_path: Path,
    ) -> None:
        first_recipe, first, _ = built
        recipe = dataclasses.replace(
            first_recipe,
            work_dir=tmp_path / "stage2",
            init_from=first.package,
            model=dataclasses.replace(TINY_CONFORMER, d_model=32),
        )
        with pytest.raises(RecipeError, match="configuration differs"):
            train_base(recipe, log=lambda _: None)
        assert not recipe.work_dir.exists()  # refused before synthesising or training

    def test_refuses_a_file_that_is_not_a_package(
        self,
        built: tuple[BaseRecipe, BaseResult, list[str]],
        tmp_path: Path,
    ) -> None:
        first_recipe, _, _ = built
        bogus = tmp_path / "bogus.dg"
        bogus.write_bytes(b"not a tar file")
        recipe = dataclasses.replace(first_recipe, work_dir=tmp_path / "stage2", init_from=bogus)
        with pytest.raises(RecipeError, match="cannot continue from"):
            train_base(recipe, log=lambda _: None)
