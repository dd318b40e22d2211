"""POST/GET/PATCH/DELETE /v1/governance/samples on both blob backends and both databases."""

from __future__ import annotations

import uuid

import orjson
from sqlalchemy import select

from app.tables import AuditEntry, LedgerEntry, Sample
from tests.conftest import make_staff_key, make_tenant
from tests.kit.test_http import assert_error
from tests.samples.conftest import SENTENCE, Service, transcript_of


class TestStoreAndRead:
    def test_kept_sample_reads_back_exactly_and_reads_are_audited(
        self, any_service: Service, speech: bytes
    ) -> None:
        body = any_service.keep("req-1", speech, attributes={"accent": "us", "sex": "female"})
        assert body["audio_format"] == "WAV"
        assert body["duration_seconds"] > 1.0
        assert body["attribute_sources"]["snr_db"] == "measured"
        assert body["attributes"]["snr_db"] > 20  # clean synthetic speech
        assert body["attributes"]["accent"] == "us"
        assert body["attribute_sources"]["accent"] == "client"
        dataops = make_staff_key(any_service.db, "dataops")
        audio = any_service.client.get(
            f"/v1/governance/samples/{body['id']}/audio", headers=dataops
        )
        assert audio.status_code == 200
        assert audio.content == speech
        transcript = any_service.client.get(
            f"/v1/governance/samples/{body['id']}/transcript", headers=dataops
        )
        assert transcript.content == transcript_of("req-1")
        with any_service.db.session() as session:
            entry = session.scalars(
                select(LedgerEntry).where(LedgerEntry.request_id == "req-1")
            ).one()
            assert entry.sample_selected
            assert entry.sample_kept
            reads = session.scalars(
                select(AuditEntry).where(AuditEntry.action.like("sample.%_read"))
            ).all()
        assert [r.action for r in reads] == ["sample.audio_read", "sample.transcript_read"]
        assert all(r.actor.startswith("staff:dataops:") for r in reads)
        assert all(r.target_id == body["id"] for r in reads)
        # Two objects, and neither holds the plaintext.
        assert any_service.object_count() == 2
        for info in any_service.store.blobs.list(""):
            stored = b"".join(any_service.store.blobs.get(info.key))
            assert speech[1000:1064] not in stored
            assert SENTENCE.encode() not in stored


class TestRefusals:
    def test_opted_out_request_is_refused_and_nothing_is_written(
        self, any_service: Service, speech: bytes
    ) -> None:
        for spelling in ("true", "TRUE", "1"):
            request_id = f"out-{spelling}"
            any_service.record(request_id, opt_out=spelling)
            response = any_service.post_sample(request_id, speech)
            body = assert_error(response, 409, "CONFLICT")
            assert "opted out" in str(body["err_msg"])
        assert any_service.object_count() == 0
        with any_service.db.session() as session:
            assert session.scalars(select(Sample)).all() == []

    def test_contract_opt_out_is_refused(self, any_service: Service, speech: bytes) -> None:
        opted_out = make_tenant(
            any_service.db,
            plan="enterprise",
            contract_rates={"standard": 4000},
            contract_opt_out=True,
            name="Contract",
        )
        any_service.record("c-1", tenant=opted_out, opt_out="false")
        response = any_service.post_sample("c-1", speech, tenant=opted_out)
        assert "source: contract" in str(assert_error(response, 409, "CONFLICT")["err_msg"])
        assert any_service.object_count() == 0

    def test_failed_unselected_unknown_and_duplicate(self, service: Service, speech: bytes) -> None:
        service.record("failed", status=500)
        assert_error(service.post_sample("failed", speech), 409, "CONFLICT")
        assert_error(service.post_sample("never-recorded", speech), 404, "NOT_FOUND")
        response = service.client.put(
            "/v1/governance/sampling-rates",
            json={"organization_id": str(service.tenant.org_id), "rate": 0.0},
            headers=service.admin,
        )
        assert response.status_code == 200, response.text
        service.record("unselected")
        body = assert_error(service.post_sample("unselected", speech), 409, "CONFLICT")
        assert "not selected" in str(body["err_msg"])
        assert service.object_count() == 0


class TestBadInput:
    def test_malformed_requests_are_4xx_and_write_nothing(
        self, service: Service, speech: bytes
    ) -> None:
        service.record("bad")
        url = "/v1/governance/samples"
        assert_error(
            service.client.post(url, json={"request_id": "bad"}, headers=service.admin),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        )
        missing = service.client.post(
            url,
            data={"project_id": str(service.tenant.project_id), "request_id": "bad"},
            files={"transcript": ("t.json", b"{}", "application/json")},
            headers=service.admin,
        )
        assert "audio" in str(assert_error(missing, 400, "Bad Request")["err_msg"])
        not_uuid = service.client.post(
            url,
            data={"project_id": "nope", "request_id": "bad"},
            files={"audio": ("a.wav", speech, "audio/wav")},
            headers=service.admin,
        )
        assert_error(not_uuid, 400, "Bad Request")
        assert_error(service.post_sample("bad", b"RIFF garbage" * 10), 400, "Bad Request")
        assert_error(service.post_sample("bad", speech, transcript=b"not json"), 400, "Bad Request")
        assert_error(service.post_sample("bad", speech, transcript=b"[1, 2]"), 400, "Bad Request")
        wrong_vocab = service.post_sample("bad", speech, attributes={"sex": "robot"})
        assert "vocabulary" in str(assert_error(wrong_vocab, 400, "Bad Request")["err_msg"])
        unknown = service.post_sample("bad", speech, attributes={"shoe_size": "9"})
        assert_error(unknown, 400, "Bad Request")
        assert service.object_count() == 0
        # After all that, the request can still be kept once.
        assert service.post_sample("bad", speech).status_code == 201

    def test_oversized_audio_is_413(self, db: object, service: Service, speech: bytes) -> None:
        service.record("big")
        huge = speech + b"\0" * (service.store.max_bytes + 1)
        assert_error(service.post_sample("big", huge), 413, "PAYLOAD_TOO_LARGE")
        assert service.object_count() == 0

    def test_openapi_documents_the_form_and_its_refusals(self, service: Service) -> None:
        # The route parses its multipart body itself, so FastAPI documented neither the form
        # nor the 415 and 413 above (found by tests/test_schemathesis.py).
        post = service.client.get("/openapi.json").json()["paths"]["/v1/governance/samples"]
        form = post["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert set(form["required"]) == {"project_id", "request_id", "audio", "transcript"}
        assert set(form["properties"]) == {*form["required"], "attributes"}
        assert {"408", "413", "415"} <= set(post["post"]["responses"])


class TestAccess:
    def test_roles_for_intake_and_content(self, service: Service, speech: bytes) -> None:
        sample = service.keep("r-1", speech)
        service.record("r-2")
        for role in ("billing", "dataops", "auditor"):
            response = service.post_sample("r-2", speech, headers=make_staff_key(service.db, role))
            assert_error(response, 403, "INSUFFICIENT_PERMISSIONS")
        audio_url = f"/v1/governance/samples/{sample['id']}/audio"
        for headers in (make_staff_key(service.db, "auditor"), service.tenant.headers):
            assert_error(
                service.client.get(audio_url, headers=headers), 403, "INSUFFICIENT_PERMISSIONS"
            )
        assert_error(service.client.get(audio_url), 401, "INVALID_AUTH")
        assert service.client.get(audio_url, headers=service.admin).content == speech

    def test_customers_see_and_delete_only_their_own(
        self, any_service: Service, speech: bytes
    ) -> None:
        other = make_tenant(any_service.db, name="Other")
        mine = any_service.keep("m-1", speech)
        theirs = any_service.keep("t-1", speech, tenant=other)
        listed = any_service.client.get(
            "/v1/governance/samples", headers=any_service.tenant.headers
        )
        assert [s["id"] for s in listed.json()["samples"]] == [mine["id"]]
        foreign = any_service.client.get(
            "/v1/governance/samples",
            params={"organization_id": str(other.org_id)},
            headers=any_service.tenant.headers,
        )
        assert foreign.json()["samples"] == []
        url = f"/v1/governance/samples/{theirs['id']}"
        assert_error(
            any_service.client.get(url, headers=any_service.tenant.headers), 404, "NOT_FOUND"
        )
        assert_error(
            any_service.client.delete(url, headers=any_service.tenant.headers), 404, "NOT_FOUND"
        )
        assert any_service.object_count() == 4
        deleted = any_service.client.delete(
            f"/v1/governance/samples/{mine['id']}", headers=any_service.tenant.headers
        )
        assert deleted.status_code == 204
        assert any_service.object_count() == 2
        staff = any_service.client.get("/v1/governance/samples", headers=any_service.admin)
        assert [s["id"] for s in staff.json()["samples"]] == [theirs["id"]]

    def test_member_key_cannot_delete(self, service: Service, speech: bytes) -> None:
        member = make_tenant(service.db, scopes=["member"], name="Members")
        sample = service.keep("x-1", speech, tenant=member)
        url = f"/v1/governance/samples/{sample['id']}"
        assert service.client.get(url, headers=member.headers).status_code == 200
        assert_error(
            service.client.delete(url, headers=member.headers), 403, "INSUFFICIENT_PERMISSIONS"
        )


class TestLabels:
    def test_dataops_labels_and_admin_holds(self, service: Service, speech: bytes) -> None:
        sample = service.keep("l-1", speech)
        url = f"/v1/governance/samples/{sample['id']}"
        dataops = make_staff_key(service.db, "dataops")
        response = service.client.patch(
            url, json={"attributes": {"accent": "Scottish", "age_group": "senior"}}, headers=dataops
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["attributes"]["accent"] == "scottish"
        assert body["attribute_sources"]["age_group"] == "labeled"
        assert_error(
            service.client.patch(
                url, json={"attributes": {"age_group": "toddler"}}, headers=dataops
            ),
            400,
            "Bad Request",
        )
        assert_error(
            service.client.patch(url, json={"legal_hold": True}, headers=dataops),
            403,
            "INSUFFICIENT_PERMISSIONS",
        )
        assert_error(
            service.client.patch(url, json={"attributes": {}}, headers=service.tenant.headers),
            403,
            "INSUFFICIENT_PERMISSIONS",
        )
        held = service.client.patch(url, json={"legal_hold": True}, headers=service.admin)
        assert held.json()["legal_hold"] is True
        assert_error(
            service.client.patch(
                f"/v1/governance/samples/{uuid.uuid4()}", json={}, headers=dataops
            ),
            404,
            "NOT_FOUND",
        )

    def test_openapi_documents_every_samples_route(self, service: Service) -> None:
        paths = service.client.get("/openapi.json").json()["paths"]
        for path in (
            "/v1/governance/samples",
            "/v1/governance/samples/{sample_id}",
            "/v1/governance/samples/{sample_id}/audio",
            "/v1/governance/samples/{sample_id}/transcript",
            "/v1/governance/sampling-rates",
            "/v1/governance/erasure-requests",
            "/v1/governance/erasure-requests/{erasure_id}/resume",
        ):
            assert path in paths
        assert orjson.dumps(paths["/v1/governance/samples"]["post"]["responses"]).count(b"409")
