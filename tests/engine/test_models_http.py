"""``GET /v1/models`` and ``GET /v1/models/{model_id}``: test client and the official SDK."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from deepgram.core.api_error import ApiError
from deepgram.types.get_model_v1response_batch import GetModelV1ResponseBatch
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import Database, SdkFactory, Tenant, make_staff_key, wait_until
from tests.engine.conftest import make_package

GENERAL_OLD = "11111111-1111-4111-8111-111111111111"
GENERAL_NEW = "22222222-2222-4222-8222-222222222222"
MEDICAL = "33333333-3333-4333-8333-333333333333"
STREAMING = "44444444-4444-4444-8444-444444444444"
DIARIZER = "55555555-5555-4555-8555-555555555555"

GENERAL_NEW_READ = {
    "name": "general",
    "canonical_name": "ctcconv-general",
    "architecture": "ctcconv",
    "languages": ["en", "en-US"],
    "version": "2026-11-21.10",
    "uuid": GENERAL_NEW,
    "batch": True,
    "streaming": False,
    "formatted_output": False,
}
MEDICAL_READ = {
    "name": "medical",
    "canonical_name": "ctcconv-medical",
    "architecture": "ctcconv",
    "languages": ["en"],
    "version": "2026-12-01.1",
    "uuid": MEDICAL,
    "batch": True,
    "streaming": False,
    "formatted_output": True,
}
STREAMING_READ = {
    "name": "ctcstream-general",
    "canonical_name": "ctcstream-general",
    "architecture": "ctcstream",
    "languages": ["en"],
    "version": "2026-11-21.1",
    "uuid": STREAMING,
    "batch": False,
    "streaming": True,
    "formatted_output": False,
}
GENERAL_OLD_READ = {**GENERAL_NEW_READ, "version": "2026-11-21.9", "uuid": GENERAL_OLD}


@pytest.fixture
def installed_packages(models_dir: Path) -> list[Path]:
    general: dict[str, Any] = {"aliases": ["general", "base"], "languages": ["en", "en-US"]}
    return [
        make_package(models_dir, version="2026-11-21.9", uuid=GENERAL_OLD, **general),
        make_package(models_dir, version="2026-11-21.10", uuid=GENERAL_NEW, seed=1, **general),
        make_package(
            models_dir,
            name="ctcconv-medical",
            domain="medical",
            version="2026-12-01.1",
            aliases=["medical"],
            formatted=True,
            uuid=MEDICAL,
            style="legacy",
        ),
        make_package(
            models_dir,
            name="ctcstream-general",
            architecture="ctcstream",
            mode="streaming",
            aliases=[],
            uuid=STREAMING,
        ),
        make_package(
            models_dir,
            kind="diarizer",
            name="diarizer-general",
            architecture="diar",
            aliases=[],
            uuid=DIARIZER,
        ),
    ]


class TestListModels:
    def test_latest_versions_by_name(self, client: TestClient, tenant: Tenant) -> None:
        response = client.get("/v1/models", headers=tenant.headers)
        assert response.status_code == 200
        assert response.json() == {
            "stt": [GENERAL_NEW_READ, MEDICAL_READ, STREAMING_READ],
            "tts": [],
        }

    def test_include_outdated(self, client: TestClient, tenant: Tenant) -> None:
        response = client.get(
            "/v1/models", params={"include_outdated": "true"}, headers=tenant.headers
        )
        assert response.json()["stt"] == [
            GENERAL_NEW_READ,
            GENERAL_OLD_READ,
            MEDICAL_READ,
            STREAMING_READ,
        ]

    def test_any_staff_key_may_list(self, client: TestClient, db: Database) -> None:
        headers = make_staff_key(db, "auditor")
        response = client.get("/v1/models", headers=headers)
        assert response.status_code == 200
        assert [m["uuid"] for m in response.json()["stt"]] == [GENERAL_NEW, MEDICAL, STREAMING]

    def test_key_is_required(self, client: TestClient) -> None:
        for headers in ({}, {"Authorization": "Token " + "0" * 40}):
            response = client.get("/v1/models", headers=headers)
            assert response.status_code == 401
            body = response.json()
            assert body["err_code"] == "INVALID_AUTH"
            assert body["request_id"] == response.headers["dg-request-id"]

    def test_bad_query_parameter(self, client: TestClient, tenant: Tenant) -> None:
        response = client.get(
            "/v1/models", params={"include_outdated": "sometimes"}, headers=tenant.headers
        )
        assert response.status_code == 400
        assert "include_outdated" in response.json()["err_msg"]


class TestGetModel:
    def test_by_uuid(self, client: TestClient, tenant: Tenant) -> None:
        for uuid, expected in [(MEDICAL, MEDICAL_READ), (GENERAL_OLD, GENERAL_OLD_READ)]:
            response = client.get(f"/v1/models/{uuid}", headers=tenant.headers)
            assert response.status_code == 200
            assert response.json() == expected

    @pytest.mark.parametrize(
        "model_id", ["99999999-9999-4999-8999-999999999999", DIARIZER, "general"]
    )
    def test_unknown_is_404(self, client: TestClient, tenant: Tenant, model_id: str) -> None:
        response = client.get(f"/v1/models/{model_id}", headers=tenant.headers)
        assert response.status_code == 404
        assert response.json() == {
            "err_code": "NOT_FOUND",
            "err_msg": f"Model {model_id} not found.",
            "request_id": response.headers["dg-request-id"],
        }

    def test_key_is_required(self, client: TestClient) -> None:
        assert client.get(f"/v1/models/{MEDICAL}").status_code == 401


class TestServedDirectory:
    def test_a_package_dropped_in_is_listed_and_a_removed_one_disappears(
        self, client: TestClient, tenant: Tenant, models_dir: Path
    ) -> None:
        def listed() -> list[str]:
            response = client.get("/v1/models", headers=tenant.headers)
            return [m["canonical_name"] for m in response.json()["stt"]]

        path = make_package(models_dir, name="ctcconv-legal", domain="legal", aliases=["legal"])
        assert wait_until(lambda: "ctcconv-legal" in listed())
        path.unlink()
        assert wait_until(lambda: "ctcconv-legal" not in listed())

    def test_polling_stops_with_the_app(self, app: FastAPI) -> None:
        with TestClient(app):
            pollers = [t for t in threading.enumerate() if t.name == "model-directory"]
            assert any(t.is_alive() for t in pollers)
            assert app.state.models.get(GENERAL_NEW) is not None
        assert not any(t.is_alive() for t in pollers)


class TestOpenAPI:
    def test_documented_with_response_models(self, client: TestClient) -> None:
        doc = client.get("/openapi.json").json()
        listing = doc["paths"]["/v1/models"]["get"]
        one = doc["paths"]["/v1/models/{model_id}"]["get"]
        assert _schema_ref(listing) == "#/components/schemas/ModelsRead"
        assert _schema_ref(one) == "#/components/schemas/SttModelRead"
        assert {"401", "404"} <= set(one["responses"])
        stt = doc["components"]["schemas"]["SttModelRead"]["properties"]
        assert set(stt) == set(GENERAL_NEW_READ)


class TestModelsWithSDK:
    def test_list(self, sdk: SdkFactory, tenant: Tenant) -> None:
        models = sdk(tenant.key).manage.v1.models
        listed = models.list()
        assert listed.tts == []
        assert [_sdk_fields(m) for m in listed.stt] == [
            GENERAL_NEW_READ,
            MEDICAL_READ,
            STREAMING_READ,
        ]
        everything = models.list(include_outdated=True)
        assert [m.uuid_ for m in everything.stt] == [GENERAL_NEW, GENERAL_OLD, MEDICAL, STREAMING]

    def test_get(self, sdk: SdkFactory, tenant: Tenant) -> None:
        got = sdk(tenant.key).manage.v1.models.get(MEDICAL)
        assert isinstance(got, GetModelV1ResponseBatch)
        assert _sdk_fields(got) == MEDICAL_READ

    def test_errors(self, sdk: SdkFactory, tenant: Tenant) -> None:
        with pytest.raises(ApiError) as not_found:
            sdk(tenant.key).manage.v1.models.get("99999999-9999-4999-8999-999999999999")
        assert not_found.value.status_code == 404
        assert not_found.value.body["err_code"] == "NOT_FOUND"
        with pytest.raises(ApiError) as unauthorized:
            sdk("0" * 40).manage.v1.models.list()
        assert unauthorized.value.status_code == 401


def _sdk_fields(model: Any) -> dict[str, Any]:
    return {
        "name": model.name,
        "canonical_name": model.canonical_name,
        "architecture": model.architecture,
        "languages": model.languages,
        "version": model.version,
        "uuid": model.uuid_,
        "batch": model.batch,
        "streaming": model.streaming,
        "formatted_output": model.formatted_output,
    }


def _schema_ref(operation: dict[str, Any]) -> str:
    ref: str = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    return ref
