"""Erasure reaches models: a version trained on a tainted training set is flagged, never
promoted, and when served it is handled by MIP_TAINTED_MODEL_POLICY (flag, or demote to the
last clean version); each step is audited."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from app.datasets.service import taint_sets
from app.kit.settings import Settings
from app.samples.runtime import SampleStore
from app.tables.audit import AuditEntry
from app.tables.training import ModelVersion
from app.training import promotion
from tests.conftest import Database
from tests.training.conftest import BASE_NAME, Packages, add_training_set, metrics


def register_on(
    db: Database, store: SampleStore, path: Path, training_set_id: uuid.UUID
) -> ModelVersion:
    with db.session() as session:
        return promotion.register_candidate(
            session,
            store,
            package=path,
            job=None,
            training_set_id=training_set_id,
            base_model=BASE_NAME,
            metrics=metrics(),
        )


def taint(db: Database, training_set_id: uuid.UUID) -> None:
    with db.session() as session:
        taint_sets(
            session,
            [training_set_id],
            reason="erasure e-1",
            actor="test",
            organization_id=None,
            details={},
        )


def promote(db: Database, store: SampleStore, settings: Settings, version: ModelVersion) -> None:
    with db.session() as session:
        promotion.promote(session, store, settings, str(version.id), actor="alice")


def flag(db: Database, store: SampleStore, settings: Settings) -> list[str]:
    with db.session() as session:
        flagged = promotion.flag_tainted_versions(session, store, settings, actor="worker")
        return [str(v.id) for v in flagged]


def status_of(db: Database, version: ModelVersion) -> tuple[str, bool]:
    with db.session() as session:
        row = session.get(ModelVersion, version.id)
        assert row is not None
        return row.status, row.tainted_at is not None


def installed(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.effective_models_dir.glob("*.dg"))


class TestTaintedVersions:
    def test_a_candidate_on_a_tainted_set_is_never_promoted_and_is_flagged_once(
        self, db: Database, settings: Settings, store: SampleStore, packages: Packages
    ) -> None:
        training_set = add_training_set(db)
        version = register_on(db, store, packages.candidates[0], training_set.id)
        taint(db, training_set.id)
        for force in (False, True):
            with pytest.raises(promotion.TaintedVersion, match="cannot be promoted"):
                with db.session() as session:
                    promotion.promote(
                        session, store, settings, str(version.id), actor="alice", force=force
                    )
        assert flag(db, store, settings) == [str(version.id)]
        assert flag(db, store, settings) == []  # flagged once
        assert status_of(db, version) == ("candidate", True)
        with db.session() as session:
            entry = session.scalars(
                select(AuditEntry).where(AuditEntry.action == "model_version.tainted")
            ).one()
        assert entry.target_id == str(version.id)
        assert entry.details["training_set_id"] == str(training_set.id)
        assert entry.details["served"] is False
        assert "erasure e-1" in entry.details["reason"]

    def test_policy_flag_keeps_a_served_version_and_flags_it(
        self, db: Database, settings: Settings, store: SampleStore, packages: Packages
    ) -> None:
        training_set = add_training_set(db)
        version = register_on(db, store, packages.candidates[0], training_set.id)
        promote(db, store, settings, version)
        taint(db, training_set.id)
        assert flag(db, store, settings) == [str(version.id)]
        assert status_of(db, version) == ("promoted", True)
        assert installed(settings) == [version.filename]

    def test_policy_demote_puts_back_the_last_clean_version(
        self, db: Database, settings: Settings, store: SampleStore, packages: Packages
    ) -> None:
        demoting = settings.model_copy(update={"tainted_model_policy": "demote"})
        clean = register_on(db, store, packages.candidates[0], add_training_set(db, "a").id)
        tainted_set = add_training_set(db, "b")
        tainted = register_on(db, store, packages.candidates[1], tainted_set.id)
        promote(db, store, demoting, clean)
        promote(db, store, demoting, tainted)  # replaces the clean one
        taint(db, tainted_set.id)
        assert flag(db, store, demoting) == [str(tainted.id)]
        assert status_of(db, tainted) == ("demoted", True)
        assert status_of(db, clean) == ("promoted", False)
        assert installed(demoting) == [clean.filename]
        with db.session() as session:
            actions = [
                e.action
                for e in session.scalars(select(AuditEntry).order_by(AuditEntry.seq))
                if e.target_id == str(tainted.id)
            ]
        assert actions[-2:] == ["model_version.tainted", "model_version.demoted"]

    def test_a_demotion_never_puts_back_a_tainted_predecessor(
        self, db: Database, settings: Settings, store: SampleStore, packages: Packages
    ) -> None:
        old_set = add_training_set(db, "a")
        old = register_on(db, store, packages.candidates[0], old_set.id)
        new = register_on(db, store, packages.candidates[1], add_training_set(db, "b").id)
        promote(db, store, settings, old)
        promote(db, store, settings, new)
        taint(db, old_set.id)  # not flagged yet: the demotion itself looks at the set
        with db.session() as session:
            promotion.demote(session, store, settings, str(new.id), actor="alice")
        assert status_of(db, old) == ("demoted", False)
        assert installed(settings) == []  # the base model serves
