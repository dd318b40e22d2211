"""An organization contributes training data to a custom model shared with it for
``contribute``: sealed under the organization's data key, removed by its erasure (which also
unfreezes a confirmed set that held it) — on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.erasure import service as erasure
from app.kit.db import create_db_engine, make_sessionmaker
from app.kit.settings import Settings
from app.samples.runtime import open_sample_store
from tests.conftest import Database, Tenant, make_tenant
from tests.custom.conftest import Reseller, bundled_settings
from tests.kit.test_http import assert_error
from tests.speech import synth_speech

URL = "/v1/governance/custom-models"
SENTENCE = "please call stella and ask her to bring these things"


@pytest.fixture(scope="module")
def speech() -> bytes:
    return synth_speech(SENTENCE)


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return bundled_settings(db, tmp_path)


@pytest.fixture
def org(db: Database, reseller: Reseller) -> Tenant:
    return make_tenant(db, name="Clinic", scopes=["admin"], reseller_id=reseller.id)


def share(
    client: TestClient, reseller: Reseller, model: dict[str, Any], org: Tenant, *perms: str
) -> None:
    response = client.post(
        f"{URL}/{model['id']}/assignments",
        json={"organization_ids": [str(org.org_id)], "permissions": list(perms)},
        headers=reseller.headers,
    )
    assert response.status_code == 200, response.text


def contribute(client: TestClient, org: Tenant, model: dict[str, Any], audio: bytes) -> Any:
    return client.post(
        f"/v1/projects/{org.project_id}/custom-models/{model['id']}/data",
        files={"audio": ("mine.wav", audio, "audio/wav")},
        data={"transcript": SENTENCE, "speaker": "dr-jones"},
        headers=org.headers,
    )


class TestContributions:
    def test_sealed_under_the_organization_and_erased_with_it(
        self,
        db: Database,
        settings: Settings,
        client: TestClient,
        reseller: Reseller,
        model: dict[str, Any],
        org: Tenant,
        speech: bytes,
    ) -> None:
        share(client, reseller, model, org, "view", "contribute")
        shared = client.get(f"/v1/projects/{org.project_id}/custom-models", headers=org.headers)
        assert [(m["name"], m["permissions"], m["version"]) for m in shared.json()["models"]] == [
            ("clinic", ["view", "contribute"], None)
        ]
        response = contribute(client, org, model, speech)
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "accepted"
        blobs = settings.data_dir / "blobs" / "orgs" / str(org.org_id) / "custom"
        sealed = sorted(p for p in blobs.rglob("*") if p.is_file())
        assert len(sealed) == 2
        assert all(b"stella" not in p.read_bytes() for p in sealed)
        listed = client.get(f"{URL}/{model['id']}/data", headers=reseller.headers).json()
        assert [f["speaker"] for f in listed["files"]] == ["dr-jones"]
        confirmed = client.post(f"{URL}/{model['id']}/data/confirm", headers=reseller.headers)
        assert confirmed.json()["data_set"]["files"] == 1

        engine = create_db_engine(db.url)
        try:
            factory = make_sessionmaker(engine)
            with db.session() as session:
                request = erasure.request_erasure(
                    session, organization_id=org.org_id, project_id=None, actor="test"
                )
            done = erasure.run_erasure(
                factory, open_sample_store(settings), request.id, actor="test"
            )
        finally:
            engine.dispose()
        assert done.status == "done", done.reason
        assert not any(p.is_file() for p in blobs.rglob("*"))  # rglob of a gone folder: none
        after = client.get(f"{URL}/{model['id']}", headers=reseller.headers).json()
        assert (after["status"], after["data_set"]) == ("collecting", None)
        files = client.get(f"{URL}/{model['id']}/data", headers=reseller.headers).json()
        assert [f["status"] for f in files["files"]] == ["removed"]

    def test_who_may_contribute(
        self,
        db: Database,
        client: TestClient,
        reseller: Reseller,
        model: dict[str, Any],
        org: Tenant,
        speech: bytes,
    ) -> None:
        # Not shared: the model does not exist for the organization.
        assert_error(contribute(client, org, model, speech), 404, "NOT_FOUND")
        share(client, reseller, model, org, "view", "use")
        assert_error(contribute(client, org, model, speech), 404, "NOT_FOUND")
        share(client, reseller, model, org, "contribute")
        member = make_tenant(db, name="Member", scopes=["member"], reseller_id=reseller.id)
        share(client, reseller, model, member, "contribute")
        response = contribute(client, member, model, speech)
        assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")
        # Another organization's project id with this key: 404, as any foreign id.
        response = client.post(
            f"/v1/projects/{member.project_id}/custom-models/{model['id']}/data",
            files={"audio": ("mine.wav", speech, "audio/wav")},
            data={"transcript": SENTENCE},
            headers=org.headers,
        )
        assert_error(response, 404, "NOT_FOUND")
        assert contribute(client, org, model, speech).status_code == 201
