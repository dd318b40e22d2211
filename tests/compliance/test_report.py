"""The compliance report, on SQLite and PostgreSQL with a real sample store.

A seeded period (kept samples, opted-out requests, a contract change, a decrypted read, a
purge, an erasure that taints a training set and flags a model, key rotations, a signed
checkpoint) passes every check; tampering makes the matching check fail; the JSON bundle
verifies with the public key alone. Roles, dates, formats and the CLI: test_report_http.py.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from pypdf import PdfReader
from sqlalchemy import select, text, update

from app.compliance.checkpoints import create_checkpoint
from app.compliance.report import REPORT_ACTION, ReportPeriod, verify_report
from app.erasure.service import purge_expired
from app.kit.crypto.signing import SigningKey, load_public_key
from app.kit.db import utcnow
from app.kit.settings import Settings
from app.tables import AuditEntry, ModelVersion, Sample, TrainingSet
from app.tables.datasets import TrainingSetSample
from app.tenancy import service as tenancy
from app.training import promotion
from tests.conftest import Database, Tenant, make_staff_key, make_tenant
from tests.ledger.helpers import as_database_owner
from tests.samples.conftest import Service, any_service, cli_env, mip, service, speech

__all__ = ["any_service", "cli_env", "service", "speech"]  # fixtures used by the tests below

NOW = utcnow()
FIRST = (NOW - dt.timedelta(days=2)).date().isoformat()
END = (NOW + dt.timedelta(days=1)).date().isoformat()
REPORT = "/v1/governance/compliance/report"


def ingest(
    service: Service,
    tenant: Tenant,
    request_id: str,
    *,
    created: dt.datetime,
    opt_out: str | None = None,
    status: int = 200,
) -> None:
    """One ledger row through the batch ingest, at ``created``."""
    event: dict[str, Any] = {
        "request_id": request_id,
        "project_id": str(tenant.project_id),
        "created": created.isoformat(),
        "model": "general",
        "duration": 3.0,
        "status": status,
    }
    if opt_out is not None:
        event["mip_opt_out"] = opt_out
    response = service.client.post(
        "/v1/governance/ledger/events", json={"events": [event]}, headers=service.admin
    )
    assert response.status_code == 200, response.text


def keep(service: Service, tenant: Tenant, request_id: str, audio: bytes) -> str:
    """A request of the period, recorded and kept as a sample; returns the sample id."""
    ingest(service, tenant, request_id, created=NOW - dt.timedelta(hours=1))
    response = service.post_sample(request_id, audio, tenant=tenant)
    assert response.status_code == 201, response.text
    sample_id: str = response.json()["id"]
    return sample_id


def add_training_set(db: Database, name: str, members: list[tuple[str, uuid.UUID]]) -> uuid.UUID:
    """A training set as curation leaves it: the row and its membership."""
    with db.session() as session:
        row = TrainingSet(
            name=name,
            version=1,
            params={"balance": ["accent"]},
            manifest_hash="0" * 64,
            validation={},
            balance={},
            sample_count=len(members),
            duration_seconds=3.0 * len(members),
            created_by="test",
        )
        session.add(row)
        session.flush()
        for sample_id, org_id in members:
            session.add(
                TrainingSetSample(
                    training_set_id=row.id,
                    sample_id=uuid.UUID(sample_id),
                    organization_id=org_id,
                    split="train",
                )
            )
        return row.id


def add_model_version(db: Database, name: str, training_set_id: uuid.UUID) -> uuid.UUID:
    """A candidate version as a finished job registers it (the package itself is not read)."""
    with db.session() as session:
        row = ModelVersion(
            uuid=uuid.uuid4(),
            name=name,
            version="2026-12-01.1",
            filename=f"{name}.dg",
            blob_key=f"models/{name}.dg",
            training_set_id=training_set_id,
            base_model="general",
            metrics={},
        )
        session.add(row)
        session.flush()
        return row.id


@dataclass
class Seeded:
    service: Service
    samples: list[str]
    read_sample: str
    reader: str  # the actor that read it
    erasure_id: str
    erased_org: uuid.UUID
    tainted_set: uuid.UUID
    flagged_version: uuid.UUID
    clean_version: uuid.UUID
    contract_org: uuid.UUID

    @property
    def signer(self) -> SigningKey:
        signer: SigningKey = self.service.app.state.signer
        return signer

    def get(self, fmt: str = "json", headers: dict[str, str] | None = None) -> Any:
        return self.service.client.get(
            REPORT,
            params={"from": FIRST, "to": END, "format": fmt},
            headers=headers or make_staff_key(self.service.db, "auditor"),
        )


@pytest.fixture
def seeded(service: Service, cli_env: Settings, speech: bytes) -> Seeded:
    db, tenant = service.db, service.tenant
    samples = [keep(service, tenant, f"in-{i}", speech) for i in range(3)]
    ingest(service, tenant, "out-1", created=NOW - dt.timedelta(hours=2), opt_out="true")
    ingest(service, tenant, "failed-1", created=NOW - dt.timedelta(hours=2), status=500)
    by_contract = make_tenant(
        db, plan="enterprise", contract_rates={"*": 4000}, contract_opt_out=True, name="Out Inc"
    )
    ingest(service, by_contract, "contract-1", created=NOW - dt.timedelta(days=1))
    later = make_tenant(db, plan="enterprise", contract_rates={"*": 4000}, name="Later Out")
    with db.session() as session:
        tenancy.update_contract(
            session, organization_id=later.org_id, actor="legal", contract_opt_out=True
        )
    dataops = make_staff_key(db, "dataops")
    read = service.client.get(f"/v1/governance/samples/{samples[0]}/audio", headers=dataops)
    assert read.status_code == 200
    with db.session() as session:
        reader = session.scalars(
            select(AuditEntry.actor).where(AuditEntry.action == "sample.audio_read")
        ).one()
    # A training set of the period and a model trained on it.
    clean_set = add_training_set(db, "medical-en", [(s, tenant.org_id) for s in samples[:2]])
    clean_version = add_model_version(db, "ctc-medical", clean_set)
    # Retention: one sample past its deadline, purged.
    expired = keep(service, tenant, "expired-1", speech)
    with db.session() as session:
        session.execute(
            update(Sample)
            .where(Sample.id == uuid.UUID(expired))
            .values(retention_until=NOW - dt.timedelta(minutes=1))
        )
    assert purge_expired(db.factory, service.store, actor="test").purged == 1
    # An organization erased (consent withdrawn): its set is tainted, the model on it flagged.
    erased = make_tenant(db, name="Erase Me", scopes=["admin"])
    erased_sample = keep(service, erased, "erase-1", speech)
    tainted_set = add_training_set(db, "erasable", [(erased_sample, erased.org_id)])
    flagged_version = add_model_version(db, "ctc-erasable", tainted_set)
    erasure = service.client.post(
        "/v1/governance/erasure-requests",
        json={
            "scope": "organization",
            "organization_id": str(erased.org_id),
            "withdraw_consent": True,
        },
        headers=service.admin,
    )
    assert erasure.status_code == 201, erasure.text
    assert erasure.json()["status"] == "done"
    with db.session() as session:
        flagged = promotion.flag_tainted_versions(
            session, service.store, service.app.state.settings, actor="worker"
        )
    assert [v.id for v in flagged] == [flagged_version]
    # Keys rotated, then the chain signed.
    assert mip("crypto", "rotate-kek", "--json").exit_code == 0
    assert mip("crypto", "rotate-dek", "--org", str(tenant.org_id), "--json").exit_code == 0
    with db.session() as session:
        create_checkpoint(session, service.store, service.app.state.signer, actor="test")
    return Seeded(
        service=service,
        samples=samples,
        read_sample=samples[0],
        reader=reader,
        erasure_id=erasure.json()["id"],
        erased_org=erased.org_id,
        tainted_set=tainted_set,
        flagged_version=flagged_version,
        clean_version=clean_version,
        contract_org=later.org_id,
    )


def report_of(seeded: Seeded) -> dict[str, Any]:
    response = seeded.get("json")
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    report: dict[str, Any] = bundle["report"]
    return report


def failing(report: dict[str, Any]) -> dict[str, Any]:
    return {c["id"]: c["observed"] for c in report["checks"] if not c["ok"]}


class TestSeededPeriod:
    def test_every_check_passes_and_each_section_holds_the_evidence(self, seeded: Seeded) -> None:
        report = report_of(seeded)
        assert failing(report) == {}
        assert report["ok"] is True
        assert len(report["checks"]) >= 10
        assert report["period"] == {
            "from": FIRST,
            "to": END,
            "to_is": "excluded",
            "days": 3,
            "timezone": "UTC",
        }
        opt_out = report["opt_out"]
        # in-0..2, expired-1, erase-1 kept; out-1, failed-1, contract-1 recorded.
        assert opt_out["requests"] == {
            "total": 8,
            "opted_in": 6,
            "opted_out": 2,
            "failed": 1,
            "samples_kept": 5,
        }
        assert opt_out["opted_out_by_source"] == {
            "consent_withdrawn": 0,
            "contract": 1,
            "request": 1,
            "default": 0,
        }
        assert sum(d["opted_in"] + d["opted_out"] for d in opt_out["daily"]) == 8
        assert [d["day"] for d in opt_out["daily"]] == ReportPeriod.parse(FIRST, END).days
        store = opt_out["store"]
        # Three samples left (in-0..2), two objects each; the purged and erased ones are gone.
        assert (store["samples"], store["objects"], store["catalog_objects"]) == (3, 6, 6)
        assert opt_out["sampling"]["ok"] is True
        assert opt_out["sampling"]["ledger_rows"] == 8

    def test_consent_retention_and_erasure_sections(self, seeded: Seeded) -> None:
        report = report_of(seeded)
        consent = report["consent"]
        assert consent["contract_opt_out_organizations"] == 2
        [change] = consent["contract_opt_out_changes"]
        assert (change["organization_id"], change["actor"]) == (str(seeded.contract_org), "legal")
        assert (change["contract_opt_out_from"], change["contract_opt_out_to"]) == (False, True)
        [withdrawal] = consent["consent_withdrawals"]
        assert withdrawal["erasure_id"] == seeded.erasure_id
        assert consent["consent_withdrawn"] == {"organizations": 1, "projects": 0}

        retention = report["retention"]
        assert retention["expired_samples"] == 0
        assert (retention["purges"]["runs"], retention["purges"]["samples_purged"]) == (1, 1)

        [erasure] = report["erasure"]["requests"]
        assert erasure["id"] == seeded.erasure_id
        assert erasure["status"] == "done"
        assert erasure["consent_withdrawn"] is True
        assert (erasure["keys_destroyed"], erasure["objects_deleted"]) == (1, 2)
        assert erasure["catalog_rows_deleted"] == 1
        assert erasure["training_sets_tainted"] == [str(seeded.tainted_set)]
        assert [v["id"] for v in erasure["model_versions_flagged"]] == [str(seeded.flagged_version)]
        assert erasure["duration_seconds"] >= 0
        requested = dt.datetime.fromisoformat(erasure["requested_at"])
        completed = dt.datetime.fromisoformat(erasure["completed_at"])
        assert requested <= completed
        assert erasure["evidence"]["completed_seq"] > erasure["evidence"]["requested_seq"]

    def test_access_keys_lineage_and_audit_sections(self, seeded: Seeded) -> None:
        report = report_of(seeded)
        reads = report["access"]["decrypted_reads"]
        assert reads["total"] == 1
        assert reads["by_object"] == {"audio": 1, "transcript": 0, "reference": 0}
        [read] = reads["reads"]
        assert (read["actor"], read["object"], read["sample_id"]) == (
            seeded.reader,
            "audio",
            seeded.read_sample,
        )
        assert read["actor"].startswith("staff:dataops:")
        assert NOW - dt.timedelta(minutes=10) < dt.datetime.fromisoformat(read["at"]) < utcnow()
        assert reads["by_actor"] == [{"actor": seeded.reader, "reads": 1}]
        by_role = report["access"]["staff_keys"]["by_role"]
        assert by_role["admin"]["active"] >= 1
        assert by_role["auditor"]["active"] >= 1
        assert by_role["dataops"]["active"] == 1

        keys = report["key_management"]
        [kek] = keys["kek_rotations"]
        assert kek["rewrapped"] >= 1
        [dek] = keys["dek_rotations"]
        assert (dek["organization_id"], dek["version"]) == (
            str(seeded.service.tenant.org_id),
            2,
        )
        groups = keys["data_keys"]["groups"]
        assert {g["status"] for g in groups} == {"active", "retired", "destroyed"}
        destroyed = [g for g in groups if g["status"] == "destroyed"]
        assert [g["holding_key_material"] for g in destroyed] == [0]
        assert keys["data_keys"]["oldest_active_age_days"] < 1

        lineage = report["model_lineage"]
        versions = {v["id"]: v for v in lineage["model_versions"]}
        clean = versions[str(seeded.clean_version)]
        assert clean["training_set"] == "medical-en:1"
        assert clean["tainted_at"] is None
        assert versions[str(seeded.flagged_version)]["tainted_at"] is not None
        sets = {s["name"]: s for s in lineage["training_sets"]}
        assert (sets["medical-en"]["members"], sets["medical-en"]["members_in_catalog"]) == (2, 2)
        assert sets["medical-en"]["samples_from"][:10] == NOW.date().isoformat()
        assert sets["medical-en"]["model_versions"] == ["ctc-medical:2026-12-01.1"]
        # The erased member's catalog row is gone: the set still names it.
        assert (sets["erasable"]["members"], sets["erasable"]["members_in_catalog"]) == (1, 0)
        assert sets["erasable"]["status"] == "tainted"

        audit = report["audit"]
        assert audit["chain"]["ok"] is True
        assert audit["chain"]["entries"] > 20
        assert audit["checkpoints"]["ok"] is True
        assert audit["checkpoints"]["checkpoints"] == 1

    def test_generation_is_audited_without_content(self, seeded: Seeded) -> None:
        report = report_of(seeded)
        with seeded.service.db.session() as session:
            entry = session.scalars(
                select(AuditEntry).where(AuditEntry.action == REPORT_ACTION)
            ).one()
        assert entry.target_id == f"{FIRST}..{END}"
        assert entry.actor.startswith("staff:auditor:")
        assert set(entry.details) == {"from", "to", "format", "ok", "report_sha256", "key_id"}
        assert entry.details["format"] == "json"
        assert entry.details["ok"] is True
        # The report's own figures stay out of the log.
        assert seeded.read_sample not in orjson.dumps(entry.details).decode()
        assert report["generated_by"] == entry.actor

    def test_pdf_has_a_title_page_a_summary_and_a_section_per_area(self, seeded: Seeded) -> None:
        response = seeded.get("pdf")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/pdf"
        assert response.content.startswith(b"%PDF-")
        pdf = PdfReader(io.BytesIO(response.content))
        pages = [page.extract_text() for page in pdf.pages]
        assert len(pages) >= 10
        assert "MIP compliance report" in pages[0]
        assert f"{FIRST} to {END}" in pages[0]
        assert "Generated" in pages[0]
        assert f"All {len(report_of(seeded)['checks'])} checks pass" in pages[0]
        assert "Summary of checks" in pages[1]
        assert "FAIL" not in pages[1]
        assert pages[1].count("PASS") >= 10
        everything = "\n".join(pages)
        for title in (
            "Opt-out and sampling",
            "Consent",
            "Retention",
            "Erasures",
            "Access to sample content",
            "Key management",
            "Model lineage",
            "Audit log",
            "Evidence",
        ):
            assert title in everything
        assert seeded.erasure_id[:8] in everything
        assert "ctc-medical:2026-12-01.1" in everything
        assert seeded.reader[:20] in everything
        # The charts: requests per day, reads per day, erasure completion times.
        images = sum(len(page.images) for page in pdf.pages)
        assert images == 3
        assert all(f"page {n}" in pages[n - 1] for n in range(1, len(pages) + 1))

    def test_html_is_self_contained_and_escaped(self, seeded: Seeded) -> None:
        with seeded.service.db.session() as session:
            tenancy.create_staff_key(session, role="auditor", actor="<script>alert(1)</script>")
        response = seeded.get("html")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        page = response.text
        assert page.startswith("<!DOCTYPE html>")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<script" not in page
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
        assert page.count('src="data:image/png;base64,') == 3
        assert "<style>" in page
        assert "All checks pass" in page


class TestFailures:
    def test_an_opted_out_ledger_row_with_a_sample_fails_the_opt_out_checks(
        self, service: Service, speech: bytes
    ) -> None:
        kept = keep(service, service.tenant, "flipped", speech)
        keep(service, service.tenant, "fine", speech)
        with as_database_owner(service.db), service.db.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE ledger_entries SET mip_opt_out = :out, opt_out_source = 'request' "
                    "WHERE request_id = 'flipped'"
                ),
                {"out": True},
            )
        response = service.client.get(
            REPORT, params={"from": FIRST, "to": END}, headers=service.admin
        )
        report = response.json()["report"]
        assert report["ok"] is False
        assert failing(report) == {
            "opt_out.samples_of_opted_out_requests": 1,
            "store.objects_of_opted_out_requests": 2,
            "sampling.decisions_recompute": 2,  # recorded as selected, and kept
        }
        store = report["opt_out"]["store"]
        assert store["samples_of_opted_out_requests"]["examples"] == [kept]
        assert all(kept in key for key in store["objects_of_opted_out_requests"]["examples"])
        summary = {c["id"]: c for c in report["checks"]}
        assert summary["opt_out.samples_of_opted_out_requests"]["expected"] == "0"

    def test_an_orphan_object_and_a_missing_one_are_reported(
        self, any_service: Service, speech: bytes
    ) -> None:
        service = any_service  # a local folder and S3 (moto): both list in key order
        sample = keep(service, service.tenant, "kept", speech)
        keep(service, service.tenant, "also-kept", speech)
        # Before, among and after the catalog's keys in the listing's order.
        orphans = [
            "orgs/0-first/samples/a.audio",
            f"orgs/{service.tenant.org_id}/samples/{uuid.uuid4()}.audio",
            "orgs/zz-last/samples/z.transcript",
        ]
        for orphan in orphans:
            service.store.blobs.put(orphan, [b"ciphertext of nothing"])
        with service.db.session() as session:
            row = session.get(Sample, uuid.UUID(sample))
            assert row is not None
            gone = row.transcript_blob_key
        service.store.blobs.delete(gone)
        report = service.client.get(
            REPORT, params={"from": FIRST, "to": END}, headers=service.admin
        ).json()["report"]
        assert failing(report) == {"store.orphan_objects": 3, "store.missing_objects": 1}
        store = report["opt_out"]["store"]
        assert store["orphan_objects"] == {"count": 3, "examples": sorted(orphans)}
        assert store["missing_objects"] == {"count": 1, "examples": [gone]}
        assert (store["samples"], store["catalog_objects"], store["objects"]) == (2, 4, 6)

    def test_a_sample_past_its_deadline_fails_retention(
        self, service: Service, speech: bytes
    ) -> None:
        sample = keep(service, service.tenant, "old", speech)
        with service.db.session() as session:
            session.execute(
                update(Sample)
                .where(Sample.id == uuid.UUID(sample))
                .values(retention_until=NOW - dt.timedelta(days=1))
            )
        report = service.client.get(
            REPORT, params={"from": FIRST, "to": END}, headers=service.admin
        ).json()["report"]
        assert failing(report) == {"retention.expired_samples": 1}


class TestSignature:
    def test_the_bundle_verifies_with_the_public_key_alone(
        self, service: Service, speech: bytes
    ) -> None:
        keep(service, service.tenant, "signed", speech)
        response = service.client.get(
            REPORT, params={"from": FIRST, "to": END, "format": "json"}, headers=service.admin
        )
        assert response.headers["content-type"] == "application/json"
        bundle = orjson.loads(response.content)
        signer: SigningKey = service.app.state.signer
        public = load_public_key(signer.public_key_pem())
        assert bundle["signature"]["algorithm"] == "ed25519"
        assert bundle["signature"]["key_id"] == signer.key_id
        assert verify_report(bundle, public) is True

        edited = orjson.loads(response.content)
        edited["report"]["opt_out"]["requests"]["opted_out"] += 1
        assert verify_report(edited, public) is False
        relabelled = orjson.loads(response.content)
        relabelled["report"]["checks"][0]["ok"] = not relabelled["report"]["checks"][0]["ok"]
        assert verify_report(relabelled, public) is False
        forged = orjson.loads(response.content)
        forged["signature"]["value"] = "not base64!"
        assert verify_report(forged, public) is False

    def test_another_key_does_not_verify_it(
        self, service: Service, tmp_path: Path, speech: bytes
    ) -> None:
        bundle = service.client.get(
            REPORT, params={"from": FIRST, "to": END}, headers=service.admin
        ).json()
        other = SigningKey(tmp_path / "other.json", service.store.keys)
        assert verify_report(bundle, other.public_key) is False
        assert verify_report({"report": bundle["report"]}, other.public_key) is False
