"""Resumable uploads (tus 1.0) of training archives: the official Python client (tuspy) resumes
after a connection is cut mid-PATCH; protocol errors answer as tus says (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import hashlib
import io
import socket
import uuid
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tusclient.client import TusClient

from app.custom import uploads
from app.kit.db import create_db_engine, make_sessionmaker
from app.kit.settings import Settings
from app.samples.runtime import open_sample_store
from app.tables import CustomDataFile, CustomModel
from app.worker import resume_upload_validations
from tests.conftest import Database, wait_until
from tests.custom.conftest import Reseller, bundled_settings, make_reseller
from tests.kit.test_http import assert_error
from tests.speech import synth_speech

URL = "/v1/governance/custom-models"
SENTENCES = (
    "please call stella and ask her to bring these things",
    "the clinic opens at nine on monday morning",
    "schedule a follow up visit next week",
)
TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zipped:
        for index, sentence in enumerate(SENTENCES):
            zipped.writestr(f"p{index}.wav", synth_speech(sentence))
            zipped.writestr(f"p{index}.txt", sentence)
    return buffer.getvalue()


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return bundled_settings(db, tmp_path, custom_max_archive_bytes=4 * 1024 * 1024)


def parts(settings: Settings) -> list[Path]:
    root = settings.data_dir / "blobs" / "custom"
    return [p for p in root.rglob("*") if p.is_file() and "uploads" in p.parts]


def cut_patch(url: str, headers: dict[str, str], offset: int, body: bytes) -> None:
    """A PATCH whose connection is closed after half of its body: nothing of it may stay."""
    target = urlsplit(url)
    lines = [
        f"PATCH {target.path} HTTP/1.1",
        f"Host: {target.netloc}",
        "Content-Type: application/offset+octet-stream",
        f"Content-Length: {len(body)}",
        f"Upload-Offset: {offset}",
        *(f"{name}: {value}" for name, value in headers.items()),
        "",
        "",
    ]
    with socket.create_connection((target.hostname, target.port)) as conn:
        conn.sendall("\r\n".join(lines).encode() + body[: len(body) // 2])


class TestTusClient:
    def test_tuspy_resumes_after_a_cut_connection(
        self,
        client: TestClient,
        live_server: str,
        db: Database,
        settings: Settings,
        reseller: Reseller,
        model: dict[str, Any],
        archive: bytes,
    ) -> None:
        tus = TusClient(f"{live_server}{URL}/{model['id']}/uploads", headers=reseller.headers)
        # tuspy leaves files it opened by path unclosed: hand it streams this test closes.
        with io.BytesIO(archive) as stream:
            first = tus.uploader(
                file_stream=stream, chunk_size=CHUNK, metadata={"filename": "pairs.zip"}
            )
            first.upload_chunk()  # type: ignore[no-untyped-call]
            first.upload_chunk()  # type: ignore[no-untyped-call]
        assert first.offset == 2 * CHUNK
        assert first.url is not None
        cut_patch(first.url, {**reseller.headers, **TUS}, first.offset, archive[2 * CHUNK :])
        # A new client (a restarted process) asks the server where to resume.
        with io.BytesIO(archive) as stream:
            resumed = tus.uploader(
                file_stream=stream, url=first.url, chunk_size=CHUNK, upload_checksum=True
            )
            assert resumed.offset == 2 * CHUNK
            resumed.upload()
        assert resumed.offset == len(archive)
        upload_path = urlsplit(first.url).path
        # The last PATCH was answered at once; the archive is read right after.
        assert wait_until(
            lambda: (
                client.get(upload_path, headers=reseller.headers).json()["status"] != "validating"
            )
        )
        state = client.get(upload_path, headers=reseller.headers).json()
        assert state["status"] == "complete", state
        assert (state["result"]["accepted"], state["result"]["problems"]) == (3, [])
        assert state["metadata"] == {"filename": "pairs.zip"}
        with db.session() as session:
            names = sorted(session.scalars(select(CustomDataFile.name)))
        assert names == ["p0.wav", "p1.wav", "p2.wav"]
        assert parts(settings) == []  # the sealed parts went once the archive was read


class TestProtocol:
    def create(
        self, client: TestClient, reseller: Reseller, model: dict[str, Any], length: int
    ) -> str:
        response = client.post(
            f"{URL}/{model['id']}/uploads",
            headers={**reseller.headers, **TUS, "Upload-Length": str(length)},
        )
        assert response.status_code == 201, response.text
        assert response.headers["Tus-Resumable"] == "1.0.0"
        return urlsplit(response.headers["Location"]).path

    def patch(
        self,
        client: TestClient,
        reseller: Reseller,
        url: str,
        body: bytes,
        offset: int,
        **headers: str,
    ) -> Any:
        sent = {
            **reseller.headers,
            **TUS,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(offset),
            **headers,
        }
        return client.patch(url, content=body, headers=sent)

    def test_options_head_patch_and_termination(
        self,
        client: TestClient,
        settings: Settings,
        reseller: Reseller,
        model: dict[str, Any],
        archive: bytes,
    ) -> None:
        options = client.options(f"{URL}/{model['id']}/uploads", headers=reseller.headers)
        assert options.status_code == 204
        assert options.headers["Tus-Version"] == "1.0.0"
        assert "creation" in options.headers["Tus-Extension"]
        assert options.headers["Tus-Max-Size"] == str(4 * 1024 * 1024)
        url = self.create(client, reseller, model, len(archive))
        assert self.patch(client, reseller, url, archive[:CHUNK], 0).status_code == 204
        head = client.head(url, headers={**reseller.headers, **TUS})
        assert (head.headers["Upload-Offset"], head.headers["Upload-Length"]) == (
            str(CHUNK),
            str(len(archive)),
        )
        assert head.headers["Cache-Control"] == "no-store"
        assert len(parts(settings)) == 1
        for path in parts(settings):
            assert path.read_bytes().startswith(b"MIPE")
        gone = client.delete(url, headers={**reseller.headers, **TUS})
        assert gone.status_code == 204
        assert parts(settings) == []
        assert client.head(url, headers={**reseller.headers, **TUS}).status_code == 404

    def test_protocol_errors(
        self, client: TestClient, reseller: Reseller, model: dict[str, Any], archive: bytes
    ) -> None:
        url = self.create(client, reseller, model, len(archive))
        wrong_offset = self.patch(client, reseller, url, archive[:10], 5)
        assert_error(wrong_offset, 409, "CONFLICT")
        no_version = client.patch(
            url,
            content=archive[:10],
            headers={
                **reseller.headers,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
            },
        )
        assert_error(no_version, 412, "PRECONDITION_FAILED")
        wrong_type = self.patch(
            client, reseller, url, archive[:10], 0, **{"Content-Type": "application/json"}
        )
        assert wrong_type.status_code == 415
        bad = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
        mismatch = self.patch(
            client, reseller, url, archive[:10], 0, **{"Upload-Checksum": f"sha1 {bad}"}
        )
        assert_error(mismatch, 460, "CHECKSUM_MISMATCH")
        good = base64.b64encode(hashlib.sha1(archive[:10]).digest()).decode()
        matched = self.patch(
            client, reseller, url, archive[:10], 0, **{"Upload-Checksum": f"sha1 {good}"}
        )
        assert matched.headers["Upload-Offset"] == "10"
        past_end = self.patch(client, reseller, url, archive, 10)
        assert_error(past_end, 400, "Bad Request")
        for length in ("-1", "abc", "1e3", str(4 * 1024 * 1024 + 1)):
            created = client.post(
                f"{URL}/{model['id']}/uploads",
                headers={**reseller.headers, **TUS, "Upload-Length": length},
            )
            assert created.status_code in {400, 413}, (length, created.text)

    def test_a_junk_upload_fails_with_its_reason(
        self, client: TestClient, reseller: Reseller, model: dict[str, Any]
    ) -> None:
        url = self.create(client, reseller, model, 100)
        assert self.patch(client, reseller, url, b"x" * 100, 0).status_code == 204
        state = client.get(url, headers=reseller.headers).json()
        assert state["status"] == "failed"
        assert "not_an_archive" in state["result"]["error"]
        again = self.patch(client, reseller, url, b"", 100)
        assert_error(again, 409, "CONFLICT")

    def test_another_reseller_sees_no_upload(
        self, client: TestClient, db: Database, reseller: Reseller, model: dict[str, Any]
    ) -> None:
        url = self.create(client, reseller, model, 100)
        other = make_reseller(db, "Other Co")
        assert client.head(url, headers={**other.headers, **TUS}).status_code == 404
        assert_error(client.get(url, headers=other.headers), 404, "NOT_FOUND")


class TestValidationAfterAStop:
    def test_the_worker_reads_an_upload_its_server_left_unread(
        self,
        db: Database,
        settings: Settings,
        client: TestClient,
        reseller: Reseller,
        model: dict[str, Any],
        archive: bytes,
    ) -> None:
        """A server that stopped between the last PATCH and reading the archive: the model
        shows ``validating`` and ``mip worker`` reads the archive later."""
        with db.session() as session:
            row = session.get(CustomModel, uuid.UUID(model["id"]))
            assert row is not None
            store = open_sample_store(settings)
            upload = uploads.create_upload(
                session,
                row,
                length=len(archive),
                max_length=len(archive),
                metadata={},
                actor="test",
            )
            uploads.append(
                session, store, row, upload, offset=0, chunk=archive, checksum=None, actor="test"
            )
            upload_id = upload.id
        state = client.get(f"{URL}/{model['id']}/uploads/{upload_id}", headers=reseller.headers)
        assert state.json()["status"] == "validating"
        # Not confirmed while an upload is being read: it would freeze a set still changing.
        early = client.post(f"{URL}/{model['id']}/data/confirm", headers=reseller.headers)
        assert "still being read" in str(assert_error(early, 409, "CONFLICT")["err_msg"])
        assert client.get(f"{URL}/{model['id']}", headers=reseller.headers).json()["status"] == (
            "validating"
        )
        engine = create_db_engine(db.url)
        try:
            factory = make_sessionmaker(engine)
            assert resume_upload_validations(factory, store, settings, stale_seconds=60) == 0
            assert resume_upload_validations(factory, store, settings, stale_seconds=0) == 1
        finally:
            engine.dispose()
        state = client.get(f"{URL}/{model['id']}/uploads/{upload_id}", headers=reseller.headers)
        assert (state.json()["status"], state.json()["result"]["accepted"]) == ("complete", 3)
        assert client.get(f"{URL}/{model['id']}", headers=reseller.headers).json()["status"] == (
            "collecting"
        )
        assert parts(settings) == []
