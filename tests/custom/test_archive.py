"""Archives of training pairs over HTTP and the CLI: pairs taken, unusable entries reported,
unreadable archives refused whole with nothing written (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import app as cli_app
from app.kit.settings import Settings
from app.tables import AuditEntry, CustomDataFile
from tests.conftest import Database
from tests.custom.conftest import Reseller, blob_files, bundled_settings, make_reseller
from tests.kit.test_http import assert_error
from tests.speech import synth_speech

URL = "/v1/governance/custom-models"
FIRST = "please call stella and ask her to bring these things"
SECOND = "the clinic opens at nine on monday morning"
LIMIT = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def clips() -> dict[str, bytes]:
    return {FIRST: synth_speech(FIRST), SECOND: synth_speech(SECOND, voice="en-gb")}


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return bundled_settings(db, tmp_path, custom_max_archive_bytes=LIMIT)


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def tar_gz(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def send(
    client: TestClient, reseller: Reseller, model: dict[str, Any], body: bytes, media: str
) -> Any:
    return client.post(
        f"{URL}/{model['id']}/data/archive",
        content=body,
        headers={**reseller.headers, "Content-Type": media},
    )


def stored(db: Database) -> list[CustomDataFile]:
    with db.session() as session:
        rows = session.scalars(select(CustomDataFile).order_by(CustomDataFile.name)).all()
        for row in rows:
            session.expunge(row)
        return list(rows)


class TestArchive:
    def test_pairs_by_name_with_problems_reported(
        self,
        client: TestClient,
        db: Database,
        settings: Settings,
        reseller: Reseller,
        model: dict[str, Any],
        clips: dict[str, bytes],
    ) -> None:
        body = zipped(
            {
                "calls/a.wav": clips[FIRST],
                "calls/a.txt": FIRST.encode(),
                "calls/b.wav": clips[SECOND],
                "calls/b.txt": FIRST.encode(),  # the wrong transcript
                "calls/orphan.wav": clips[SECOND],
                "../escape.txt": b"outside",
                "big.wav": bytes(5 * 1024 * 1024),  # 5 MB of zeros in a few KB: a bomb entry
                "big.txt": b"nothing",
            }
        )
        assert len(body) < LIMIT
        response = send(client, reseller, model, body, "application/zip")
        assert response.status_code == 201, response.text
        result = response.json()
        assert (result["format"], result["mode"]) == ("zip", "names")
        by_name = {f["name"]: f for f in result["files"]}
        assert set(by_name) == {"calls/a.wav", "calls/b.wav"}
        assert by_name["calls/a.wav"]["status"] == "accepted"
        assert [r["code"] for r in by_name["calls/b.wav"]["reasons"]] == ["transcript_mismatch"]
        codes = {p["name"]: p["code"] for p in result["problems"]}
        assert codes["calls/orphan.wav"] == "audio_without_transcript"
        assert codes["../escape.txt"] == "unsafe_path"
        assert codes["big.wav"] in {"entry_too_large", "unreadable_entry"}
        assert result["report"]["accepted"]["files"] == 1
        assert len(blob_files(settings)) == 4
        with db.session() as session:
            entry = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "custom_data.archive_uploaded")
            ).one()
            assert (entry.details["files"], entry.details["accepted"]) == (2, 1)

    def test_a_manifest_with_speakers_in_a_tar_gz(
        self,
        client: TestClient,
        db: Database,
        reseller: Reseller,
        model: dict[str, Any],
        clips: dict[str, bytes],
    ) -> None:
        manifest = f"audio,transcript,speaker\none.wav,{FIRST},ana\ntwo.wav,{SECOND},ben\n"
        body = tar_gz(
            {
                "manifest.csv": manifest.encode(),
                "one.wav": clips[FIRST],
                "two.wav": clips[SECOND],
            }
        )
        response = send(client, reseller, model, body, "application/gzip")
        assert response.status_code == 201, response.text
        result = response.json()
        assert (result["format"], result["mode"], result["problems"]) == (
            "tar.gz",
            "manifest",
            [],
        )
        assert {(f["name"], f["speaker"], f["status"]) for f in result["files"]} == {
            ("one.wav", "ana", "accepted"),
            ("two.wav", "ben", "accepted"),
        }
        assert [row.speaker for row in stored(db)] == ["ana", "ben"]

    @pytest.mark.parametrize(
        ("body", "media", "status"),
        [
            (b"not an archive at all", "application/zip", 400),
            (zipped({"a.wav": b"x", "a.txt": b"x"})[:-30], "application/zip", 400),
            (b"", "application/zip", 400),
            (b'{"audio": "x"}', "application/json", 415),
            (bytes(LIMIT + 1), "application/zip", 413),
        ],
        ids=["not-an-archive", "truncated", "empty", "json", "too-large"],
    )
    def test_unreadable_archives_write_nothing(
        self,
        client: TestClient,
        db: Database,
        settings: Settings,
        reseller: Reseller,
        model: dict[str, Any],
        body: bytes,
        media: str,
        status: int,
    ) -> None:
        response = send(client, reseller, model, body, media)
        assert response.status_code == status, response.text
        assert set(response.json()) >= {"err_code", "err_msg", "request_id"}
        assert stored(db) == []
        assert blob_files(settings) == []

    def test_another_resellers_model_is_a_404(
        self, client: TestClient, db: Database, model: dict[str, Any], clips: dict[str, bytes]
    ) -> None:
        other = make_reseller(db, "Other Co")
        body = zipped({"a.wav": clips[FIRST], "a.txt": FIRST.encode()})
        assert_error(send(client, other, model, body, "application/zip"), 404, "NOT_FOUND")


def test_the_command_line_uploads_an_archive(
    cli_env: None, model: dict[str, Any], clips: dict[str, bytes], tmp_path: Path
) -> None:
    path = tmp_path / "pairs.zip"
    path.write_bytes(zipped({"a.wav": clips[FIRST], "a.txt": FIRST.encode(), "b.txt": b"x"}))
    result = CliRunner().invoke(
        cli_app, ["custom", "upload-archive", model["id"], str(path), "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [f["status"] for f in out["files"]] == ["accepted"]
    assert [p["code"] for p in out["problems"]] == ["transcript_without_audio"]
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"junk")
    refused = CliRunner().invoke(cli_app, ["custom", "upload-archive", model["id"], str(junk)])
    assert refused.exit_code == 2
    assert "not_an_archive" in refused.stderr
