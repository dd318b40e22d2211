"""Retention purges and erasure requests, through the HTTP API and the CLI."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import orjson
from sqlalchemy import select, update

from app.erasure import service as lifecycle
from app.kit.settings import Settings
from app.samples.runtime import open_sample_store
from app.tables import AuditEntry, DataKey, ErasureRequest, LedgerEntry, Sample
from app.tenancy.service import create_project_key
from tests.conftest import Database, S3Endpoint, make_staff_key, make_tenant
from tests.samples.conftest import Service, build_service, make_settings, mip


def expire(db: Database, *sample_ids: str) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    with db.session() as session:
        session.execute(
            update(Sample)
            .where(Sample.id.in_([uuid.UUID(i) for i in sample_ids]))
            .values(retention_until=past)
        )


def sample_ids(db: Database) -> set[str]:
    with db.session() as session:
        return {str(i) for i in session.scalars(select(Sample.id))}


class TestRetention:
    def test_retention_deadline_comes_from_the_organization(
        self, service: Service, speech: bytes
    ) -> None:
        body = service.keep("ret-1", speech)
        created = dt.datetime.fromisoformat(body["created_at"])
        until = dt.datetime.fromisoformat(body["retention_until"])
        assert (until - created) == dt.timedelta(days=30)

    def test_purge_removes_exactly_the_expired_and_skips_legal_holds(
        self, service: Service, cli_env: Settings, speech: bytes
    ) -> None:
        expired, held, fresh = (service.keep(f"p-{i}", speech)["id"] for i in range(3))
        service.client.patch(
            f"/v1/governance/samples/{held}", json={"legal_hold": True}, headers=service.admin
        )
        expire(service.db, expired, held)
        result = mip("store", "purge-expired", "--json")
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.stdout) == {"purged": 1, "batches": 1}
        assert sample_ids(service.db) == {held, fresh}
        assert service.object_count() == 4
        with service.db.session() as session:
            entry = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "samples.purged_expired")
            ).one()
        assert entry.details["samples"] == [expired]
        assert mip("store", "verify").exit_code == 0


class TestErasure:
    def test_organization_erasure_shreds_keys_and_removes_only_that_org(
        self, any_service: Service, speech: bytes
    ) -> None:
        other = make_tenant(any_service.db, name="Keeps its data", scopes=["admin"])
        any_service.keep("e-1", speech)
        any_service.keep("e-2", speech)
        kept = any_service.keep("o-1", speech, tenant=other)
        response = any_service.client.post(
            "/v1/governance/erasure-requests",
            json={"scope": "organization", "organization_id": str(any_service.tenant.org_id)},
            headers=any_service.admin,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "done"
        assert body["stores"] == {"keys": "done", "blobs": "done", "catalog": "done"}
        assert body["counts"] == {"keys": 1, "blobs": 4, "catalog": 2}
        assert sample_ids(any_service.db) == {kept["id"]}
        assert any_service.object_count() == 2
        with any_service.db.session() as session:
            keys = session.scalars(
                select(DataKey).where(DataKey.organization_id == any_service.tenant.org_id)
            ).all()
            actions = set(session.scalars(select(AuditEntry.action)))
        assert [(k.status, k.wrapped_key) for k in keys] == [("destroyed", None)]
        assert {"erasure.requested", "erasure.completed"} <= actions
        # The tombstone stays, and new traffic of the organization gets a new data key.
        tombstones = any_service.client.get(
            "/v1/governance/erasure-requests", headers=any_service.admin
        ).json()
        assert [t["status"] for t in tombstones] == ["done"]
        assert any_service.keep("e-3", speech)["key_version"] == 2

    def test_project_key_erases_its_own_project_only(self, service: Service, speech: bytes) -> None:
        service.keep("pk-1", speech)
        foreign = service.client.post(
            "/v1/governance/erasure-requests",
            json={"scope": "organization", "organization_id": str(service.tenant.org_id)},
            headers=service.tenant.headers,
        )
        assert foreign.status_code == 403
        response = service.client.post(
            "/v1/governance/erasure-requests",
            json={"scope": "project", "project_id": str(service.tenant.project_id)},
            headers=service.tenant.headers,
        )
        assert response.json()["status"] == "done"
        assert response.json()["counts"] == {"blobs": 2, "catalog": 1}
        assert service.object_count() == 0
        bad = service.client.post(
            "/v1/governance/erasure-requests", json={"scope": "galaxy"}, headers=service.admin
        )
        assert bad.status_code == 400

    def test_admin_erases_a_project_named_by_its_id_alone(
        self, service: Service, speech: bytes
    ) -> None:
        # The README's body: {"scope": "project", "project_id": …} (it was a 400 asking for
        # organization_id, which the project already names).
        service.keep("a-1", speech)
        response = service.client.post(
            "/v1/governance/erasure-requests",
            json={"scope": "project", "project_id": str(service.tenant.project_id)},
            headers=service.admin,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["status"], body["organization_id"]) == ("done", str(service.tenant.org_id))
        assert service.object_count() == 0
        unknown = service.client.post(
            "/v1/governance/erasure-requests",
            json={"scope": "project", "project_id": str(uuid.uuid4())},
            headers=service.admin,
        )
        assert unknown.status_code == 404
        no_org = service.client.post(
            "/v1/governance/erasure-requests", json={"scope": "organization"}, headers=service.admin
        )
        assert no_org.status_code == 400
        assert "needs organization_id" in no_org.json()["err_msg"]

    def test_a_project_key_resumes_its_own_projects_erasure_only(
        self, service: Service, speech: bytes
    ) -> None:
        service.keep("r-1", speech)
        factory = service.app.state.sessionmaker
        with factory() as session, session.begin():
            erasure = lifecycle.request_erasure(
                session,
                organization_id=service.tenant.org_id,
                project_id=service.tenant.project_id,
                actor="t",
            )
        url = f"/v1/governance/erasure-requests/{erasure.id}/resume"
        other = make_tenant(service.db, name="Other", scopes=["admin"])
        assert service.client.post(url, headers=other.headers).status_code == 404
        with factory() as session, session.begin():
            _key, member = create_project_key(
                session, project_id=service.tenant.project_id, actor="t", scopes=["member"]
            )
        lacking = {"Authorization": f"Token {member}"}  # its own project, no samples:write
        assert service.client.post(url, headers=lacking).status_code == 403
        dataops = make_staff_key(service.db, "dataops")
        assert service.client.post(url, headers=dataops).status_code == 403
        resumed = service.client.post(url, headers=service.tenant.headers)
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["status"] == "done"
        assert service.object_count() == 0

    def test_failed_erasure_stays_failed_and_resumes(
        self, db: Database, tmp_path: Path, s3_endpoint: S3Endpoint, speech: bytes
    ) -> None:
        bucket = f"mip-{uuid.uuid4().hex[:12]}"
        s3_endpoint.client("s3").create_bucket(Bucket=bucket)
        settings = make_settings(db, tmp_path, backend="s3", s3=s3_endpoint, bucket=bucket)
        for service in build_service(db, settings):
            service.keep("f-1", speech)
            factory = service.app.state.sessionmaker
            # A store whose bucket does not exist: the blob step fails after the keys step.
            broken = open_sample_store(
                settings.model_copy(update={"blob_url": f"s3://missing-{bucket}/mip"})
            )
            with factory() as session, session.begin():
                erasure = lifecycle.request_erasure(
                    session, organization_id=service.tenant.org_id, project_id=None, actor="t"
                )
            failed = lifecycle.run_erasure(factory, broken, erasure.id, actor="t")
            assert failed.status == "failed"
            assert failed.stores == {"keys": "done", "blobs": "pending", "catalog": "pending"}
            assert failed.reason
            assert service.object_count() == 2
            refused = service.client.post(
                "/v1/governance/erasure-requests",
                json={"scope": "organization", "organization_id": str(service.tenant.org_id)},
                headers=service.admin,
            )
            assert refused.status_code == 409
            service.record("during")
            assert service.post_sample("during", speech).status_code == 409
            resumed = service.client.post(
                f"/v1/governance/erasure-requests/{erasure.id}/resume", headers=service.admin
            )
            assert resumed.json()["status"] == "done", resumed.text
            assert service.object_count() == 0
            with db.session() as session:
                row = session.get(ErasureRequest, erasure.id)
                assert row is not None
                assert row.counts == {"keys": 1, "blobs": 2, "catalog": 1}


def ledger_row(db: Database, request_id: str) -> LedgerEntry:
    with db.session() as session:
        row = session.scalars(select(LedgerEntry).where(LedgerEntry.request_id == request_id)).one()
        session.expunge(row)
        assert isinstance(row, LedgerEntry)
        return row


class TestConsentWithdrawal:
    def test_an_erasure_that_withdraws_consent_opts_the_project_out_from_then_on(
        self, service: Service, speech: bytes
    ) -> None:
        service.record("before")  # selected (rate 1.0), not kept yet
        other = make_tenant(service.db, name="Other org", scopes=["admin"])
        response = service.client.post(
            "/v1/governance/erasure-requests",
            json={
                "scope": "project",
                "project_id": str(service.tenant.project_id),
                "withdraw_consent": True,
            },
            headers=service.tenant.headers,
        )
        assert response.json()["status"] == "done", response.text
        # A request recorded before the withdrawal: its sample is refused now.
        refused = service.post_sample("before", speech)
        assert refused.status_code == 409
        assert "Consent was withdrawn" in refused.json()["err_msg"]
        # Every later request is opted out, whatever it says, and pays the full price.
        service.record("after", opt_out="false")
        row = ledger_row(service.db, "after")
        assert (row.mip_opt_out, row.opt_out_source, row.discount_bps) == (
            True,
            "consent_withdrawn",
            0,
        )
        assert (row.sample_selected, row.sampling_rate) == (False, None)
        assert service.post_sample("after", speech).status_code == 409
        # Another organization's requests take part as before.
        service.record("elsewhere", tenant=other)
        assert ledger_row(service.db, "elsewhere").opt_out_source == "default"
        with service.db.session() as session:
            (entry,) = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "consent.withdrawn")
            ).all()
        assert entry.target_id == str(service.tenant.project_id)
        project = service.client.get(
            f"/v1/projects/{service.tenant.project_id}", headers=service.tenant.headers
        ).json()
        assert project["mip_opt_out"] is True
        # The Deepgram request log shows the row and why it was opted out.
        listed = service.client.get(
            f"/v1/projects/{service.tenant.project_id}/requests", headers=service.tenant.headers
        )
        assert listed.status_code == 200, listed.text
        sources = {
            r["request_id"]: r["response"]["details"]["mip"]["source"]
            for r in listed.json()["requests"]
        }
        assert sources["after"] == "consent_withdrawn"

    def test_without_withdrawal_later_requests_take_part_again(
        self, service: Service, speech: bytes
    ) -> None:
        service.client.post(
            "/v1/governance/erasure-requests",
            json={"scope": "project", "project_id": str(service.tenant.project_id)},
            headers=service.tenant.headers,
        )
        service.record("later")
        assert ledger_row(service.db, "later").opt_out_source == "default"
        assert service.post_sample("later", speech).status_code == 201
