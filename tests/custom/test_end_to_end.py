"""A reseller's custom model, the whole flow small on CPU: create, upload by tus, validate,
fix, confirm, set a vocabulary, train (mip worker's executor), read the test against the
standard model, publish, share as an organization's default, transcribe through the official
Deepgram SDK, see the usage, revoke, get the documented 400 — on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from deepgram.core.api_error import ApiError
from fastapi.testclient import TestClient
from sqlalchemy import select
from tusclient.client import TusClient

from app.kit.db import create_db_engine, make_sessionmaker
from app.kit.settings import Settings
from app.samples.runtime import open_sample_store
from app.tables import LedgerEntry
from app.training.queue import work_once
from app.training.runner import execute_job
from tests.conftest import Database, SdkFactory, make_tenant, wait_until
from tests.custom.conftest import Reseller, bundled_settings
from tests.listen.conftest import NO_SUCH_MODEL
from tests.speech import synth_speech

pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:websockets.exceptions.InvalidStatusCode is deprecated:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:websockets.legacy is deprecated:DeprecationWarning"),
]

URL = "/v1/governance/custom-models"
# Two speakers (espeak voices); the held-out test takes whole speakers.
PAIRS = (
    ("en-us", "alice", "the patient needs metformin twice a day"),
    ("en-us", "alice", "schedule a follow up visit next week"),
    ("en-us", "alice", "please check the blood pressure again"),
    ("en-us", "alice", "the clinic opens at nine on monday"),
    ("en-gb", "bob", "her blood sugar is under control now"),
    ("en-gb", "bob", "take metformin with food in the morning"),
    ("en-gb", "bob", "the nurse will call you tomorrow"),
    ("en-gb", "bob", "bring your medication list next time"),
)
WRONG = ("en-us", "alice", "the weather is lovely at the seaside")  # its audio says otherwise


def archive_bytes() -> bytes:
    """A zip with a manifest naming each file's speaker; one transcript does not match."""
    rows = [*PAIRS, (WRONG[0], WRONG[1], "an entirely different sentence about trains")]
    manifest = io.StringIO()
    writer = csv.writer(manifest)
    writer.writerow(["audio", "transcript", "speaker"])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zipped:
        for index, (voice, speaker, text) in enumerate(rows):
            said = WRONG[2] if index == len(PAIRS) else text
            zipped.writestr(f"audio/{index:02d}.wav", synth_speech(said, voice=voice))
            writer.writerow([f"audio/{index:02d}.wav", text, speaker])
        zipped.writestr("manifest.csv", manifest.getvalue())
    return buffer.getvalue()


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return bundled_settings(db, tmp_path, custom_min_hours=0.003)


def run_worker(db: Database, settings: Settings) -> None:
    engine = create_db_engine(db.url)
    try:
        ran = work_once(
            make_sessionmaker(engine),
            open_sample_store(settings),
            settings,
            worker_id="e2e",
            execute=execute_job,
        )
        assert ran is not None
    finally:
        engine.dispose()


class TestCustomModelFlow:
    def test_from_upload_to_revocation(
        self,
        db: Database,
        settings: Settings,
        client: TestClient,
        live_server: str,
        sdk: SdkFactory,
        reseller: Reseller,
        model: dict[str, Any],
    ) -> None:
        headers, base = reseller.headers, f"{URL}/{model['id']}"
        clinic = make_tenant(db, name="Clinic", scopes=["member"], reseller_id=reseller.id)
        other = make_tenant(db, name="Other", scopes=["member"], reseller_id=reseller.id)

        # Upload by tus, as the official client does it.
        archive = archive_bytes()
        tus = TusClient(f"{live_server}{base}/uploads", headers=headers)
        with io.BytesIO(archive) as stream:
            uploader = tus.uploader(file_stream=stream, chunk_size=64 * 1024)
            uploader.upload()
        assert uploader.url is not None
        upload = urlsplit(uploader.url).path
        assert wait_until(
            lambda: client.get(upload, headers=headers).json()["status"] == "complete"
        )

        # Validate: the mismatched transcript is flagged; remove it, then confirm.
        listed = client.get(f"{base}/data", headers=headers).json()
        flagged = [f for f in listed["files"] if f["status"] == "rejected"]
        assert [r["code"] for f in flagged for r in f["reasons"]] == ["transcript_mismatch"]
        assert listed["report"]["accepted"]["files"] == len(PAIRS)
        response = client.delete(f"{base}/data/{flagged[0]['id']}", headers=headers)
        assert response.status_code == 200, response.text
        confirmed = client.post(f"{base}/data/confirm", headers=headers).json()
        assert confirmed["status"] == "ready_to_train"
        assert confirmed["data_set"]["files"] == len(PAIRS)

        vocabulary = {"terms": [{"term": "metformin", "sounds_like": ["met for min"]}]}
        response = client.put(f"{base}/vocabulary", json=vocabulary, headers=headers)
        assert response.status_code == 200, response.text

        job = client.post(
            f"{base}/train",
            json={"max_steps": 4, "minutes": 2, "mix_utterances": 0, "test_fraction": 0.4},
            headers=headers,
        ).json()
        assert client.get(base, headers=headers).json()["status"] == "training"
        run_worker(db, settings)
        job = client.get(f"{base}/jobs/{job['id']}", headers=headers).json()
        assert job["status"] == "succeeded", job

        # The candidate's test against the standard model, on whole held-out speakers.
        assert client.get(base, headers=headers).json()["status"] == "testing"
        version = client.get(f"{base}/versions/1", headers=headers).json()
        test = version["test"]
        assert test["speaker_disjoint"] is True
        assert test["utterances"] == 4
        assert [w.split(":")[0] for w in test["warnings"]] == ["Only 4 held-out files"]
        assert 0 <= test["wer_custom_ci"][0] <= test["wer_custom"] <= test["wer_custom_ci"][1]
        assert version["vocabulary"][0]["term"] == "metformin"
        assert version["data_hash"] == confirmed["data_set"]["hash"]
        report = client.get(f"{base}/versions/1/report", headers=headers)
        assert report.headers["content-type"].startswith("text/html")
        assert "<svg" in report.text
        figures = client.get(f"{base}/versions/1/report?format=json", headers=headers).json()
        assert {s["speaker"] for s in figures["speakers"]} < {"alice", "bob"}

        published = client.post(f"{base}/versions/1/publish", headers=headers).json()
        assert published["status"] == "published"
        assert (settings.effective_models_dir / published["filename"]).is_file()
        shared = client.post(
            f"{base}/assignments",
            json={"organization_ids": [str(clinic.org_id)], "mode": "default"},
            headers=headers,
        )
        assert shared.status_code == 200, shared.text

        # The organization's requests name no model: its default custom model serves them.
        speech = synth_speech("take metformin with food", voice="en-us")
        media = sdk(clinic.key).listen.v1.media
        result = media.transcribe_file(request=speech, mip_opt_out=True)
        package = published["package_uuid"]
        assert result.metadata.models == [package]
        assert result.metadata.model_info[package]["name"] == "clinic"
        listed_models = client.get("/v1/models", headers=clinic.headers).json()["stt"]
        assert package in {m["uuid"] for m in listed_models}
        # Another organization neither sees nor uses it.
        assert client.get(f"/v1/models/{package}", headers=other.headers).status_code == 404
        with pytest.raises(ApiError) as refused:
            sdk(other.key).listen.v1.media.transcribe_file(request=speech, model="clinic")
        assert refused.value.status_code == 400

        with db.session() as session:
            row = session.scalars(
                select(LedgerEntry).where(LedgerEntry.organization_id == clinic.org_id)
            ).one()
            assert (row.model_name, row.model_uuid, row.model_tier) == ("clinic", package, "custom")
        used = client.get(f"{base}/usage", headers=headers).json()
        assert [(r["organization_id"], r["version"], r["requests"]) for r in used["rows"]] == [
            (str(clinic.org_id), 1, 1)
        ]

        breakdown = client.get(
            f"/v1/projects/{clinic.project_id}/usage/breakdown?grouping=models",
            headers=clinic.headers,
        ).json()
        assert [r["grouping"]["models"] for r in breakdown["results"]] == [["clinic"]]

        revoked = client.post(
            f"{base}/assignments/revoke",
            json={"organization_ids": [str(clinic.org_id)]},
            headers=headers,
        )
        assert revoked.status_code == 200, revoked.text
        with pytest.raises(ApiError) as gone:
            media.transcribe_file(request=speech, model="clinic", mip_opt_out=True)
        assert gone.value.status_code == 400
        assert gone.value.body["err_msg"] == NO_SUCH_MODEL
