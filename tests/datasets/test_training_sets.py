"""Training sets from the sample store: validation, balancing, lineage, tainting, HTTP and CLI."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select, update

from app.datasets import service as datasets
from app.erasure import service as lifecycle
from app.kit.settings import Settings
from app.tables import AuditEntry, Organization, Sample, TrainingSet, TrainingSetSample
from tests.conftest import make_staff_key, make_tenant
from tests.datasets.conftest import Catalog
from tests.samples.conftest import mip

PNG = b"\x89PNG\r\n\x1a\n"


def members(catalog: Catalog, set_id: str) -> dict[str, str]:
    response = catalog.service.client.get(
        f"/v1/governance/datasets/{set_id}/samples", headers=catalog.dataops
    )
    assert response.status_code == 200, response.text
    return {m["sample_id"]: m["split"] for m in response.json()["samples"]}


def durations(catalog: Catalog) -> dict[str, float]:
    with catalog.service.db.session() as session:
        return {str(s.id): s.duration_seconds for s in session.scalars(select(Sample))}


def accent_hours(catalog: Catalog, ids: set[str]) -> dict[str, float]:
    seconds = durations(catalog)
    out: dict[str, float] = {}
    for accent, sample_ids in catalog.ids.items():
        out[accent] = sum(seconds[i] for i in sample_ids if i in ids) / 3600
    return out


class TestBuild:
    def test_builds_a_versioned_set_with_lineage_and_reports(self, catalog: Catalog) -> None:
        response = catalog.build(eval_fraction=0.0)
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["name"], body["version"], body["status"]) == ("medical-en", 1, "ready")
        held = members(catalog, body["id"])
        assert set(held) == {i for ids in catalog.ids.values() for i in ids}
        assert body["sample_count"] == 24
        assert body["validation"]["statistics"]["quarantined_rows"] == 0
        assert len(body["manifest_hash"]) == 64
        assert body["params"]["balance"]["dimensions"] == ["accent"]

        again = catalog.build(eval_fraction=0.0).json()
        assert again["version"] == 2
        assert again["manifest_hash"] == body["manifest_hash"]  # same content, same hash

        client = catalog.service.client
        page = client.get(
            "/v1/governance/datasets/medical-en:1/reports/validation.html", headers=catalog.dataops
        )
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "the patient needs rest" not in page.text  # ids and counts, never transcripts
        for plot in ("distributions.png", "deficit.png"):
            png = client.get(
                f"/v1/governance/datasets/{body['id']}/reports/{plot}", headers=catalog.dataops
            )
            assert png.status_code == 200
            assert png.content.startswith(PNG)

        with catalog.service.db.session() as session:
            event = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "training_set.built")
            ).first()
        assert event is not None
        assert event.details["samples"] == 24

    def test_balances_accents_within_the_hours_budget(self, catalog: Catalog) -> None:
        seconds = durations(catalog)
        rp_hours = sum(seconds[i] for i in catalog.ids["rp"]) / 3600
        budget = 3 * rp_hours * 0.9  # every accent can fill its third
        body = catalog.build(hours=budget, eval_fraction=0.0).json()
        selected = set(members(catalog, body["id"]))
        hours = accent_hours(catalog, selected)
        assert sum(hours.values()) <= budget + 1e-9
        for accent in ("us", "rp", "scottish"):
            assert hours[accent] == pytest.approx(budget / 3, rel=0.35), hours
        assert len(selected & set(catalog.ids["us"])) < 16  # the skew is gone

    def test_deficit_is_reported_when_a_group_lacks_hours(self, catalog: Catalog) -> None:
        total = sum(durations(catalog).values()) / 3600
        body = catalog.build(hours=total, eval_fraction=0.0).json()
        deficit = {d["value"]: d for d in body["balance"]["deficit"]}
        assert {"rp", "scottish"} <= set(deficit)
        assert deficit["rp"]["missing_hours"] > 0

    def test_holds_out_an_evaluation_split_by_stable_hash(self, catalog: Catalog) -> None:
        first = catalog.build(eval_fraction=0.3).json()
        second = catalog.build(eval_fraction=0.3).json()
        assert first["eval_count"] > 0
        assert first["sample_count"] > 0
        split_a, split_b = members(catalog, first["id"]), members(catalog, second["id"])
        assert split_a == split_b

    def test_reference_transcripts_are_preferred_and_can_be_required(
        self, catalog: Catalog
    ) -> None:
        sample_id = catalog.ids["rp"][0]
        client = catalog.service.client
        response = client.put(
            f"/v1/governance/samples/{sample_id}/reference",
            json={"transcript": "The patient needs REST."},
            headers=catalog.dataops,
        )
        assert response.status_code == 200, response.text
        assert response.json()["has_reference"] is True
        read = client.get(f"/v1/governance/samples/{sample_id}/reference", headers=catalog.dataops)
        assert read.text == "The patient needs REST."
        only = catalog.build(reference_only=True, eval_fraction=0.0).json()
        assert set(members(catalog, only["id"])) == {sample_id}
        # The reference is stored encrypted: its text is in no blob.
        root = catalog.service.blob_root
        assert root is not None
        for path in root.rglob("*"):
            if path.is_file():
                assert b"needs REST" not in path.read_bytes()


class TestValidation:
    def test_bad_rows_are_quarantined_with_the_expectation_they_failed(
        self, catalog: Catalog
    ) -> None:
        dup = catalog.keep("dup", index=0, accent="us")  # same audio as us-0
        digits = catalog.keep("digits", index=40, accent="rp", text="take 2 tablets")
        other = make_tenant(catalog.service.db, name="Opted Out Org", scopes=["admin"])
        opted_out = catalog.keep("optout", index=41, accent="rp", tenant=other)
        with catalog.service.db.session() as session:
            session.execute(
                update(Organization)
                .where(Organization.id == other.org_id)
                .values(contract_opt_out=True)
            )
        expired = catalog.keep("expired", index=42, accent="scottish")
        with catalog.service.db.session() as session:
            session.execute(
                update(Sample)
                .where(Sample.id == uuid.UUID(expired))
                .values(retention_until=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
            )
        body = catalog.build(eval_fraction=0.0).json()
        held = set(members(catalog, body["id"]))
        assert not held & {dup, digits, opted_out, expired}
        assert catalog.ids["us"][0] in held  # the first copy of the audio stays
        failed = {e["column"]: e for e in body["validation"]["expectations"] if not e["success"]}
        assert {"consent", "transcript", "audio_copy"} <= set(failed)  # audio_copy: 2nd copy
        assert body["validation"]["statistics"]["quarantined_rows"] == 4
        quarantine = catalog.service.client.get(
            f"/v1/governance/datasets/{body['id']}/reports/quarantine.csv",
            headers=catalog.dataops,
        )
        assert quarantine.status_code == 200
        lines = quarantine.text.strip().splitlines()
        assert lines[0].startswith("sample_id,organization_id,consent")
        assert {line.split(",")[0] for line in lines[1:]} == {dup, digits, opted_out, expired}
        assert "take 2 tablets" not in quarantine.text  # ids and labels, never transcripts


class TestTainting:
    def test_erasure_taints_every_set_holding_the_organization(self, catalog: Catalog) -> None:
        service = catalog.service
        other = make_tenant(service.db, name="Other Org", scopes=["admin"])
        theirs = catalog.keep("theirs", index=50, accent="rp", tenant=other)
        with_them = catalog.build(name="with-them", eval_fraction=0.0).json()
        assert theirs in members(catalog, with_them["id"])
        without = catalog.build(
            name="without-them", organization_ids=[str(service.tenant.org_id)]
        ).json()
        response = service.client.post(
            "/v1/governance/erasure-requests",
            json={"scope": "organization", "organization_id": str(other.org_id)},
            headers=service.admin,
        )
        assert response.status_code == 201, response.text
        statuses = {
            b["name"]: b["status"]
            for b in service.client.get("/v1/governance/datasets", headers=catalog.dataops).json()[
                "training_sets"
            ]
        }
        assert statuses == {"with-them": "tainted", "without-them": "ready"}
        shown = service.client.get(
            f"/v1/governance/datasets/{with_them['id']}", headers=catalog.dataops
        ).json()
        assert shown["taint_reason"].startswith("erasure ")
        # Lineage survives the erasure: the set still says which samples it held.
        assert theirs in members(catalog, with_them["id"])
        with service.db.session() as session:
            event = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "training_sets.tainted")
            ).one()
            assert event.details["training_sets"] == [with_them["id"]]
            row = session.get(TrainingSet, uuid.UUID(with_them["id"]))
            assert row is not None
            with pytest.raises(datasets.TrainingSetTainted):
                datasets.check_trainable(row)
            clean = session.get(TrainingSet, uuid.UUID(without["id"]))
            assert clean is not None
            datasets.check_trainable(clean)

    def test_a_build_during_an_open_erasure_leaves_that_organization_out(
        self, catalog: Catalog
    ) -> None:
        service = catalog.service
        other = make_tenant(service.db, name="Leaving Org", scopes=["admin"])
        theirs = catalog.keep("leaving", index=60, accent="rp", tenant=other)
        with service.db.session() as session:  # requested, not yet carried out
            lifecycle.request_erasure(
                session, organization_id=other.org_id, project_id=None, actor="test"
            )
        response = catalog.build(eval_fraction=0.0)
        assert response.status_code == 201, response.text
        body = response.json()
        assert theirs not in members(catalog, body["id"])
        consent = next(e for e in body["validation"]["expectations"] if e["column"] == "consent")
        assert consent["examples"] == [theirs]

    def test_retention_purge_taints_sets_holding_purged_samples(self, catalog: Catalog) -> None:
        body = catalog.build(eval_fraction=0.0).json()
        victim = catalog.ids["scottish"][0]
        service = catalog.service
        with service.db.session() as session:
            session.execute(
                update(Sample)
                .where(Sample.id == uuid.UUID(victim))
                .values(retention_until=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
            )
        report = lifecycle.purge_expired(
            service.app.state.sessionmaker, service.store, actor="test"
        )
        assert report.purged == 1
        with service.db.session() as session:
            row = session.get(TrainingSet, uuid.UUID(body["id"]))
            assert row is not None
            assert row.status == "tainted"
            kept = session.scalars(
                select(TrainingSetSample.sample_id).where(
                    TrainingSetSample.training_set_id == row.id
                )
            ).all()
        assert uuid.UUID(victim) in kept


class TestBadInput:
    @pytest.mark.parametrize(
        ("body", "status", "fragment"),
        [
            ({"name": "Bad Name!"}, 400, "name must be"),
            ({"balance": ["shoe_size"]}, 400, "shoe_size"),
            ({"hours": 0}, 400, "hours"),
            ({"eval_fraction": 0.7}, 400, "eval_fraction"),
            ({"target": {"targets": {"accent": {"us": 0.9}}}}, 400, ""),
            ({"surprise": 1}, 400, "surprise"),
        ],
    )
    def test_malformed_builds_are_400_and_write_nothing(
        self, catalog: Catalog, body: dict[str, Any], status: int, fragment: str
    ) -> None:
        response = catalog.build(**body)
        assert response.status_code == status, response.text
        error = response.json()
        assert set(error) == {"err_code", "err_msg", "request_id"}
        assert fragment in error["err_msg"]
        with catalog.service.db.session() as session:
            assert session.scalars(select(TrainingSet)).first() is None

    def test_nothing_to_build_is_409(self, catalog: Catalog) -> None:
        response = catalog.build(domain="legal")
        assert response.status_code == 409
        assert "nothing to build" in response.json()["err_msg"]

    def test_roles_and_unknown_sets(self, catalog: Catalog) -> None:
        client = catalog.service.client
        billing = make_staff_key(catalog.service.db, "billing")
        auditor = make_staff_key(catalog.service.db, "auditor")
        assert catalog.build().status_code == 201
        refused = client.post(
            "/v1/governance/datasets",
            json={"name": "x", "hours": 1},
            headers=billing,
        )
        assert refused.status_code == 403
        assert (
            client.post(
                "/v1/governance/datasets", json={"name": "x", "hours": 1}, headers=auditor
            ).status_code
            == 403
        )
        assert client.get("/v1/governance/datasets/medical-en", headers=auditor).status_code == 200
        tenant_key = catalog.service.tenant.headers
        assert client.get("/v1/governance/datasets", headers=tenant_key).status_code == 403
        for ref in (str(uuid.uuid4()), "nope", "medical-en:9"):
            missing = client.get(f"/v1/governance/datasets/{ref}", headers=catalog.dataops)
            assert missing.status_code == 404, ref
        assert (
            client.get("/v1/governance/datasets/medical-en:x", headers=catalog.dataops).status_code
            == 400
        )
        assert (
            client.get(
                "/v1/governance/datasets/medical-en/reports/secrets.txt", headers=catalog.dataops
            ).status_code
            == 404
        )


class TestCli:
    def test_build_list_show_report(
        self, catalog: Catalog, cli_env: Settings, tmp_path: Path
    ) -> None:
        target = tmp_path / "target.json"
        target.write_text(orjson.dumps({"targets": {"accent": "uniform"}}).decode())
        result = mip(
            "curate", "build", "--name", "cli-set", "--balance", "accent,sex",
            "--hours", "0.01", "--target", str(target), "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        built = orjson.loads(result.stdout)
        assert built["params"]["balance"]["dimensions"] == ["accent", "sex"]
        listed = orjson.loads(mip("curate", "list", "--json").stdout)
        assert [s["name"] for s in listed] == ["cli-set"]
        shown = orjson.loads(mip("curate", "show", "cli-set:1", "--samples").stdout)
        assert len(shown["samples"]) == built["sample_count"] + built["eval_count"]
        out = tmp_path / "reports"
        assert mip("curate", "report", "cli-set", "--out", str(out)).exit_code == 0
        assert (out / "distributions.png").read_bytes().startswith(PNG)
        bad = mip("curate", "build", "--name", "cli-set", "--balance", "nope", "--hours", "1")
        assert bad.exit_code != 0
        assert "nope" in bad.output

    def test_validate_and_balance_a_manifest_file(self, tmp_path: Path) -> None:
        rows: list[dict[str, Any]] = [
            {
                "sample_id": f"s{i}",
                "duration": 2.0,
                "transcript": "hello there",
                "accent": "us" if i < 8 else "rp",
                "consent": "opted_in",
            }
            for i in range(10)
        ]
        rows.append(
            {"sample_id": "bad", "duration": 99.0, "transcript": "", "consent": "opted_out"}
        )
        manifest = tmp_path / "pool.jsonl"
        manifest.write_text("\n".join(orjson.dumps(r).decode() for r in rows) + "\n")
        result = mip("curate", "validate", str(manifest), "--out", str(tmp_path / "v"))
        assert result.exit_code == 1  # one row failed
        report = orjson.loads((tmp_path / "v" / "validation.json").read_bytes())
        assert report["statistics"]["quarantined_rows"] == 1
        result = mip(
            "curate", "balance", str(manifest), "--out", str(tmp_path / "b"),
            "--balance", "accent", "--hours", str(8 / 3600),
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert (tmp_path / "b" / "distributions.png").read_bytes().startswith(PNG)
        broken = tmp_path / "broken.jsonl"
        broken.write_text('{"sample_id": "a", "duration": 1.0}\nnot json\n')
        result = mip("curate", "validate", str(broken), "--out", str(tmp_path / "x"))
        assert result.exit_code == 2
        assert "broken.jsonl:2" in result.output
