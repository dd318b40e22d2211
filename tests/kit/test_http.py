"""Every response has a request id; every error is the Deepgram body with the right status."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from migrations.run import current_heads
from tests.conftest import Tenant


def assert_error(response: Any, status: int, code: str) -> dict[str, object]:
    """The Deepgram error body, with the request id of the response header."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"err_code", "err_msg", "request_id"}
    assert body["err_code"] == code
    assert body["request_id"] == response.headers["dg-request-id"]
    assert isinstance(body["err_msg"], str)
    assert body["err_msg"]
    return dict(body)


class TestHealth:
    def test_healthz_answers_with_request_id(self, client: TestClient) -> None:
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        assert len(response.headers["dg-request-id"]) == 36

    def test_readyz_checks_database_and_schema(self, client: TestClient) -> None:
        response = client.get("/readyz")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ready"
        assert body["schema_revision"] == current_heads()[0]

    def test_request_ids_differ(self, client: TestClient) -> None:
        first = client.get("/healthz").headers["dg-request-id"]
        second = client.get("/healthz").headers["dg-request-id"]
        assert first != second


class TestErrorBodies:
    def test_unknown_route_is_404_body(self, client: TestClient) -> None:
        assert_error(client.get("/v1/nope"), 404, "NOT_FOUND")

    def test_wrong_method_is_405_body(self, client: TestClient) -> None:
        assert_error(client.delete("/healthz"), 405, "METHOD_NOT_ALLOWED")

    def test_missing_credentials_is_401(self, client: TestClient) -> None:
        body = assert_error(
            client.post("/v1/governance/ledger/events", json={}), 401, "INVALID_AUTH"
        )
        assert "Authorization" in str(body["err_msg"])

    def test_validation_error_is_400_not_422(
        self, client: TestClient, admin_headers: dict[str, str]
    ) -> None:
        response = client.post(
            "/v1/governance/ledger/events", json={"events": "nope"}, headers=admin_headers
        )
        body = assert_error(response, 400, "Bad Request")
        assert "events" in str(body["err_msg"])

    def test_malformed_json_is_400(self, client: TestClient, admin_headers: dict[str, str]) -> None:
        response = client.post(
            "/v1/governance/ledger/events",
            content=b"{not json",
            headers={**admin_headers, "content-type": "application/json"},
        )
        assert_error(response, 400, "Bad Request")

    def test_crash_is_500_body_with_request_id(self, app: FastAPI) -> None:
        def boom() -> None:
            raise RuntimeError("unexpected")

        app.add_api_route("/test-only/boom", boom)
        with TestClient(app, raise_server_exceptions=False) as client:
            body = assert_error(client.get("/test-only/boom"), 500, "INTERNAL_SERVER_ERROR")
        assert "unexpected" not in str(body["err_msg"])  # internals are logged, not returned

    def test_openapi_lists_endpoints(self, client: TestClient, tenant: Tenant) -> None:
        paths = client.get("/openapi.json").json()["paths"]
        assert "/v1/governance/ledger/events" in paths
        assert "/readyz" in paths
