"""``POST /v1/listen`` against a real service: a tiny random-init model package, real audio.

    api = serve(sampling_rate=1.0)                      # app + test client + a tenant
    response = api.post(SPEECH_WAV, "punctuate=true")   # ledger rows: api.ledger()

The tiny model's transcripts are gibberish (it is untrained); the tests check everything but
what the words say. Speech comes from espeak-ng (cached per text); the other encodings are
made from it with soundfile.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest
import soundfile as sf
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.kit.settings import Settings
from app.main import create_app
from app.tables import LedgerEntry, Sample
from tests.conftest import Database, Tenant, make_staff_key, make_tenant
from tests.engine.conftest import make_package
from tests.speech import synth_speech

MODEL_UUID = "0a1b2c3d-0000-4000-8000-00000000a5a5"
MODEL_NAME = "ctcconv-general"
MODEL_VERSION = "2026-11-21.1"
SENTENCE = "the quick brown fox jumps over the lazy dog"
SPEECH_SECONDS_MIN = 2.0  # espeak's rendering of SENTENCE is a little over 3 s
NO_SUCH_MODEL = (
    "Bad Request: No such model/language/tier combination found. "
    'You could try the "general" model (language: en-US, base tier).'
)


@pytest.fixture(scope="session")
def speech() -> bytes:
    """WAV bytes (22050 Hz mono PCM_16) of :data:`SENTENCE`."""
    return synth_speech(SENTENCE)


@pytest.fixture(scope="session")
def speech_samples(speech: bytes) -> tuple[np.ndarray[Any, Any], int]:
    samples, rate = sf.read(io.BytesIO(speech), dtype="float32")
    return samples, rate


def encode(samples: np.ndarray[Any, Any], rate: int, fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def encodings(speech: bytes, speech_samples: tuple[np.ndarray[Any, Any], int]) -> dict[str, bytes]:
    """The same speech as WAV, FLAC, OGG (Vorbis) and MP3."""
    samples, rate = speech_samples
    return {
        "wav": speech,
        "flac": encode(samples, rate, "FLAC", "PCM_16"),
        "ogg": encode(samples, rate, "OGG", "VORBIS"),
        "mp3": encode(samples, rate, "MP3", "MPEG_LAYER_III"),
    }


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "models"
    directory.mkdir()
    return directory


@pytest.fixture
def installed_packages(models_dir: Path) -> list[Path]:
    """One served ASR model (aliases general and base, English); override to add more."""
    return [make_package(models_dir, uuid=MODEL_UUID, version=MODEL_VERSION)]


def listen_settings(db: Database, tmp_path: Path, models_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "data_dir": tmp_path / "var",
        "database_url": db.url,
        "log_json": True,
        "models_dir": models_dir,
        "bundled_models_dir": None,
        "models_poll_seconds": 60.0,  # the packages are written before the app starts
        "sampling_rate": 0.0,
        "sampling_secret": "test-secret-of-the-listen-tests",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(
    db: Database, tmp_path: Path, models_dir: Path, installed_packages: list[Path]
) -> Settings:
    """The settings of tests/conftest's ``app``/``live_server``/``sdk`` fixtures."""
    return listen_settings(db, tmp_path, models_dir)


@dataclass
class Listen:
    """A running service, its client, one tenant: what every /v1/listen test needs."""

    app: FastAPI
    client: TestClient
    db: Database
    tenant: Tenant
    settings: Settings

    def post(
        self,
        audio: bytes,
        query: str = "",
        *,
        content_type: str | None = "audio/wav",
        headers: dict[str, str] | None = None,
    ) -> httpx2.Response:
        sent = dict(self.tenant.headers if headers is None else headers)
        if content_type is not None:
            sent["Content-Type"] = content_type
        url = f"/v1/listen?{query}" if query else "/v1/listen"
        return self.client.post(url, content=audio, headers=sent)

    def ledger(self) -> list[LedgerEntry]:
        """Every ledger row, oldest first."""
        with self.db.session() as session:
            rows = session.scalars(select(LedgerEntry).order_by(LedgerEntry.created_at))
            return list(rows)

    def entry(self, request_id: str) -> LedgerEntry:
        rows = [row for row in self.ledger() if row.request_id == request_id]
        assert len(rows) == 1, f"{len(rows)} ledger rows for {request_id}"
        return rows[0]

    def samples(self) -> list[Sample]:
        with self.db.session() as session:
            return list(session.scalars(select(Sample)))

    @property
    def blob_root(self) -> Path:
        return Path(self.settings.effective_blob_url.removeprefix("file://"))

    def blob_files(self) -> list[Path]:
        root = self.blob_root
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []

    def staff(self, role: str) -> dict[str, str]:
        return make_staff_key(self.db, role)


Serve = Callable[..., Listen]


def contract_opted_out_tenant(db: Database) -> Tenant:
    """An enterprise organization whose contract opts it out of the program."""
    return make_tenant(
        db, plan="enterprise", contract_rates={"*": 4000}, contract_opt_out=True, name="Private"
    )


@pytest.fixture
def serve(
    db: Database,
    tmp_path: Path,
    models_dir: Path,
    installed_packages: list[Path],
    tenant: Tenant,
) -> Iterator[Serve]:
    """``serve(**settings_overrides)``: start the service (stopped after the test)."""
    with ExitStack() as stack:

        def build(**overrides: Any) -> Listen:
            settings = listen_settings(db, tmp_path, models_dir, **overrides)
            app = create_app(settings)
            client = stack.enter_context(TestClient(app, raise_server_exceptions=False))
            return Listen(app, client, db, tenant, settings)

        yield build


@pytest.fixture
def api(serve: Serve) -> Listen:
    """The service with default settings (sampling rate 0)."""
    return serve()


def assert_error(response: httpx2.Response, status: int, message: str | None = None) -> str:
    """The Deepgram error body with ``status``; returns its err_msg."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"err_code", "err_msg", "request_id"}, body
    assert body["request_id"] == response.headers["dg-request-id"]
    if message is not None:
        assert body["err_msg"] == message
    err_msg: str = body["err_msg"]
    return err_msg
