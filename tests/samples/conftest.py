"""A service with a real sample store: local directory or moto's S3, on SQLite and PostgreSQL.

Speech comes from espeak-ng; the sampling rate is 1.0 unless a test sets its own, so every
opted-in, successful request is selected and the tests say which one they refuse and why.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import app as cli
from app.kit.settings import Settings, get_settings
from app.main import create_app
from app.samples.runtime import SampleStore
from tests.conftest import Database, S3Endpoint, Tenant, make_tenant
from tests.speech import synth_speech

T0 = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
SENTENCE = "the patient was given two tablets of ibuprofen after lunch"


@pytest.fixture(scope="session")
def speech() -> bytes:
    return synth_speech(SENTENCE)


def transcript_of(request_id: str) -> bytes:
    return orjson.dumps(
        {
            "metadata": {"request_id": request_id},
            "results": {
                "channels": [{"alternatives": [{"transcript": f"{SENTENCE} {request_id}"}]}]
            },
        }
    )


def make_settings(
    db: Database,
    tmp_path: Path,
    *,
    backend: str = "local",
    s3: S3Endpoint | None = None,
    bucket: str | None = None,
    **overrides: Any,
) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "data_dir": tmp_path / "var",
        "database_url": db.url,
        "sampling_rate": 1.0,
        "sampling_secret": "test-secret-of-the-sample-store",
        "bundled_models_dir": None,
    }
    if backend == "s3":
        assert s3 is not None
        values["blob_url"] = f"s3://{bucket}/mip"
        values["s3_endpoint_url"] = s3.url
    values.update(overrides)
    return Settings(**values)


@dataclass
class Service:
    """The app, its test client, a tenant and an admin key: what every sample test needs."""

    app: FastAPI
    client: TestClient
    db: Database
    tenant: Tenant
    admin: dict[str, str]
    blob_root: Path | None

    @property
    def store(self) -> SampleStore:
        store: SampleStore = self.app.state.store
        return store

    def record(
        self,
        request_id: str,
        *,
        tenant: Tenant | None = None,
        opt_out: str | None = None,
        status: int = 200,
        model: str = "general",
    ) -> None:
        """One ledger row through the real batch ingest (the gateway's path)."""
        event: dict[str, Any] = {
            "request_id": request_id,
            "project_id": str((tenant or self.tenant).project_id),
            "created": T0.isoformat(),
            "model": model,
            "duration": 3.0,
            "status": status,
        }
        if opt_out is not None:
            event["mip_opt_out"] = opt_out
        response = self.client.post(
            "/v1/governance/ledger/events", json={"events": [event]}, headers=self.admin
        )
        assert response.status_code == 200, response.text

    def post_sample(
        self,
        request_id: str,
        audio: bytes,
        *,
        tenant: Tenant | None = None,
        attributes: dict[str, Any] | None = None,
        transcript: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        data = {
            "project_id": str((tenant or self.tenant).project_id),
            "request_id": request_id,
        }
        if attributes is not None:
            data["attributes"] = orjson.dumps(attributes).decode()
        files = {
            "audio": ("audio.wav", audio, "audio/wav"),
            "transcript": ("t.json", transcript or transcript_of(request_id), "application/json"),
        }
        return self.client.post(
            "/v1/governance/samples", data=data, files=files, headers=headers or self.admin
        )

    def keep(self, request_id: str, audio: bytes, **kwargs: Any) -> dict[str, Any]:
        self.record(request_id, tenant=kwargs.get("tenant"))
        response = self.post_sample(request_id, audio, **kwargs)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    def object_count(self) -> int:
        return sum(1 for _ in self.store.blobs.list(""))


def build_service(db: Database, settings: Settings) -> Iterator[Service]:
    from tests.conftest import make_staff_key

    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        root = Path(settings.effective_blob_url.removeprefix("file://"))
        yield Service(
            app=app,
            client=client,
            db=db,
            tenant=make_tenant(db, name=f"Org {uuid.uuid4().hex[:6]}", scopes=["admin"]),
            admin=make_staff_key(db, "admin"),
            blob_root=root if settings.effective_blob_url.startswith("file:") else None,
        )


@pytest.fixture
def service(db: Database, tmp_path: Path) -> Iterator[Service]:
    """Local blob directory."""
    yield from build_service(db, make_settings(db, tmp_path))


@pytest.fixture(params=["local", "s3"])
def any_service(
    request: pytest.FixtureRequest, db: Database, tmp_path: Path, s3_endpoint: S3Endpoint
) -> Iterator[Service]:
    """Both blob backends, same tests."""
    bucket = None
    if request.param == "s3":
        bucket = f"mip-{uuid.uuid4().hex[:12]}"
        s3_endpoint.client("s3").create_bucket(Bucket=bucket)
    settings = make_settings(db, tmp_path, backend=request.param, s3=s3_endpoint, bucket=bucket)
    yield from build_service(db, settings)


_runner = CliRunner()


@pytest.fixture
def cli_env(service: Service, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The CLI sees the same database, blob directory, key file and secret as the app."""
    settings: Settings = service.app.state.settings
    monkeypatch.setenv("MIP_DATABASE_URL", service.db.url)
    monkeypatch.setenv("MIP_DATA_DIR", str(settings.data_dir))
    assert settings.sampling_secret is not None
    monkeypatch.setenv("MIP_SAMPLING_SECRET", settings.sampling_secret.get_secret_value())
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def mip(*args: str) -> Any:
    return _runner.invoke(cli, list(args))
