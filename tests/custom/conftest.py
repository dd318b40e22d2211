"""Custom-model tests: an app serving one small base model, a reseller and its keys."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from app.kit.settings import Settings
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
