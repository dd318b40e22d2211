"""A custom model's training pairs: validated with the real base model, sealed at rest, removable;
bad input refused with nothing written (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import app as cli_app
from app.custom import data
from app.kit.guard import GuardRules
from app.kit.settings import Settings
from app.samples.keys import rewrap_batch
from app.samples.runtime import open_sample_store
from app.tables import AuditEntry, CustomDataFile, CustomModel
from asr.pairs import MAX_LOSS_PER_CHAR
from tests.conftest import Database, make_staff_key
from tests.custom.conftest import Reseller, blob_files, bundled_settings, make_reseller
from tests.kit.test_http import assert_error
from tests.speech import synth_speech

URL = "/v1/governance/custom-models"
SENTENCE = "please call stella and ask her to bring these things with her from the store"
OTHER = "the quarterly budget review moved to thursday afternoon in the main hall"


@pytest.fixture(scope="module")
def speech() -> bytes:
    return synth_speech(SENTENCE)


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return bundled_settings(db, tmp_path)


def upload(
    client: TestClient,
    reseller: Reseller,
    model: dict[str, Any],
    audio: bytes,
    transcript: str | bytes | None,
    **fields: str,
) -> Any:
    form: dict[str, Any] = dict(fields)
    if transcript is not None:
        form["transcript"] = transcript
    return client.post(
        f"{URL}/{model['id']}/data",
        files={"audio": ("call-01.wav", audio, "audio/wav")},
        data=form,
        headers=reseller.headers,
    )


class TestUpload:
    def test_a_matching_pair_is_accepted_and_sealed(
        self,
        client: TestClient,
        db: Database,
        settings: Settings,
        reseller: Reseller,
        model: dict[str, Any],
        speech: bytes,
    ) -> None:
        response = upload(client, reseller, model, speech, SENTENCE, speaker="dr-lee")
        assert response.status_code == 201, response.text
        record = response.json()
        assert (record["status"], record["reasons"]) == ("accepted", [])
        assert (record["name"], record["speaker"], record["audio_format"]) == (
            "call-01.wav",
            "dr-lee",
            "WAV",
        )
        assert record["loss_per_char"] < MAX_LOSS_PER_CHAR
        assert record["duration_seconds"] > 3
        files = blob_files(settings)
        assert len(files) == 2
        for path in files:
            sealed = path.read_bytes()
            assert sealed.startswith(b"MIPE")
            assert b"RIFF" not in sealed
            assert b"stella" not in sealed
        with db.session() as session:
            row = session.get(CustomModel, uuid.UUID(model["id"]))
            assert row is not None
            assert row.data_key_wrapped is not None
            stored = session.get(CustomDataFile, uuid.UUID(record["id"]))
            assert stored is not None
            assert (
                data.read_transcript(session, open_sample_store(settings), row, stored) == SENTENCE
            )
            actions = session.scalars(
                select(AuditEntry.action).where(AuditEntry.target_id == model["id"])
            ).all()
        assert actions == ["custom_model.created", "custom_data.uploaded"]
        listed = client.get(f"{URL}/{model['id']}/data", headers=reseller.headers).json()
        assert [f["id"] for f in listed["files"]] == [record["id"]]
        assert listed["report"]["accepted"]["files"] == 1
        assert listed["report"]["accepted"]["hours"] == pytest.approx(
            record["duration_seconds"] / 3600, abs=1e-6
        )

    def test_a_wrong_transcript_a_duplicate_and_junk_are_flagged(
        self,
        client: TestClient,
        settings: Settings,
        reseller: Reseller,
        model: dict[str, Any],
        speech: bytes,
    ) -> None:
        wrong = upload(client, reseller, model, speech, OTHER).json()
        assert [r["code"] for r in wrong["reasons"]] == ["transcript_mismatch"]
        assert wrong["loss_per_char"] > 3
        good = upload(client, reseller, model, speech, SENTENCE).json()
        assert good["status"] == "accepted"  # a wrong first copy does not block the right one
        again = upload(client, reseller, model, speech, SENTENCE).json()
        assert [r["code"] for r in again["reasons"]] == ["duplicate_audio"]
        junk = upload(client, reseller, model, b"not audio at all", SENTENCE).json()
        assert [r["code"] for r in junk["reasons"]] == ["undecodable"]
        missing = upload(client, reseller, model, synth_speech("hello there stella"), None).json()
        assert [r["code"] for r in missing["reasons"]] == ["no_transcript"]
        # Three decodable pairs sealed twice each, plus the one without a transcript; no junk.
        assert len(blob_files(settings)) == 8
        report = client.get(f"{URL}/{model['id']}/data", headers=reseller.headers).json()["report"]
        assert (report["files"], report["accepted"]["files"], report["rejected"]["files"]) == (
            5,
            1,
            4,
        )
        assert set(report["by_reason"]) == {
            "transcript_mismatch",
            "duplicate_audio",
            "undecodable",
            "no_transcript",
        }
        rejected = client.get(
            f"{URL}/{model['id']}/data", params={"status": "rejected"}, headers=reseller.headers
        ).json()
        assert len(rejected["files"]) == 4

    def test_remove_deletes_the_sealed_objects(
        self,
        client: TestClient,
        settings: Settings,
        reseller: Reseller,
        model: dict[str, Any],
        speech: bytes,
    ) -> None:
        record = upload(client, reseller, model, speech, SENTENCE).json()
        url = f"{URL}/{model['id']}/data/{record['id']}"
        removed = client.delete(url, headers=reseller.headers)
        assert removed.status_code == 200, removed.text
        assert removed.json()["status"] == "removed"
        assert blob_files(settings) == []
        assert_error(client.delete(url, headers=reseller.headers), 409, "CONFLICT")
        report = client.get(f"{URL}/{model['id']}/data", headers=reseller.headers).json()["report"]
        assert report["files"] == 0

    def test_a_kek_rotation_rewraps_the_model_key(
        self,
        client: TestClient,
        db: Database,
        settings: Settings,
        reseller: Reseller,
        model: dict[str, Any],
        speech: bytes,
    ) -> None:
        record = upload(client, reseller, model, speech, SENTENCE).json()
        store = open_sample_store(settings)
        new_version = store.keys.rotate()
        with db.session() as session:
            assert rewrap_batch(session, store.keys, limit=100) >= 1
        fresh = open_sample_store(settings)  # no cached unwrapped key
        with db.session() as session:
            row = session.get(CustomModel, uuid.UUID(model["id"]))
            stored = session.get(CustomDataFile, uuid.UUID(record["id"]))
            assert row is not None
            assert stored is not None
            assert row.data_kek_version == new_version
            assert data.read_transcript(session, fresh, row, stored) == SENTENCE


class TestRefused:
    def test_another_resellers_model_is_a_404(
        self, client: TestClient, db: Database, model: dict[str, Any], speech: bytes
    ) -> None:
        other = make_reseller(db, "Other Co")
        response = upload(client, other, model, speech, SENTENCE)
        assert_error(response, 404, "NOT_FOUND")
        listing = client.get(f"{URL}/{model['id']}/data", headers=other.headers)
        assert_error(listing, 404, "NOT_FOUND")

    def test_an_archived_model_takes_no_data(
        self, client: TestClient, reseller: Reseller, model: dict[str, Any], speech: bytes
    ) -> None:
        client.post(f"{URL}/{model['id']}/archive", headers=reseller.headers)
        assert_error(upload(client, reseller, model, speech, SENTENCE), 409, "CONFLICT")

    @pytest.mark.parametrize(
        ("kind", "status"),
        [
            ("json", 415),
            ("no audio", 400),
            ("latin-1 file", 400),
            ("nul speaker", 400),
        ],
    )
    def test_bad_bodies_write_nothing(
        self,
        client: TestClient,
        db: Database,
        settings: Settings,
        reseller: Reseller,
        model: dict[str, Any],
        speech: bytes,
        kind: str,
        status: int,
    ) -> None:
        url = f"{URL}/{model['id']}/data"
        if kind == "json":
            response = client.post(url, json={"audio": "x"}, headers=reseller.headers)
        elif kind == "no audio":
            response = client.post(
                url,
                data={"transcript": SENTENCE},
                files={"x": ("x", b"x")},
                headers=reseller.headers,
            )
        elif kind == "latin-1 file":
            response = client.post(
                url,
                files={
                    "audio": ("a.wav", speech, "audio/wav"),
                    "transcript": ("a.txt", "caf\xe9".encode("latin-1"), "text/plain"),
                },
                headers=reseller.headers,
            )
        else:
            response = upload(client, reseller, model, speech, SENTENCE, speaker="a\x00b")
        assert response.status_code == status, response.text
        assert set(response.json()) >= {"err_code", "err_msg", "request_id"}
        assert blob_files(settings) == []
        with db.session() as session:
            assert session.scalars(select(CustomDataFile)).all() == []

    def test_staff_other_than_admin_cannot_upload(
        self, client: TestClient, db: Database, model: dict[str, Any], speech: bytes
    ) -> None:
        response = client.post(
            f"{URL}/{model['id']}/data",
            files={"audio": ("a.wav", speech, "audio/wav")},
            data={"transcript": SENTENCE},
            headers=make_staff_key(db, "auditor"),
        )
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")


def test_the_guard_limits_a_templated_route() -> None:
    rules = GuardRules(
        default_limit=10, limits={("POST", "/v1/governance/custom-models/{model_id}/data"): 99}
    )
    assert rules.limit_for("POST", f"/v1/governance/custom-models/{uuid.uuid4()}/data") == 99
    assert rules.limit_for("POST", "/v1/governance/custom-models/x/data/y") == 10
    assert rules.limit_for("POST", "/v1/governance/custom-models//data") == 10
    assert rules.limit_for("GET", f"/v1/governance/custom-models/{uuid.uuid4()}/data") == 10


def test_the_command_line_uploads_lists_and_removes(
    cli_env: None, settings: Settings, model: dict[str, Any], speech: bytes, tmp_path: Path
) -> None:
    runner = CliRunner()
    (tmp_path / "call.wav").write_bytes(speech)
    (tmp_path / "call.txt").write_text(SENTENCE)
    args = ["custom", "upload", model["id"], str(tmp_path / "call.wav")]
    uploaded = runner.invoke(
        cli_app, [*args, "--transcript-file", str(tmp_path / "call.txt"), "--json"]
    )
    assert uploaded.exit_code == 0, uploaded.output
    record = json.loads(uploaded.stdout)
    assert (record["status"], record["name"]) == ("accepted", "call.wav")
    wrong = runner.invoke(cli_app, [*args, "--transcript", OTHER, "--json"])
    assert json.loads(wrong.stdout)["status"] == "rejected"
    both = runner.invoke(cli_app, [*args, "--transcript", "x", "--transcript-file", "y"])
    assert both.exit_code == 2
    listed = runner.invoke(cli_app, ["custom", "data", model["id"], "--json"])
    report = json.loads(listed.stdout)["report"]
    assert (report["accepted"]["files"], report["rejected"]["files"]) == (1, 1)
    removed = runner.invoke(cli_app, ["custom", "remove-data", model["id"], record["id"], "--json"])
    assert removed.exit_code == 0, removed.output
    assert json.loads(removed.stdout)["status"] == "removed"
    assert len(blob_files(settings)) == 2  # the rejected pair's objects stay until removed
