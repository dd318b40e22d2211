"""Small real model packages (random-init tiny CTC models) and a service that serves them.

Tests of the HTTP endpoints override ``installed_packages`` to write packages into the
model folder before the app starts; the app never reads the repository's bundled models.
"""

from __future__ import annotations

import uuid as uuid_lib
from pathlib import Path
from typing import Any, Literal

import pytest
import torch

from app.kit.settings import Settings
from asr.features import FeatureConfig
from asr.model import CTCModel, ModelConfig
from asr.package import PackageManifest, new_manifest, write_package
from asr.tokenizer import CharTokenizer
from tests.conftest import Database

TINY = ModelConfig(d_model=16, n_layers=1, kernel_sizes=[3], subsampling_channels=4)
CREATED = "2026-11-21T10:00:00+00:00"


def tiny_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return CTCModel(TINY).state_dict()


def make_manifest(
    *,
    name: str = "ctcconv-general",
    version: str = "2026-11-21.1",
    domain: str = "general",
    architecture: str = "ctcconv",
    aliases: list[str] | None = None,
    kind: str = "asr",
    languages: list[str] | None = None,
    mode: str = "batch",
    formatted: bool = False,
    uuid: str | None = None,
    tags: list[str] | None = None,
) -> PackageManifest:
    return new_manifest(
        name=name,
        architecture=architecture,
        domain=domain,
        version=version,
        kind=kind,
        languages=languages or ["en"],
        formatted=formatted,
        mode=mode,
        aliases=["general", "base"] if aliases is None else aliases,
        uuid=uuid or str(uuid_lib.uuid4()),
        tags=tags,
        created=CREATED,
        training_set={"id": "ts-1", "version": 3},
        metrics={"wer": 0.2, "cer": 0.08},
    )


def write_tiny(
    directory: Path,
    manifest: PackageManifest,
    *,
    style: Literal["standard", "legacy"] = "standard",
    seed: int = 0,
    lm: dict[str, object] | None = None,
) -> Path:
    return write_package(
        directory,
        manifest,
        model_config=TINY,
        feature_config=FeatureConfig(),
        tokenizer=CharTokenizer.english(),
        state_dict=tiny_state_dict(seed),
        lm=lm,
        filename_style=style,
    )


def make_package(
    directory: Path,
    *,
    style: Literal["standard", "legacy"] = "standard",
    seed: int = 0,
    **fields: Any,
) -> Path:
    """Write a tiny package into ``directory``; ``fields`` go to :func:`make_manifest`."""
    return write_tiny(directory, make_manifest(**fields), style=style, seed=seed)


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "models"
    directory.mkdir()
    return directory


@pytest.fixture
def installed_packages(models_dir: Path) -> list[Path]:
    """Packages present before the app starts; override it to install some."""
    return []


@pytest.fixture
def settings(
    db: Database, tmp_path: Path, models_dir: Path, installed_packages: list[Path]
) -> Settings:
    return Settings(
        env="test",
        data_dir=tmp_path / "var",
        database_url=db.url,
        log_json=True,
        models_dir=models_dir,
        bundled_models_dir=None,
        models_poll_seconds=0.05,
    )
