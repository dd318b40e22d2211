"""Key rotation, `mip store verify` and bulk labels, through the CLI."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
from sqlalchemy import select

from app.kit.settings import Settings
from app.samples.runtime import open_sample_store
from app.samples.service import blob_key
from app.tables import DataKey, Sample
from tests.conftest import make_tenant
from tests.samples.conftest import Service, build_service, mip


class TestVerifyAndRotation:
    def test_rotate_kek_keeps_everything_readable_and_resumes(
        self, service: Service, cli_env: Settings, speech: bytes
    ) -> None:
        first = service.keep("k-1", speech)
        other = make_tenant(service.db, name="Second", scopes=["admin"])
        service.keep("k-2", speech, tenant=other)
        result = mip("crypto", "rotate-kek", "--json")
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.stdout) == {
            "kek_version": "local-2",
            "rewrapped": 2,
            "resumed": False,
        }
        # An interrupted rotation: a new KEK version, one key re-wrapped, then a crash.
        store = open_sample_store(cli_env)
        store.keys.rotate()
        from app.samples.keys import rewrap_batch

        with service.db.session() as session:
            assert rewrap_batch(session, store.keys, limit=1) == 1
        again = orjson.loads(mip("crypto", "rotate-kek", "--json").stdout)
        assert again == {"kek_version": "local-3", "rewrapped": 1, "resumed": True}
        with service.db.session() as session:
            assert set(session.scalars(select(DataKey.kek_version))) == {"local-3"}
        # The app's process still reads (its cached keys are keyed by KEK version, too).
        fresh = build_service(service.db, cli_env)
        for reader in fresh:
            audio = reader.client.get(
                f"/v1/governance/samples/{first['id']}/audio", headers=service.admin
            )
            assert audio.content == speech
        verify = mip("store", "verify", "--json")
        assert verify.exit_code == 0, verify.output
        assert orjson.loads(verify.stdout)["verified"] == 4

    def test_rotate_dek_starts_a_new_key_and_old_objects_stay_readable(
        self, service: Service, cli_env: Settings, speech: bytes
    ) -> None:
        old = service.keep("d-1", speech)
        result = mip("crypto", "rotate-dek", "--org", str(service.tenant.org_id), "--json")
        assert orjson.loads(result.stdout)["data_key_version"] == 2
        new = service.keep("d-2", speech)
        assert (old["key_version"], new["key_version"]) == (1, 2)
        for sample in (old, new):
            url = f"/v1/governance/samples/{sample['id']}/audio"
            assert service.client.get(url, headers=service.admin).content == speech
        status = orjson.loads(mip("crypto", "status", "--json").stdout)
        assert sorted(k["status"] for k in status["keys"]) == ["active", "retired"]

    def test_tampering_is_an_integrity_error_never_wrong_data(
        self, service: Service, cli_env: Settings, speech: bytes
    ) -> None:
        assert service.blob_root is not None
        a = service.keep("t-a", speech)
        b = service.keep("t-b", speech)
        org = service.tenant.org_id
        path_a = service.blob_root / blob_key(org, uuid.UUID(a["id"]), "audio")
        path_b = service.blob_root / blob_key(org, uuid.UUID(b["id"]), "audio")
        url_a = f"/v1/governance/samples/{a['id']}/audio"
        url_b = f"/v1/governance/samples/{b['id']}/audio"
        original = path_a.read_bytes()
        # 1. A flipped byte.
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x01
        path_a.write_bytes(bytes(flipped))
        response = service.client.get(url_a, headers=service.admin)
        assert response.status_code == 500
        assert response.json()["err_code"] == "OBJECT_INTEGRITY"
        assert speech[:64] not in response.content
        # 2. Truncated.
        path_a.write_bytes(original[:-100])
        assert service.client.get(url_a, headers=service.admin).status_code == 500
        # 3. Swapped: b's ciphertext under a's id (same organization, same key).
        path_a.write_bytes(path_b.read_bytes())
        assert service.client.get(url_a, headers=service.admin).status_code == 500
        report = mip("store", "verify", "--json")
        assert report.exit_code == 1
        summary = orjson.loads(report.stdout)
        assert (summary["failed"], summary["verified"]) == (1, 3)
        path_a.write_bytes(original)
        assert service.client.get(url_a, headers=service.admin).content == speech
        # 4. A wrong key: the organization's wrapped key replaced by another organization's.
        other = make_tenant(service.db, name="Other key", scopes=["admin"])
        service.keep("t-c", speech, tenant=other)
        with service.db.session() as session:
            keys = {k.organization_id: k for k in session.scalars(select(DataKey))}
            keys[org].wrapped_key = keys[other.org_id].wrapped_key
        service.store.cache.clear()
        assert service.client.get(url_b, headers=service.admin).status_code == 500

    def test_crash_between_blob_and_catalog_leaves_an_orphan_verify_reports(
        self, service: Service, cli_env: Settings, speech: bytes
    ) -> None:
        from app.samples.service import candidate_for, keep_for

        service.record("crash")
        factory = service.app.state.sessionmaker
        session = factory()
        try:
            entry = candidate_for(session, project_id=service.tenant.project_id, request_id="crash")
            keep_for(session, service.store, entry, audio=speech, response=b"{}")
        finally:
            session.rollback()  # the process died before the commit
            session.close()
        assert service.object_count() == 2
        listed = service.client.get("/v1/governance/samples", headers=service.admin).json()
        assert listed["total"] == 0
        result = mip("store", "verify", "--json")
        assert result.exit_code == 1
        report = orjson.loads(result.stdout)
        assert (report["samples"], report["orphans"], report["failed"]) == (0, 2, 0)
        # The request was never marked kept, so the gateway's retry stores it.
        assert service.post_sample("crash", speech).status_code == 201


class TestLabelCsv:
    def test_bulk_labels_all_or_nothing(
        self, service: Service, cli_env: Settings, speech: bytes, tmp_path: Path
    ) -> None:
        one, two = (service.keep(f"c-{i}", speech)["id"] for i in range(2))
        bad = tmp_path / "bad.csv"
        bad.write_text(f"sample_id,accent,sex\n{one},us,female\n{two},martian,male\n")
        result = mip("store", "label", "--csv", str(bad))
        assert result.exit_code != 0
        # `mip` (app.cli.main) prints this message; the typer app raises it.
        assert "line 3" in str(result.exception)
        good = tmp_path / "good.csv"
        good.write_text(f"sample_id,accent,sex\n{one},us,female\n{two},rp,\n")
        result = mip("store", "label", "--csv", str(good), "--json")
        assert orjson.loads(result.stdout) == {"labeled": 2}
        with service.db.session() as session:
            rows = {str(s.id): s for s in session.scalars(select(Sample))}
        assert (rows[one].accent, rows[one].sex, rows[one].sex_source) == (
            "us",
            "female",
            "labeled",
        )
        assert (rows[two].accent, rows[two].sex) == ("rp", None)
