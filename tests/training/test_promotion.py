"""Model versions: next_version, the promotion policy, promote / demote / reject, and HTTP.

Promotion is checked where it matters: the real registry, scanning the real folders, serves
the promoted package (and the previous one again after a demotion).
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from app.engine.registry import ModelRegistry, version_order
from app.kit.db import utcnow
from app.kit.errors import MIPError
from app.kit.settings import Settings
from app.samples.runtime import SampleStore
from app.tables.audit import AuditEntry
from app.tables.training import ModelVersion
from app.training import promotion
from app.training.policy import policy_verdict
from app.training.promotion import next_version
from app.training.service import model_dirs
from tests.conftest import Database
from tests.training.conftest import (
    BASE_NAME,
    FAILING,
    Api,
    Packages,
    add_training_set,
    load_job,
    metrics,
    queue_job,
    register,
)

VERSIONS = "/v1/governance/model-versions"


def verdict(data: dict[str, Any]) -> dict[str, Any]:
    return policy_verdict(data, max_group_regression=0.02, min_group_utterances=5)


@pytest.fixture
def registry(settings: Settings) -> ModelRegistry:
    """The real model directory over the models folder and the bundled one."""
    return ModelRegistry(model_dirs(settings), poll_seconds=60)


def served_uuid(registry: ModelRegistry, model: str = BASE_NAME) -> str:
    registry.scan()  # what the poller does every few seconds
    return registry.resolve(model=model, language=None, version=None).manifest.uuid


def installed(settings: Settings) -> list[str]:
    folder = settings.effective_models_dir
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


class TestNextVersion:
    def test_numbers_the_day(self, db: Database, store: SampleStore, packages: Packages) -> None:
        today = utcnow().date().isoformat()
        with db.session() as session:
            assert next_version(session, "ctcconv-general", "2020-01-01.7") == f"{today}.1"
            assert next_version(session, "ctcconv-general", f"{today}.1") == f"{today}.2"
            for name, version in [("ctcconv-general", f"{today}.4"), ("other", f"{today}.9")]:
                session.add(
                    ModelVersion(
                        uuid=uuid.uuid4(),
                        name=name,
                        version=version,
                        filename="x.dg",
                        blob_key="x",
                        metrics={},
                    )
                )
            session.flush()
            new = next_version(session, "ctcconv-general", f"{today}.1")
        assert new == f"{today}.5"
        older = ["2026-11-21.1", f"{today}.4", "2020-12-31.10", f"{today}.1"]
        assert max([*older, new], key=version_order) == new


class TestPolicyVerdict:
    def test_better_overall_and_no_group_worse_passes(self) -> None:
        result = verdict(
            metrics(
                candidate_groups={"accent": {"us": (0.2, 50), "rp": (0.32, 40)}},
                base_groups={"accent": {"us": (0.3, 50), "rp": (0.30, 40)}},
            )
        )
        assert result["passed"] is True
        assert result["reasons"] == []
        deltas = {g["group"]: g["delta"] for g in result["groups"]}
        assert deltas == {"rp": 0.02, "us": -0.1}  # +0.02 is the threshold, not beyond it
        assert result["overall"] == {"candidate_wer": 0.2, "base_wer": 0.3, "delta": -0.1}

    @pytest.mark.parametrize("candidate", [0.3, 0.31])
    def test_not_better_overall_fails(self, candidate: float) -> None:
        result = verdict(metrics(candidate=candidate, base=0.3))
        assert result["passed"] is False
        assert "not better than the base" in result["reasons"][0]

    def test_one_group_regressed_beyond_the_threshold_fails(self) -> None:
        result = verdict(
            metrics(
                candidate_groups={"accent": {"scottish": (0.45, 30), "us": (0.1, 30)}},
                base_groups={"accent": {"scottish": (0.40, 30), "us": (0.3, 30)}},
            )
        )
        assert result["passed"] is False
        assert len(result["reasons"]) == 1
        assert result["reasons"][0].startswith("accent=scottish: WER 0.4500 vs base 0.4000")
        regressed = [g["group"] for g in result["groups"] if g["regressed"]]
        assert regressed == ["scottish"]

    def test_small_and_one_sided_groups_are_listed_not_judged(self) -> None:
        result = verdict(
            metrics(
                candidate_groups={"age_group": {"senior": (0.9, 4), "child": (0.5, 9)}},
                base_groups={"age_group": {"senior": (0.2, 40)}},
            )
        )
        assert result["passed"] is True
        groups = {g["group"]: g for g in result["groups"]}
        assert groups["senior"]["judged"] is False
        assert groups["senior"]["delta"] == pytest.approx(0.7)
        assert groups["child"]["judged"] is False
        assert groups["child"]["delta"] is None

    def test_missing_metrics_fail_with_a_reason(self) -> None:
        result = verdict({"candidate": {"wer": "n/a"}})
        assert result["passed"] is False
        assert "lack the overall WER" in result["reasons"][0]


class TestRegister:
    def test_keeps_the_package_and_records_a_candidate(
        self, db: Database, settings: Settings, store: SampleStore, packages: Packages
    ) -> None:
        add_training_set(db)
        job = load_job(db, queue_job(db, settings))
        path = packages.candidates[0]
        with db.session() as session:
            version = promotion.register_candidate(
                session,
                store,
                package=path,
                job=job,
                training_set_id=job.training_set_id,
                base_model=job.base_model,
                metrics=metrics(),
            )
        assert (version.status, version.filename, version.job_id) == (
            "candidate",
            path.name,
            job.id,
        )
        assert version.blob_key == f"models/candidates/{path.name}"
        assert (version.name, version.version) == (BASE_NAME, "2030-01-01.1")
        assert b"".join(store.blobs.get(version.blob_key)) == path.read_bytes()
        assert installed(settings) == []  # a candidate is not served
        with db.session() as session:
            action = session.scalar(
                select(AuditEntry.action).where(AuditEntry.target_id == str(version.id))
            )
        assert action == "model_version.registered"

    def test_refuses_duplicates_and_non_packages(
        self, db: Database, store: SampleStore, packages: Packages, tmp_path: Path
    ) -> None:
        register(db, store, packages.candidates[0])
        with pytest.raises(promotion.InvalidCandidate, match="already exists"):
            register(db, store, packages.candidates[0])
        junk = tmp_path / "junk.dg"
        junk.write_bytes(b"not a tar")
        with pytest.raises(promotion.InvalidCandidate, match="Not a model package"):
            register(db, store, junk)

    def test_found_by_id_uuid_and_name_version(
        self, db: Database, store: SampleStore, packages: Packages
    ) -> None:
        version = register(db, store, packages.candidates[0])
        with db.session() as session:
            for ref in (str(version.id), str(version.uuid), f"{BASE_NAME}:2030-01-01.1"):
                assert promotion.get_version_or_raise(session, ref).id == version.id
            for ref in (str(uuid.uuid4()), f"{BASE_NAME}:2030-01-01.9", BASE_NAME):
                with pytest.raises(promotion.ModelVersionNotFound):
                    promotion.get_version_or_raise(session, ref)


class TestPromoteDemote:
    def promote(
        self, db: Database, store: SampleStore, settings: Settings, ref: str, **kw: Any
    ) -> ModelVersion:
        with db.session() as session:
            return promotion.promote(session, store, settings, ref, actor="alice", **kw)

    def demote(
        self, db: Database, store: SampleStore, settings: Settings, ref: str
    ) -> ModelVersion:
        with db.session() as session:
            return promotion.demote(session, store, settings, ref, actor="alice")

    def test_promoted_package_is_served_and_demotion_restores_the_previous(
        self,
        db: Database,
        settings: Settings,
        store: SampleStore,
        packages: Packages,
        registry: ModelRegistry,
    ) -> None:
        first = register(db, store, packages.candidates[0])
        second = register(db, store, packages.candidates[1])
        assert served_uuid(registry) == packages.base.uuid

        self.promote(db, store, settings, str(first.id))
        assert installed(settings) == [first.filename]  # whole, no temporary file left
        installed_bytes = (settings.effective_models_dir / first.filename).read_bytes()
        assert installed_bytes == packages.candidates[0].read_bytes()
        assert served_uuid(registry) == str(first.uuid)
        assert served_uuid(registry, "general") == str(first.uuid)  # the alias follows

        promoted = self.promote(db, store, settings, f"{BASE_NAME}:2030-01-01.2")
        assert promoted.replaced_id == first.id
        assert installed(settings) == [second.filename]
        assert served_uuid(registry) == str(second.uuid)
        with db.session() as session:
            assert promotion.get_version_or_raise(session, str(first.id)).status == "demoted"

        demoted = self.demote(db, store, settings, str(second.id))
        assert demoted.status == "demoted"
        assert installed(settings) == [first.filename]
        assert served_uuid(registry) == str(first.uuid)
        with db.session() as session:
            assert promotion.get_version_or_raise(session, str(first.id)).status == "promoted"

        self.demote(db, store, settings, str(first.id))  # it replaced nothing: the base again
        assert installed(settings) == []
        assert served_uuid(registry) == packages.base.uuid

    def test_racing_promotions_leave_one_served_version(
        self, db: Database, settings: Settings, store: SampleStore, packages: Packages
    ) -> None:
        versions = [register(db, store, path) for path in packages.candidates[:2]]
        start = threading.Barrier(2)
        failures: list[BaseException] = []

        def promote(version: ModelVersion) -> None:
            start.wait()
            try:
                self.promote(db, store, settings, str(version.id))
            except (MIPError, OperationalError) as exc:  # the loser of the race, if they met
                failures.append(exc)

        threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(failures) <= 1
        with db.session() as session:
            served = session.scalars(
                select(ModelVersion).where(ModelVersion.status == "promoted")
            ).all()
            assert len(served) == 1  # never two, whoever won
            assert installed(settings) == [served[0].filename]  # and the folder agrees

    def test_one_promoted_version_per_name_is_a_database_rule(
        self, db: Database, store: SampleStore, packages: Packages
    ) -> None:
        first, second = (register(db, store, path) for path in packages.candidates[:2])
        session = db.factory()
        try:
            for version in (first, second):
                row = session.get(ModelVersion, version.id)
                assert row is not None
                row.status = "promoted"
            with pytest.raises(IntegrityError):
                session.flush()
        finally:
            session.rollback()
            session.close()

    def test_policy_refuses_unless_forced(
        self, db: Database, settings: Settings, store: SampleStore, packages: Packages
    ) -> None:
        version = register(db, store, packages.candidates[0], FAILING)
        with pytest.raises(promotion.PromotionRefused, match="not better than the base") as caught:
            self.promote(db, store, settings, str(version.id))
        assert caught.value.status_code == 409
        assert caught.value.details is not None
        assert caught.value.details["policy"]["passed"] is False
        assert installed(settings) == []
        forced = self.promote(db, store, settings, str(version.id), force=True)
        assert forced.status == "promoted"
        assert forced.policy is not None
        assert forced.policy["forced"] is True
        with db.session() as session:
            entry = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "model_version.promoted")
            ).one()
        assert entry.details["forced"] is True
        assert entry.actor == "alice"

    def test_status_rules(
        self, db: Database, settings: Settings, store: SampleStore, packages: Packages
    ) -> None:
        first = register(db, store, packages.candidates[0])
        second = register(db, store, packages.candidates[1])
        with pytest.raises(promotion.VersionStateConflict, match="not promoted"):
            self.demote(db, store, settings, str(first.id))
        self.promote(db, store, settings, str(first.id))
        with db.session() as session, pytest.raises(promotion.VersionStateConflict, match="demote"):
            promotion.reject(session, str(first.id), actor="alice")
        with db.session() as session:
            rejected = promotion.reject(session, str(second.id), actor="alice", reason="noisy")
        assert rejected.status == "rejected"
        with pytest.raises(promotion.VersionStateConflict, match="rejected"):
            self.promote(db, store, settings, str(second.id))

    def test_auto_promotion_follows_the_policy(
        self,
        db: Database,
        settings: Settings,
        store: SampleStore,
        packages: Packages,
        registry: ModelRegistry,
    ) -> None:
        good = register(db, store, packages.candidates[0])
        bad = register(db, store, packages.candidates[1], FAILING)
        with db.session() as session:
            row = promotion.get_version_or_raise(session, str(bad.id))
            refused = promotion.maybe_auto_promote(session, store, settings, row, actor="job")
            row = promotion.get_version_or_raise(session, str(good.id))
            accepted = promotion.maybe_auto_promote(session, store, settings, row, actor="job")
        assert (refused["promoted"], accepted["promoted"]) == (False, True)
        with db.session() as session:
            kept = promotion.get_version_or_raise(session, str(bad.id))
            assert kept.status == "candidate"
            assert kept.policy is not None
            assert kept.policy["passed"] is False
        assert served_uuid(registry) == str(good.uuid)


class TestHttp:
    def test_list_show_promote_demote_reject(
        self, db: Database, api: Api, store: SampleStore, packages: Packages
    ) -> None:
        weak = register(db, store, packages.candidates[0], FAILING)
        strong = register(db, store, packages.candidates[1])
        listed = api.get(VERSIONS, headers=api.auditor, status="candidate").json()
        assert {v["id"] for v in listed["versions"]} == {str(weak.id), str(strong.id)}
        shown = api.get(f"{VERSIONS}/{BASE_NAME}:2030-01-01.1", headers=api.auditor).json()
        assert shown["policy"]["passed"] is False  # computed under today's thresholds

        refused = api.post(f"{VERSIONS}/{weak.id}/promote", {"force": False})
        assert refused.status_code == 409
        assert refused.json()["details"]["policy"]["reasons"]
        promoted = api.post(f"{VERSIONS}/{strong.id}/promote")
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["status"] == "promoted"
        served = api.app.state.models.resolve(model="general", language=None, version=None)
        assert served.manifest.uuid == str(strong.uuid)  # this replica rescanned at once

        assert api.post(f"{VERSIONS}/{strong.id}/demote").json()["status"] == "demoted"
        rejected = api.post(f"{VERSIONS}/{weak.id}/reject", {"reason": "worse on scottish"})
        assert rejected.json()["status"] == "rejected"
        assert api.get(VERSIONS, status="bogus").status_code == 400

    def test_roles_and_unknown_refs(
        self, db: Database, api: Api, store: SampleStore, packages: Packages
    ) -> None:
        version = register(db, store, packages.candidates[0])
        for action in ("promote", "demote", "reject"):
            for headers in (api.auditor, api.billing, api.project):
                response = api.post(f"{VERSIONS}/{version.id}/{action}", headers=headers)
                assert response.status_code == 403
        assert api.get(VERSIONS, headers=api.billing).status_code == 403
        assert api.get(f"{VERSIONS}/{uuid.uuid4()}").status_code == 404
        assert api.post(f"{VERSIONS}/nope:1/promote").status_code == 404
        assert api.post(f"{VERSIONS}/{uuid.uuid4()}/demote").status_code == 404
