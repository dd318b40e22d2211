"""An erasure takes the training-set reports with it, on both blob backends (local and S3)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from app.datasets import reports
from app.tables import AuditEntry, TrainingSet
from tests.conftest import make_staff_key, make_tenant
from tests.datasets.conftest import Catalog
from tests.samples.conftest import Service


class TestReportsGoWithTheErasure:
    def test_organization_erasure_shreds_the_report_key_and_deletes_the_objects(
        self, any_service: Service
    ) -> None:
        catalog = Catalog(service=any_service, dataops=make_staff_key(any_service.db, "dataops"))
        leaving = make_tenant(any_service.db, name="Leaving", scopes=["admin"])
        for i, accent in enumerate(("us", "rp", "scottish")):
            catalog.keep(f"stay-{i}", index=i, accent=accent)
        catalog.keep("leave-0", index=3, accent="rp", tenant=leaving)
        built = catalog.build(eval_fraction=0.0)
        assert built.status_code == 201, built.text
        set_id = built.json()["id"]
        prefix = reports.report_prefix(uuid.UUID(set_id))
        stored = [info.key for info in any_service.store.blobs.list(prefix)]
        assert len(stored) == len(reports.REPORT_FILES)
        assert all(key.endswith(reports.SEALED_SUFFIX) for key in stored)

        response = any_service.client.post(
            "/v1/governance/erasure-requests",
            json={"scope": "organization", "organization_id": str(leaving.org_id)},
            headers=any_service.admin,
        )
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "done"

        assert list(any_service.store.blobs.list(prefix)) == []
        gone = any_service.client.get(
            f"/v1/governance/datasets/{set_id}/reports/quarantine.csv", headers=catalog.dataops
        )
        assert gone.status_code == 410
        assert gone.json()["err_code"] == "GONE"
        assert f"erasure {response.json()['id']}" in gone.json()["err_msg"]
        with any_service.db.session() as session:
            row = session.get(TrainingSet, uuid.UUID(set_id))
            assert row is not None
            assert (row.status, row.report_key_wrapped) == ("tainted", None)
            event = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "training_sets.tainted")
            ).one()
        assert event.organization_id == leaving.org_id
        assert event.details["reports_removed"] == [set_id]
        assert event.details["report_objects_deleted"] == len(reports.REPORT_FILES)
