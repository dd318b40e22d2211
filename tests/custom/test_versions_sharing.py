"""A custom model's confirmed data set, vocabulary, versions (publish, roll back, reject) and
sharing (default and optional models, permissions, revocation now or on schedule), with the
bad inputs of each — on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.custom import serving, versions
from app.kit.settings import Settings
from app.samples.runtime import open_sample_store
from app.tables import CustomModel
from app.tenancy import service as tenancy
from tests.conftest import Database, Tenant, make_tenant
from tests.custom.conftest import Reseller, bundled_settings, make_reseller
from tests.engine.conftest import make_package
from tests.kit.test_http import assert_error
from tests.listen.conftest import NO_SUCH_MODEL
from tests.speech import synth_speech

URL = "/v1/governance/custom-models"
SENTENCE = "please call stella and ask her to bring these things"


@pytest.fixture(scope="module")
def speech() -> bytes:
    return synth_speech(SENTENCE)


@pytest.fixture
def settings(db: Database, tmp_path: Path) -> Settings:
    return bundled_settings(db, tmp_path, custom_min_hours=0.0005)


def upload(
    client: TestClient,
    reseller: Reseller,
    model: dict[str, Any],
    audio: bytes,
    transcript: str = SENTENCE,
) -> Any:
    return client.post(
        f"{URL}/{model['id']}/data",
        files={"audio": ("call.wav", audio, "audio/wav")},
        data={"transcript": transcript},
        headers=reseller.headers,
    )


def confirm(client: TestClient, reseller: Reseller, model: dict[str, Any]) -> Any:
    return client.post(f"{URL}/{model['id']}/data/confirm", headers=reseller.headers)


@pytest.fixture
def confirmed(
    client: TestClient, reseller: Reseller, model: dict[str, Any], speech: bytes
) -> dict[str, Any]:
    assert upload(client, reseller, model, speech).json()["status"] == "accepted"
    response = confirm(client, reseller, model)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def register(db: Database, settings: Settings, tmp_path: Path, model_id: str, number: int) -> str:
    """A version of the model as its training job registers it (a tiny package)."""
    package = make_package(
        tmp_path / f"built-{number}",
        name="clinic",
        domain="clinic",
        version=f"2026-12-08.{number}",
        aliases=[],
        tags=["fine-tuned", "custom"],
    )
    store = open_sample_store(settings)
    with db.session() as session:
        model = session.get(CustomModel, uuid.UUID(model_id))
        assert model is not None
        version = versions.register_version(
            session,
            store,
            model,
            number=number,
            package=package,
            test={"wer_custom": 0.1, "wer_standard": 0.3},
            report={"test.html": b"<html>report</html>", "test.json": b"{}"},
            settings={"minutes": 1},
            vocabulary=[],
            job_id=None,
            actor="test",
        )
        return version.package_uuid


class TestDataSet:
    def test_confirm_freezes_and_reopen_unfreezes(
        self,
        client: TestClient,
        reseller: Reseller,
        model: dict[str, Any],
        confirmed: dict[str, Any],
        speech: bytes,
    ) -> None:
        assert confirmed["status"] == "ready_to_train"
        assert confirmed["data_set"]["files"] == 1
        assert len(confirmed["data_set"]["hash"]) == 64
        frozen = upload(client, reseller, model, synth_speech("another sentence"))
        assert "reopen" in assert_error(frozen, 409, "CONFLICT")["err_msg"]  # type: ignore[operator]
        assert_error(confirm(client, reseller, model), 409, "CONFLICT")
        reopened = client.post(f"{URL}/{model['id']}/data/reopen", headers=reseller.headers)
        assert (reopened.json()["status"], reopened.json()["data_set"]) == ("collecting", None)
        other = "the clinic opens at nine on monday morning"
        added = upload(client, reseller, model, synth_speech(other), other).json()
        assert added["status"] == "accepted", added
        again = confirm(client, reseller, model).json()
        assert again["data_set"]["files"] == 2
        assert again["data_set"]["hash"] != confirmed["data_set"]["hash"]

    def test_nothing_to_confirm(
        self, client: TestClient, reseller: Reseller, model: dict[str, Any]
    ) -> None:
        assert_error(confirm(client, reseller, model), 409, "CONFLICT")

    def test_training_needs_a_confirmed_set(
        self, client: TestClient, reseller: Reseller, model: dict[str, Any]
    ) -> None:
        response = client.post(f"{URL}/{model['id']}/train", headers=reseller.headers)
        assert "Confirm" in assert_error(response, 409, "CONFLICT")["err_msg"]  # type: ignore[operator]


class TestMinimumHours:
    @pytest.fixture
    def settings(self, db: Database, tmp_path: Path) -> Settings:
        return bundled_settings(db, tmp_path)  # the default: 10 hours

    def test_training_below_the_minimum_says_what_is_missing(
        self,
        client: TestClient,
        reseller: Reseller,
        model: dict[str, Any],
        confirmed: dict[str, Any],
    ) -> None:
        response = client.post(f"{URL}/{model['id']}/train", headers=reseller.headers)
        message = str(assert_error(response, 409, "CONFLICT")["err_msg"])
        assert "at least 10 (MIP_CUSTOM_MIN_HOURS)" in message
        assert "hours are missing" in message
        assert client.get(f"{URL}/{model['id']}", headers=reseller.headers).json()["status"] == (
            "ready_to_train"
        )


class TestVocabulary:
    def test_put_and_get(
        self, client: TestClient, reseller: Reseller, model: dict[str, Any]
    ) -> None:
        terms = [
            {"term": "metformin", "sounds_like": ["met for min"], "weight": 2},
            {"term": "K8s", "sounds_like": ["kates"]},
        ]
        response = client.put(
            f"{URL}/{model['id']}/vocabulary", json={"terms": terms}, headers=reseller.headers
        )
        assert response.status_code == 200, response.text
        got = client.get(f"{URL}/{model['id']}/vocabulary", headers=reseller.headers).json()
        assert [(t["term"], t["sounds_like"], t["weight"]) for t in got["terms"]] == [
            ("metformin", ["met for min"], 2.0),
            ("K8s", ["kates"], 1.0),
        ]

    @pytest.mark.parametrize(
        "terms",
        [
            [{"term": "COVID-19"}],  # digits the model cannot say, and no sounds-like
            [{"term": "stent"}, {"term": "Stent"}],  # the same term twice
            [{"term": "stent", "weight": 0}],
            [{"term": "stent", "weight": 11}],
            [{"term": "st\u0000ent"}],
            [{"term": "stent", "colour": "red"}],
            [{"term": f"term{chr(97 + i % 26)}{i}"} for i in range(1001)],
        ],
    )
    def test_bad_vocabularies_are_400(
        self,
        client: TestClient,
        reseller: Reseller,
        model: dict[str, Any],
        terms: list[dict[str, Any]],
    ) -> None:
        response = client.put(
            f"{URL}/{model['id']}/vocabulary", json={"terms": terms}, headers=reseller.headers
        )
        assert_error(response, 400, "Bad Request")
        got = client.get(f"{URL}/{model['id']}/vocabulary", headers=reseller.headers).json()
        assert got["terms"] == []


class TestVersions:
    def test_publish_roll_back_and_reject(
        self,
        db: Database,
        settings: Settings,
        tmp_path: Path,
        client: TestClient,
        reseller: Reseller,
        model: dict[str, Any],
        confirmed: dict[str, Any],
    ) -> None:
        base, headers = f"{URL}/{model['id']}", reseller.headers
        first = register(db, settings, tmp_path, model["id"], 1)
        second = register(db, settings, tmp_path, model["id"], 2)
        listed = client.get(f"{base}/versions", headers=headers).json()["versions"]
        assert [(v["number"], v["status"]) for v in listed] == [(2, "candidate"), (1, "candidate")]
        assert listed[0]["data_hash"] == confirmed["data_set"]["hash"]
        report = client.get(f"{base}/versions/1/report", headers=headers)
        assert report.text == "<html>report</html>"

        one = client.post(f"{base}/versions/1/publish", headers=headers).json()
        models_dir = settings.effective_models_dir
        assert (models_dir / one["filename"]).is_file()
        two = client.post(f"{base}/versions/2/publish", headers=headers).json()
        assert (models_dir / two["filename"]).is_file()
        assert not (models_dir / one["filename"]).exists()
        assert client.get(base, headers=headers).json()["published_version"] == 2
        # Roll back: the retired version is published again.
        back = client.post(f"{base}/versions/1/publish", headers=headers).json()
        assert (back["status"], back["package_uuid"]) == ("published", first)
        statuses = {
            v["number"]: v["status"]
            for v in client.get(f"{base}/versions", headers=headers).json()["versions"]
        }
        assert statuses == {1: "published", 2: "retired"}
        assert not (models_dir / two["filename"]).exists()
        assert second != first

        register(db, settings, tmp_path, model["id"], 3)
        rejected = client.post(f"{base}/versions/3/reject", headers=headers).json()
        assert rejected["status"] == "rejected"
        assert_error(client.post(f"{base}/versions/3/publish", headers=headers), 409, "CONFLICT")
        assert_error(client.post(f"{base}/versions/1/reject", headers=headers), 409, "CONFLICT")
        assert_error(client.get(f"{base}/versions/9", headers=headers), 404, "NOT_FOUND")
        # Archiving takes the served package out of the models directory.
        client.post(f"{base}/archive", headers=headers)
        assert not (models_dir / back["filename"]).exists()


class TestSharing:
    @pytest.fixture
    def published(
        self,
        db: Database,
        settings: Settings,
        tmp_path: Path,
        client: TestClient,
        reseller: Reseller,
        model: dict[str, Any],
        confirmed: dict[str, Any],
    ) -> str:
        package = register(db, settings, tmp_path, model["id"], 1)
        response = client.post(f"{URL}/{model['id']}/versions/1/publish", headers=reseller.headers)
        assert response.status_code == 200, response.text
        return package

    @pytest.fixture
    def org(self, db: Database, reseller: Reseller) -> Tenant:
        return make_tenant(db, name="Clinic", scopes=["member"], reseller_id=reseller.id)

    def share(
        self, client: TestClient, reseller: Reseller, model: dict[str, Any], **body: Any
    ) -> Any:
        return client.post(f"{URL}/{model['id']}/assignments", json=body, headers=reseller.headers)

    def test_permissions_decide_what_the_organization_sees_and_uses(
        self,
        client: TestClient,
        reseller: Reseller,
        model: dict[str, Any],
        published: str,
        org: Tenant,
        speech: bytes,
    ) -> None:
        listen = {**org.headers, "Content-Type": "audio/wav"}
        self.share(
            client, reseller, model, organization_ids=[str(org.org_id)], permissions=["view"]
        )
        listed = client.get("/v1/models", headers=org.headers).json()["stt"]
        assert published in {m["uuid"] for m in listed}
        assert client.get(f"/v1/models/{published}", headers=org.headers).status_code == 200
        refused = client.post("/v1/listen?model=clinic", content=speech, headers=listen)
        assert assert_error(refused, 400, "Bad Request")["err_msg"] == NO_SUCH_MODEL
        # Not the default: a request naming no model gets the standard model.
        standard = client.post("/v1/listen", content=speech, headers=listen).json()
        assert standard["metadata"]["models"] != [published]

        self.share(
            client,
            reseller,
            model,
            organization_ids=[str(org.org_id)],
            permissions=["use"],
            mode="optional",
        )
        assert published not in {
            m["uuid"] for m in client.get("/v1/models", headers=org.headers).json()["stt"]
        }
        served = client.post("/v1/listen?model=clinic", content=speech, headers=listen).json()
        assert served["metadata"]["models"] == [published]
        by_id = client.post(f"/v1/listen?model={model['id']}", content=speech, headers=listen)
        assert by_id.json()["metadata"]["models"] == [published]

    def test_scheduled_revocation_ends_on_time(
        self,
        db: Database,
        client: TestClient,
        reseller: Reseller,
        model: dict[str, Any],
        published: str,
        org: Tenant,
    ) -> None:
        at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        response = self.share(
            client,
            reseller,
            model,
            organization_ids=[str(org.org_id)],
            mode="default",
            revoke_at=at.isoformat(),
        )
        assert response.json()["assignments"][0]["active"] is True
        with db.session() as session:
            assert serving.choose(session, org.org_id, requested=None) is not None
            later = at + dt.timedelta(seconds=1)
            assert serving.choose(session, org.org_id, requested=None, now=later) is None
        # Revoking on a schedule, then now.
        soon = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).isoformat()
        body = {"organization_ids": [str(org.org_id)], "at": soon}
        scheduled = client.post(
            f"{URL}/{model['id']}/assignments/revoke", json=body, headers=reseller.headers
        )
        assert scheduled.json()["assignments"][0]["revoke_at"].startswith(soon[:16])
        body = {"organization_ids": [str(org.org_id)]}
        now = client.post(
            f"{URL}/{model['id']}/assignments/revoke", json=body, headers=reseller.headers
        )
        assert now.status_code == 200
        assert client.get(f"{URL}/{model['id']}/assignments", headers=reseller.headers).json() == {
            "assignments": []
        }
        again = client.post(
            f"{URL}/{model['id']}/assignments/revoke", json=body, headers=reseller.headers
        )
        assert_error(again, 404, "NOT_FOUND")

    def test_bad_assignments(
        self,
        db: Database,
        client: TestClient,
        reseller: Reseller,
        model: dict[str, Any],
        published: str,
        org: Tenant,
    ) -> None:
        stranger = make_reseller(db, name="Other reseller")
        foreign = make_tenant(db, name="Foreign", reseller_id=stranger.id)
        unmanaged = make_tenant(db, name="Direct")
        for org_id in (foreign.org_id, unmanaged.org_id, uuid.uuid4()):
            response = self.share(client, reseller, model, organization_ids=[str(org_id)])
            assert_error(response, 400, "Bad Request")
        past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
        bodies: list[dict[str, Any]] = [
            {"organization_ids": [str(org.org_id)], "revoke_at": past},
            {"organization_ids": [str(org.org_id)], "revoke_at": "2030-01-01T00:00:00"},
            {"organization_ids": [str(org.org_id)], "permissions": ["admin"]},
            {"organization_ids": [str(org.org_id)], "permissions": []},
            {"organization_ids": []},
        ]
        for body in bodies:
            response = self.share(client, reseller, model, **body)
            assert_error(response, 400, "Bad Request")
        assert client.get(f"{URL}/{model['id']}/assignments", headers=reseller.headers).json() == {
            "assignments": []
        }
        # One default model per organization.
        self.share(client, reseller, model, organization_ids=[str(org.org_id)], mode="default")
        second = client.post(
            URL,
            json={"name": "second", "language": "en", "domain": "medical"},
            headers=reseller.headers,
        ).json()
        response = self.share(
            client, reseller, second, organization_ids=[str(org.org_id)], mode="default"
        )
        assert_error(response, 409, "CONFLICT")
        # Another reseller's key: the model does not exist for it; a key without the scope: 403.
        response = self.share(client, stranger, model, organization_ids=[str(org.org_id)])
        assert_error(response, 404, "NOT_FOUND")
        response = client.get(f"{URL}/{model['id']}/assignments", headers=stranger.headers)
        assert_error(response, 404, "NOT_FOUND")

    def test_a_key_without_the_assign_scope_is_403(
        self,
        db: Database,
        client: TestClient,
        reseller: Reseller,
        model: dict[str, Any],
        org: Tenant,
    ) -> None:
        with db.session() as session:
            _key, secret = tenancy.create_reseller_key(
                session,
                reseller_id=uuid.UUID(reseller.id),
                actor="test",
                scopes=["custom_models:read", "custom_models:write"],
            )
        response = client.post(
            f"{URL}/{model['id']}/assignments",
            json={"organization_ids": [str(org.org_id)]},
            headers={"Authorization": f"Token {secret}"},
        )
        assert "custom_models:assign" in str(
            assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")["err_msg"]
        )
