"""One tenant cannot hold every upload check: with its share in use, its next upload is a
429 at once, while another reseller's upload goes through (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.kit.limits import ActiveRequests
from app.kit.settings import Settings
from tests.conftest import Database
from tests.custom.conftest import Reseller, bundled_settings, make_reseller
from tests.kit.test_http import assert_error
from tests.speech import synth_speech

URL = "/v1/governance/custom-models"
SENTENCE = "please call stella and ask her to bring these things"


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return bundled_settings(
        db, tmp_path, custom_max_active_uploads=2, custom_max_active_uploads_per_tenant=1
    )


def upload(client: TestClient, reseller: Reseller, model_id: str, audio: bytes) -> Any:
    return client.post(
        f"{URL}/{model_id}/data",
        files={"audio": ("call.wav", audio, "audio/wav")},
        data={"transcript": SENTENCE},
        headers=reseller.headers,
    )


class TestUploadShares:
    def test_a_tenant_at_its_share_gets_429_and_others_do_not(
        self,
        db: Database,
        app: FastAPI,
        client: TestClient,
        reseller: Reseller,
        model: dict[str, Any],
    ) -> None:
        speech = synth_speech(SENTENCE)
        other = make_reseller(db, name="Other reseller")
        theirs = client.post(
            URL, json={"name": "theirs", "language": "en", "domain": "legal"}, headers=other.headers
        ).json()
        limiter: ActiveRequests = app.state.custom_upload_limiter
        # An upload of the first reseller is being checked right now.
        with limiter.slot(uuid.UUID(reseller.id)):
            refused = upload(client, reseller, model["id"], speech)
            assert_error(refused, 429, "TOO_MANY_REQUESTS")
            assert upload(client, other, theirs["id"], speech).status_code == 201
        listed = client.get(f"{URL}/{model['id']}/data", headers=reseller.headers).json()
        assert listed["files"] == []  # the refused upload wrote nothing
        assert upload(client, reseller, model["id"], speech).status_code == 201
        assert limiter.active == 0
