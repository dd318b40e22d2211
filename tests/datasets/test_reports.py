"""Training-set reports: encrypted under the set's own key, refused when tampered, removed with
the erasure or purge that taints the set, re-wrapped by a KEK rotation; plaintext reports of
sets built before are read as they are until `mip curate encrypt-reports` seals them."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update

from app.datasets import reports
from app.erasure import service as lifecycle
from app.kit.settings import Settings
from app.tables import AuditEntry, Sample, TrainingSet
from tests.conftest import make_staff_key, make_tenant
from tests.datasets.conftest import Catalog
from tests.samples.conftest import Service, mip

PNG = b"\x89PNG\r\n\x1a\n"
ERROR_KEYS = {"err_code", "err_msg", "request_id"}


def report_files(service: Service, set_id: str) -> dict[str, bytes]:
    """The objects under datasets/<set id>/ in the local blob directory, by file name."""
    assert service.blob_root is not None
    folder = service.blob_root / "datasets" / set_id
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def get_report(catalog: Catalog, set_id: str, name: str) -> Any:
    return catalog.service.client.get(
        f"/v1/governance/datasets/{set_id}/reports/{name}", headers=catalog.dataops
    )


def read_all(catalog: Catalog, set_id: str) -> dict[str, bytes]:
    out = {}
    for name in reports.REPORT_FILES:
        response = get_report(catalog, set_id, name)
        assert response.status_code == 200, response.text
        out[name] = response.content
    return out


def build(catalog: Catalog, **body: Any) -> dict[str, Any]:
    response = catalog.build(eval_fraction=0.0, **body)
    assert response.status_code == 201, response.text
    built: dict[str, Any] = response.json()
    return built


def set_row(catalog: Catalog, set_id: str) -> TrainingSet:
    with catalog.service.db.session() as session:
        row: TrainingSet | None = session.get(TrainingSet, uuid.UUID(set_id))
        assert row is not None
        session.expunge(row)
        return row


def make_legacy(catalog: Catalog, set_id: str) -> dict[str, bytes]:
    """Turn a set into one built before reports were encrypted: plaintext objects, no key."""
    store = catalog.service.store
    with catalog.service.db.session() as session:
        row = session.get(TrainingSet, uuid.UUID(set_id))
        assert row is not None
        contents = {n: reports.read_report(store, row, n) for n in reports.REPORT_FILES}
        for name, content in contents.items():
            store.blobs.put(reports.plaintext_blob_key(row.id, name), [content])
            store.blobs.delete(reports.sealed_blob_key(row.id, name))
        row.report_key_wrapped = None
        row.report_kek_version = None
    return contents


def erase_organization(service: Service, organization_id: uuid.UUID) -> dict[str, Any]:
    response = service.client.post(
        "/v1/governance/erasure-requests",
        json={"scope": "organization", "organization_id": str(organization_id)},
        headers=service.admin,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_removed(catalog: Catalog, set_id: str, *, reason: str) -> None:
    assert report_files(catalog.service, set_id) == {}
    for name in reports.REPORT_FILES:
        gone = get_report(catalog, set_id, name)
        assert gone.status_code == 410, gone.text
        assert set(gone.json()) == ERROR_KEYS
        assert reason in gone.json()["err_msg"]
    row = set_row(catalog, set_id)
    assert (row.report_key_wrapped, row.report_kek_version) == (None, None)
    assert row.reports_removed_at is not None
    shown = catalog.service.client.get(
        f"/v1/governance/datasets/{set_id}", headers=catalog.dataops
    ).json()
    assert shown["reports"] == "removed"
    assert reason in shown["reports_removed_reason"]


def plaintext_markers(catalog: Catalog, *extra: str) -> list[bytes]:
    ids = [i for ids in catalog.ids.values() for i in ids]
    return [
        PNG,
        b"accent",
        b"sample_id",
        b"<html",
        str(catalog.service.tenant.org_id).encode(),
        *(i.encode() for i in ids),
        *(e.encode() for e in extra),
    ]


class TestEncryptedReports:
    def test_no_report_object_holds_plaintext_and_each_reads_back(self, catalog: Catalog) -> None:
        dup = catalog.keep("dup", index=0, accent="us")  # quarantined: its id is in the reports
        body = build(catalog)
        files = report_files(catalog.service, body["id"])
        assert sorted(files) == sorted(f"{name}.enc" for name in reports.REPORT_FILES)
        for name, content in files.items():
            assert content.startswith(b"MIPE"), name
            for marker in plaintext_markers(catalog, dup):
                assert marker not in content, (name, marker)
        read = read_all(catalog, body["id"])
        assert orjson.loads(read["validation.json"]) == body["validation"]
        assert orjson.loads(read["balance.json"]) == body["balance"]
        assert read["distributions.png"].startswith(PNG)
        assert dup.encode() in read["quarantine.csv"]
        assert b"accent" in read["quarantine.csv"].splitlines()[0]
        assert body["reports"] == "encrypted"

    def test_reports_read_back_identical_to_what_was_rendered(
        self, service: Service, tmp_path: Path
    ) -> None:
        from curation.balance import BalanceSpec, balance
        from curation.manifests import read_manifest
        from curation.validation import ValidationRules, validate

        org = str(uuid.uuid4())
        rows = [
            {
                "sample_id": str(uuid.uuid4()),
                "organization_id": org,
                "duration": 2.0,
                "transcript": "hello there",
                "accent": "us" if i < 6 else "rp",
                "consent": "opted_in" if i else "opted_out",
            }
            for i in range(9)
        ]
        manifest = tmp_path / "pool.jsonl"
        manifest.write_text("\n".join(orjson.dumps(r).decode() for r in rows) + "\n")
        validation = validate(read_manifest(manifest), ValidationRules())
        balanced = balance(
            validation.valid, BalanceSpec.from_json({"dimensions": ["accent"], "hours": 0.01})
        )
        rendered = reports.render_reports(validation, balanced)
        assert str(rows[0]["sample_id"]).encode() in rendered["quarantine.csv"]
        with service.db.session() as session:
            row = TrainingSet(
                name="rendered", version=1, params={}, manifest_hash="0" * 64, validation={},
                balance={}, sample_count=8, duration_seconds=16.0, created_by="test",
            )  # fmt: skip
            session.add(row)
            session.flush()
            reports.seal_reports(service.store, row, rendered)
            set_id = row.id
        reader = Catalog(service=service, dataops=make_staff_key(service.db, "dataops"))
        assert read_all(reader, str(set_id)) == rendered
        for content in report_files(service, str(set_id)).values():
            assert org.encode() not in content
            assert PNG not in content

    def test_a_swapped_moved_or_tampered_report_is_refused(
        self, catalog: Catalog, cli_env: Settings, tmp_path: Path
    ) -> None:
        first = build(catalog)
        second = build(catalog, name="other-set")
        assert catalog.service.blob_root is not None
        folder = catalog.service.blob_root / "datasets" / first["id"]
        elsewhere = catalog.service.blob_root / "datasets" / second["id"]
        original = (folder / "balance.json.enc").read_bytes()
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        tampered = {
            "swapped with another report of the set": (folder / "validation.json.enc").read_bytes(),
            "the same report of another set": (elsewhere / "balance.json.enc").read_bytes(),
            "a flipped byte": bytes(flipped),
            "truncated": original[:-20],
            "plaintext in its place": b'{"summary": {}}',
        }
        for what, content in tampered.items():
            (folder / "balance.json.enc").write_bytes(content)
            refused = get_report(catalog, first["id"], "balance.json")
            assert refused.status_code == 500, what
            error = refused.json()
            assert set(error) == ERROR_KEYS
            assert error["err_code"] == "OBJECT_INTEGRITY", what
            assert "balance.json" in error["err_msg"]
        result = mip("curate", "report", first["id"], "--out", str(tmp_path / "out"))
        assert result.exit_code == 1
        assert "failed authentication" in result.output
        assert not (tmp_path / "out" / "validation.json").exists()  # nothing half-written
        (folder / "balance.json.enc").write_bytes(original)
        assert get_report(catalog, first["id"], "balance.json").status_code == 200

    def test_a_kek_rotation_rewraps_report_keys(self, catalog: Catalog, cli_env: Settings) -> None:
        body = build(catalog)
        before = read_all(catalog, body["id"])
        old = set_row(catalog, body["id"])
        result = mip("crypto", "rotate-kek", "--json")
        assert result.exit_code == 0, result.output
        # One organization's data key and the set's report key.
        assert orjson.loads(result.stdout)["rewrapped"] == 2
        new = set_row(catalog, body["id"])
        assert (old.report_kek_version, new.report_kek_version) == ("local-1", "local-2")
        assert new.report_key_wrapped != old.report_key_wrapped
        assert read_all(catalog, body["id"]) == before
        again = orjson.loads(mip("crypto", "rotate-kek", "--json").stdout)
        assert again["rewrapped"] == 2
        assert set_row(catalog, body["id"]).report_kek_version == "local-3"


class TestRemovedWithTheTaint:
    def test_an_erasure_destroys_the_key_and_deletes_the_reports(
        self, catalog: Catalog, cli_env: Settings, tmp_path: Path
    ) -> None:
        service = catalog.service
        other = make_tenant(service.db, name="Leaving Org", scopes=["admin"])
        theirs = catalog.keep("theirs", index=50, accent="rp", tenant=other)
        with_them = build(catalog, name="with-them")
        without = build(catalog, name="without", organization_ids=[str(service.tenant.org_id)])
        held = service.client.get(
            f"/v1/governance/datasets/{with_them['id']}/samples", headers=catalog.dataops
        ).json()["samples"]
        assert theirs in {m["sample_id"] for m in held}
        erasure = erase_organization(service, other.org_id)
        assert erasure["status"] == "done"
        assert_removed(catalog, with_them["id"], reason=f"erasure {erasure['id']}")
        # The set that never held the organization keeps its reports.
        assert len(report_files(service, without["id"])) == len(reports.REPORT_FILES)
        assert read_all(catalog, without["id"])["distributions.png"].startswith(PNG)
        with service.db.session() as session:
            event = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "training_sets.tainted")
            ).one()
        assert event.details["reports_removed"] == [with_them["id"]]
        assert event.details["report_objects_deleted"] == len(reports.REPORT_FILES)
        assert event.details["erasure_id"] == erasure["id"]
        result = mip("curate", "report", with_them["id"], "--out", str(tmp_path / "out"))
        assert result.exit_code == 1
        assert "removed" in result.output

    def test_an_erasure_recorded_without_the_store_deletes_the_reports_when_it_runs(
        self, catalog: Catalog
    ) -> None:
        service = catalog.service
        body = build(catalog)
        factory = service.app.state.sessionmaker
        with service.db.session() as session:
            erasure = lifecycle.request_erasure(
                session, organization_id=service.tenant.org_id, project_id=None, actor="test"
            )
        # The key is gone at once; the objects wait for the run.
        assert get_report(catalog, body["id"], "validation.json").status_code == 410
        assert len(report_files(service, body["id"])) == len(reports.REPORT_FILES)
        done = lifecycle.run_erasure(factory, service.store, erasure.id, actor="test")
        assert done.status == "done"
        assert_removed(catalog, body["id"], reason=f"erasure {erasure.id}")

    def test_a_retention_purge_removes_the_reports(self, catalog: Catalog) -> None:
        service = catalog.service
        body = build(catalog)
        with service.db.session() as session:
            session.execute(
                update(Sample)
                .where(Sample.id == uuid.UUID(catalog.ids["rp"][0]))
                .values(retention_until=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
            )
        purged = lifecycle.purge_expired(service.app.state.sessionmaker, service.store)
        assert purged.purged == 1
        assert_removed(catalog, body["id"], reason="samples purged at their retention deadline")


class TestLegacyReports:
    def test_encrypt_reports_seals_legacy_reports_in_place(
        self, catalog: Catalog, cli_env: Settings
    ) -> None:
        service = catalog.service
        body = build(catalog)
        contents = make_legacy(catalog, body["id"])
        assert set(report_files(service, body["id"])) == set(reports.REPORT_FILES)
        assert read_all(catalog, body["id"]) == contents  # still readable until encrypted
        shown = service.client.get(f"/v1/governance/datasets/{body['id']}", headers=catalog.dataops)
        assert shown.json()["reports"] == "plaintext"

        helped = mip("curate", "encrypt-reports", "--help")
        assert helped.exit_code == 0
        assert "plaintext" in helped.output
        result = mip("curate", "encrypt-reports", "--json")
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.stdout) == {
            "encrypted_sets": [body["id"]],
            "removed_sets": [],
            "reports": len(reports.REPORT_FILES),
            "missing": 0,
            "deleted": len(reports.REPORT_FILES),
        }
        files = report_files(service, body["id"])
        assert sorted(files) == sorted(f"{name}.enc" for name in reports.REPORT_FILES)
        for name, content in files.items():
            for marker in plaintext_markers(catalog):
                assert marker not in content, (name, marker)
        assert read_all(catalog, body["id"]) == contents
        with service.db.session() as session:
            event = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "training_set.reports_encrypted")
            ).one()
        assert event.target_id == body["id"]
        assert event.details["reports"] == list(reports.REPORT_FILES)

        # A crash after the key was committed left a plaintext copy: the next run deletes it.
        service.store.blobs.put(
            reports.plaintext_blob_key(uuid.UUID(body["id"]), "quarantine.csv"),
            [contents["quarantine.csv"]],
        )
        again = orjson.loads(mip("curate", "encrypt-reports", "--json").stdout)
        assert (again["encrypted_sets"], again["deleted"]) == ([], 1)
        assert "quarantine.csv" not in report_files(service, body["id"])
        assert read_all(catalog, body["id"]) == contents

    def test_an_erasure_deletes_a_legacy_sets_plaintext_reports(self, catalog: Catalog) -> None:
        service = catalog.service
        body = build(catalog)
        make_legacy(catalog, body["id"])
        erasure = erase_organization(service, service.tenant.org_id)
        assert_removed(catalog, body["id"], reason=f"erasure {erasure['id']}")

    def test_a_set_tainted_before_has_its_legacy_reports_removed_not_sealed(
        self, catalog: Catalog, cli_env: Settings
    ) -> None:
        service = catalog.service
        tainted = build(catalog, name="tainted-before")
        ready = build(catalog, name="still-ready")
        for set_id in (tainted["id"], ready["id"]):
            make_legacy(catalog, set_id)
        with service.db.session() as session:
            session.execute(
                update(TrainingSet)
                .where(TrainingSet.id == uuid.UUID(tainted["id"]))
                .values(status="tainted", taint_reason="erasure from last year")
            )
        result = orjson.loads(mip("curate", "encrypt-reports", "--json").stdout)
        assert (result["encrypted_sets"], result["removed_sets"]) == (
            [ready["id"]],
            [tainted["id"]],
        )
        assert_removed(catalog, tainted["id"], reason="erasure from last year")
        assert set_row(catalog, ready["id"]).report_key_wrapped is not None
        with service.db.session() as session:
            removed = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "training_set.reports_removed")
            ).one()
        assert removed.target_id == tainted["id"]

    def test_unknown_report_names_stay_404(self, catalog: Catalog) -> None:
        body = build(catalog)
        missing = get_report(catalog, body["id"], "secrets.txt")
        assert missing.status_code == 404
        assert set(missing.json()) == ERROR_KEYS
        with pytest.raises(ValueError, match="not report names"):
            reports.seal_reports(
                catalog.service.store, set_row(catalog, body["id"]), {"x.txt": b""}
            )
