"""Custom-model tests: an app serving one small base model (or, for the tests that score
transcripts, the real bundled one), a reseller and its keys, a model of it, the CLI's env."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.kit.settings import BUNDLED_MODELS_DIR, Settings, get_settings
from app.tenancy import service as tenancy
from tests.conftest import Database
from tests.engine.conftest import make_package

BASE_UUID = "0a1b2c3d-0000-4000-8000-00000000c0de"
BASE_VERSION = "2026-11-21.1"


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    models = tmp_path / "models"
    models.mkdir()
    make_package(models, uuid=BASE_UUID, version=BASE_VERSION)
    return Settings(
        env="test",
        data_dir=tmp_path / "var",
        database_url=db.url,
        log_json=True,
        models_dir=models,
        bundled_models_dir=None,
        models_poll_seconds=60.0,
    )


def bundled_settings(db: Database, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings serving the real base model: a transcript is scored against what it hears."""
    return Settings(
        env="test",
        data_dir=tmp_path / "var",
        database_url=db.url,
        log_json=True,
        models_dir=tmp_path / "models",
        bundled_models_dir=BUNDLED_MODELS_DIR,
        models_poll_seconds=60.0,
        **overrides,
    )


def blob_files(settings: Settings) -> list[Path]:
    """Every object the local blob store holds under ``custom/``."""
    root = settings.data_dir / "blobs" / "custom"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def cli_env(db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``mip`` pointed at the test's database, data directory and models."""
    monkeypatch.setenv("MIP_DATABASE_URL", db.url)
    monkeypatch.setenv("MIP_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("MIP_MODELS_DIR", str(settings.models_dir))
    monkeypatch.setenv("MIP_BUNDLED_MODELS_DIR", str(settings.bundled_models_dir or ""))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@dataclass(frozen=True)
class Reseller:
    id: str
    key_id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.key}"}


def make_reseller(
    db: Database, name: str = "Resell Co", scopes: list[str] | None = None
) -> Reseller:
    with db.session() as session:
        reseller = tenancy.create_reseller(session, name=name, actor="test")
        key, secret = tenancy.create_reseller_key(
            session, reseller_id=reseller.id, actor="test", scopes=scopes
        )
        return Reseller(str(reseller.id), str(key.id), secret)


@pytest.fixture
def reseller(db: Database) -> Reseller:
    return make_reseller(db)


@pytest.fixture
def model(client: TestClient, reseller: Reseller) -> dict[str, Any]:
    """The reseller's model ``clinic`` (English, medical), on the default base."""
    response = client.post(
        "/v1/governance/custom-models",
        json={"name": "clinic", "language": "en", "domain": "medical"},
        headers=reseller.headers,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
