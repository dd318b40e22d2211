"""Training jobs and model versions on SQLite and PostgreSQL, with real packages and blobs.

The base model is a copy of the package shipped in ``models/`` (in a folder of its own that
plays the bundled folder); candidates are the same weights re-packaged with a new version and
uuid (``asr.package``), so promotion moves real files the real registry loads.
"""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.kit.db import utcnow
from app.kit.settings import BUNDLED_MODELS_DIR, Settings, get_settings
from app.main import create_app
from app.samples.runtime import SampleStore, open_sample_store
from app.tables.audit import AuditEntry
from app.tables.datasets import TrainingSet
from app.tables.training import ModelVersion, TrainingJob, TrainingJobLog
from app.training import promotion
from app.training.schemas import JobParams
from app.training.service import submit_job
from asr.package import PackageManifest, read_manifest, read_package, write_package
from tests.conftest import Database, make_staff_key, make_tenant

CANDIDATE_VERSIONS = ("2030-01-01.1", "2030-01-01.2")
SHIPPED = read_manifest(sorted(BUNDLED_MODELS_DIR.glob("*.dg"))[0])
BASE_NAME = SHIPPED.name  # e.g. "ctcconformer-general"
ARCHITECTURE = SHIPPED.architecture  # a fine-tune is named "{ARCHITECTURE}-{domain}"


@dataclass(frozen=True)
class Packages:
    bundled_dir: Path  # holds the base package only
    base: PackageManifest
    candidates: tuple[Path, ...]  # outside every model folder, as a job leaves them


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    shipped = sorted(BUNDLED_MODELS_DIR.glob("*.dg"))[0]
    bundled = tmp_path_factory.mktemp("bundled")
    shutil.copy(shipped, bundled / shipped.name)
    package = read_package(shipped)
    out = tmp_path_factory.mktemp("candidates")
    paths = []
    for version in CANDIDATE_VERSIONS:
        manifest = dataclasses.replace(
            package.manifest, version=version, uuid=str(uuid.uuid4()), tags=["candidate"]
        )
        paths.append(
            write_package(
                out,
                manifest,
                model_config=package.model_config,
                feature_config=package.feature_config,
                tokenizer=package.tokenizer,
                state_dict=package.state_dict,
                lm=package.lm,
                decoding=package.decoding,
            )
        )
    return Packages(bundled, read_manifest(bundled / shipped.name), tuple(paths))


def training_settings(db: Database, tmp_path: Path, packages: Packages, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "data_dir": tmp_path / "var",
        "database_url": db.url,
        "sampling_secret": "test-secret-of-the-training-tests",
        "bundled_models_dir": packages.bundled_dir,
        # Fast heartbeats so a lost job is noticed within a test; staleness is forced by
        # moving heartbeat_at into the past, never by waiting.
        "job_heartbeat_seconds": 0.05,
        "job_stale_seconds": 60.0,
        "models_poll_seconds": 60.0,
    }
    values.update(extra)
    return Settings(**values)


@pytest.fixture
def settings(db: Database, tmp_path: Path, packages: Packages) -> Settings:
    return training_settings(db, tmp_path, packages)


@pytest.fixture
def store(settings: Settings) -> SampleStore:
    return open_sample_store(settings)


@pytest.fixture
def factory(db: Database) -> sessionmaker[Session]:
    return db.factory


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The CLI reads the same database, data folder and model folders as the tests."""
    monkeypatch.setenv("MIP_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("MIP_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("MIP_BUNDLED_MODELS_DIR", str(settings.bundled_models_dir))
    assert settings.sampling_secret is not None
    monkeypatch.setenv("MIP_SAMPLING_SECRET", settings.sampling_secret.get_secret_value())
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def add_training_set(
    db: Database,
    name: str = "medical-en",
    *,
    version: int = 1,
    status: str = "ready",
    eval_count: int = 2,
) -> TrainingSet:
    """A training set row as curation leaves it (membership is not needed here)."""
    with db.session() as session:
        row = TrainingSet(
            name=name,
            version=version,
            status=status,
            params={"balance": ["accent"], "hours": 1.0},
            manifest_hash="0" * 64,
            validation={"passed": 10},
            balance={"dimensions": ["accent"]},
            sample_count=10,
            eval_count=eval_count,
            duration_seconds=30.0,
            created_by="test",
            created_at=utcnow(),
            tainted_at=utcnow() if status == "tainted" else None,
            taint_reason="erasure 1234" if status == "tainted" else None,
        )
        session.add(row)
    return row


@dataclass
class Api:
    """The app, its client, and one key per kind of caller."""

    app: FastAPI
    client: TestClient
    dataops: dict[str, str]
    auditor: dict[str, str]
    billing: dict[str, str]
    project: dict[str, str]

    def post(self, path: str, json: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(path, json=json, headers=headers or self.dataops)

    def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=headers or self.dataops)


@pytest.fixture
def api(db: Database, settings: Settings) -> Iterator[Api]:
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        tenant = make_tenant(db, scopes=["admin"])
        yield Api(
            app=app,
            client=client,
            dataops=make_staff_key(db, "dataops"),
            auditor=make_staff_key(db, "auditor"),
            billing=make_staff_key(db, "billing"),
            project=tenant.headers,
        )


def queue_job(
    db: Database, settings: Settings, *, training_set: str = "medical-en", **params: Any
) -> uuid.UUID:
    """Submit a job through the service, as the endpoint does."""
    with db.session() as session:
        job = submit_job(
            session,
            settings,
            base_model="general",
            training_set=training_set,
            hyperparameters=JobParams(**params),
            actor="test",
        )
        return job.id


def load_job(db: Database, job_id: uuid.UUID) -> TrainingJob:
    with db.session() as session:
        job: TrainingJob | None = session.get(TrainingJob, job_id)
        if job is None:
            raise LookupError(job_id)
        return job


def log_lines(db: Database, job_id: uuid.UUID) -> list[str]:
    with db.session() as session:
        return list(
            session.scalars(
                select(TrainingJobLog.message)
                .where(TrainingJobLog.job_id == job_id)
                .order_by(TrainingJobLog.id)
            )
        )


def audit_actions(db: Database, target_id: uuid.UUID) -> list[str]:
    with db.session() as session:
        return list(
            session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.target_id == str(target_id))
                .order_by(AuditEntry.seq)
            )
        )


# --- model versions ---


def metrics_side(wer: float, groups: dict[str, dict[str, tuple[float, int]]] | None = None) -> Any:
    return {
        "wer": wer,
        "cer": wer / 2,
        "utterances": 100,
        "groups": {
            dimension: {g: {"wer": w, "utterances": n} for g, (w, n) in values.items()}
            for dimension, values in (groups or {}).items()
        },
    }


def metrics(
    candidate: float = 0.2,
    base: float = 0.3,
    *,
    candidate_groups: dict[str, dict[str, tuple[float, int]]] | None = None,
    base_groups: dict[str, dict[str, tuple[float, int]]] | None = None,
) -> dict[str, Any]:
    return {
        "candidate": metrics_side(candidate, candidate_groups),
        "base": metrics_side(base, base_groups),
    }


FAILING = metrics(candidate=0.35, base=0.3)  # worse than its base: the policy refuses it


def register(
    db: Database, store: SampleStore, path: Path, data: dict[str, Any] | None = None
) -> ModelVersion:
    with db.session() as session:
        return promotion.register_candidate(
            session,
            store,
            package=path,
            job=None,
            training_set_id=None,
            base_model=BASE_NAME,
            metrics=metrics() if data is None else data,
        )
