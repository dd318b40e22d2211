"""The request guard on a real app (SQLite and PostgreSQL): authentication before any body is
read, body limits, and text the databases cannot store refused with a 400, not a 500."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.kit.settings import Settings
from app.main import create_app
from app.samples.service import MAX_TRANSCRIPT_BYTES
from app.tables import AuditEntry, Organization
from tests.conftest import Database, Tenant, make_staff_key
from tests.kit.test_http import assert_error

ORGS = "/v1/governance/organizations"
MIB = 1024 * 1024


class CountingBody:
    """A streamed request body that counts how much of it the server pulled."""

    def __init__(self, chunks: int, size: int = 64 * 1024) -> None:
        self.chunks, self.size, self.pulled = chunks, size, 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield b" " * self.size


def organizations(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Organization)) or 0


class TestAuthenticationBeforeTheBody:
    @pytest.mark.parametrize("authorization", [None, "Token not-a-key", "Basic abc"])
    def test_no_valid_key_is_a_401_before_the_body_is_read(
        self, client: TestClient, authorization: str | None
    ) -> None:
        body = CountingBody(chunks=900)  # 57 MiB, announced
        headers = {"Content-Type": "application/json", "Content-Length": str(900 * 64 * 1024)}
        if authorization:
            headers["Authorization"] = authorization
        response = client.post(ORGS, content=body, headers=headers)
        assert_error(response, 401, "INVALID_AUTH")
        assert body.pulled <= 1  # at most what the transport sends before any answer

    def test_a_key_is_looked_up_once(
        self, client: TestClient, db: Database, admin_headers: dict[str, str]
    ) -> None:
        response = client.post(ORGS, json={"name": "Once", "plan": "growth"}, headers=admin_headers)
        assert response.status_code == 201, response.text
        assert organizations(db) == 1


class TestBodyLimits:
    def test_an_announced_body_over_the_default_limit_is_a_413_unread(
        self, client: TestClient, admin_headers: dict[str, str]
    ) -> None:
        body = CountingBody(chunks=32)  # 2 MiB against the 1 MiB default
        headers = {
            **admin_headers,
            "Content-Type": "application/json",
            "Content-Length": str(2 * MIB),
        }
        response = client.post(ORGS, content=body, headers=headers)
        error = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert error["err_msg"] == f"Request body over {MIB} bytes."
        assert body.pulled <= 1

    def test_a_chunked_body_over_the_limit_is_a_413_and_writes_nothing(
        self, client: TestClient, db: Database, admin_headers: dict[str, str]
    ) -> None:
        body = CountingBody(chunks=32)  # no Content-Length: counted as it arrives
        headers = {**admin_headers, "Content-Type": "application/json"}
        response = client.post(ORGS, content=body, headers=headers)
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert organizations(db) == 0

    def test_a_route_with_its_own_limit_takes_a_larger_body(
        self, client: TestClient, admin_headers: dict[str, str]
    ) -> None:
        # The ledger takes up to 32 MiB; a 2 MiB batch gets past the guard to validation.
        events = [{"request_id": f"r{i}", "x": "y" * 200} for i in range(8000)]
        body = orjson.dumps({"events": events})
        assert len(body) > MIB
        response = client.post(
            "/v1/governance/ledger/events",
            content=body,
            headers={**admin_headers, "Content-Type": "application/json"},
        )
        assert_error(response, 400, "Bad Request")


class TestRouteLimits:
    """Routes with a limit of their own get it from the guard (they no longer count bytes)."""

    def test_an_invoice_csv_over_16_mib_is_a_413(self, client: TestClient, db: Database) -> None:
        body = b"invoice_id\n" + b"x" * (16 * MIB)
        response = client.post(
            "/v1/governance/billing/reconciliations?period=2026-01",
            content=body,
            headers={**make_staff_key(db, "billing"), "Content-Type": "text/csv"},
        )
        error = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert error["err_msg"] == f"Request body over {16 * MIB} bytes."

    def test_sample_intake_is_limited_by_the_sample_settings(
        self, db: Database, tmp_path: Path, admin_headers: dict[str, str]
    ) -> None:
        settings = Settings(
            env="test",
            data_dir=tmp_path / "var",
            database_url=db.url,
            bundled_models_dir=None,
            max_sample_bytes=1024,
        )
        limit = 1024 + MAX_TRANSCRIPT_BYTES + 65536
        with TestClient(create_app(settings)) as client:
            response = client.post(
                "/v1/governance/samples",
                files={"audio": ("a.wav", b"\0" * (limit + 1), "audio/wav")},
                data={"project_id": str(uuid.uuid4()), "request_id": "r"},
                headers=admin_headers,
            )
        error = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
        assert error["err_msg"] == f"Request body over {limit} bytes."


class TestUnstorableText:
    @pytest.mark.parametrize(
        ("name", "reason"),
        [
            ("a\u0000b", "a NUL character"),
            ("a\ud800b", "an unpaired UTF-16 surrogate"),
            ("\udc00", "an unpaired UTF-16 surrogate"),
        ],
    )
    def test_in_a_json_body_is_a_400_and_nothing_is_written(
        self,
        client: TestClient,
        db: Database,
        admin_headers: dict[str, str],
        name: str,
        reason: str,
    ) -> None:
        # json.dumps writes \\u0000 and lone surrogates as escapes, as a client library would.
        body = json.dumps({"name": name, "plan": "growth"}).encode()
        response = client.post(
            ORGS, content=body, headers={**admin_headers, "Content-Type": "application/json"}
        )
        error = assert_error(response, 400, "Bad Request")
        assert error["err_msg"] == f"The JSON body contains {reason}, which cannot be stored."
        assert organizations(db) == 0
        with db.session() as session:
            assert session.scalar(select(func.count()).select_from(AuditEntry)) == 1  # the key

    def test_a_paired_surrogate_and_an_escaped_backslash_are_fine(
        self, client: TestClient, db: Database, admin_headers: dict[str, str]
    ) -> None:
        for name in ("smile \U0001f600", "a\\u0000b"):  # the second is a literal backslash
            body = json.dumps({"name": name, "plan": "growth"}).encode()
            response = client.post(
                ORGS, content=body, headers={**admin_headers, "Content-Type": "application/json"}
            )
            assert response.status_code == 201, response.text
            assert response.json()["name"] == name
        assert organizations(db) == 2

    @pytest.mark.parametrize(
        "url",
        [
            "/v1/projects/{project}/requests/a%00b",
            "/v1/projects/{project}/usage?tag=a%00b",
            "/v1/projects/{project}/usage/breakdown?grouping=tags&tag=%00",
            "/v1/projects/{project}/requests?accessor=x%00",
        ],
    )
    def test_in_a_path_or_query_is_a_400(
        self, client: TestClient, tenant: Tenant, url: str
    ) -> None:
        response = client.get(url.format(project=tenant.project_id), headers=tenant.headers)
        error = assert_error(response, 400, "Bad Request")
        assert "a NUL character, which cannot be stored" in str(error["err_msg"])
