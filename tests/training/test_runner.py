"""The real executor's failure paths: the decrypted scratch copy goes however a job ends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from app.kit.settings import BUNDLED_MODELS_DIR, Settings
from app.tables import ModelVersion, Sample, TrainingJob, TrainingSetSample
from app.training import service as training
from app.training.queue import work_once
from app.training.runner import execute_job
from app.training.schemas import JobParams
from tests.conftest import Database, make_staff_key
from tests.datasets.conftest import Catalog
from tests.samples.conftest import Service, build_service, make_settings


@pytest.fixture
def service(db: Database, tmp_path: Path) -> Iterator[Service]:
    settings = make_settings(db, tmp_path, bundled_models_dir=BUNDLED_MODELS_DIR)
    yield from build_service(db, settings)


@pytest.fixture
def queued(service: Service) -> uuid.UUID:
    """A job on a 12-sample set (reference transcripts, train and eval splits)."""
    catalog = Catalog(service=service, dataops=make_staff_key(service.db, "dataops"))
    for i in range(12):
        sample_id = catalog.keep(f"r-{i}", index=i, accent="us")
        service.client.put(
            f"/v1/governance/samples/{sample_id}/reference",
            json={"transcript": "the patient needs rest"},
            headers=catalog.dataops,
        )
    built = catalog.build(name="runner", eval_fraction=0.4, reference_only=True)
    assert built.status_code == 201, built.text
    assert built.json()["eval_count"] > 0
    with service.db.session() as session:
        job = training.submit_job(
            session,
            service.app.state.settings,
            base_model="general",
            training_set="runner",
            hyperparameters=JobParams(minutes=0.1, mix_utterances=0),
            actor="test",
        )
        return job.id


def run(service: Service) -> TrainingJob:
    settings: Settings = service.app.state.settings
    ran = work_once(
        service.app.state.sessionmaker,
        service.store,
        settings,
        worker_id="runner-test",
        execute=execute_job,
    )
    assert ran is not None
    with service.db.session() as session:
        job: TrainingJob | None = session.get(TrainingJob, ran)
        assert job is not None
        session.expunge(job)
    return job


def scratch_is_empty(service: Service) -> bool:
    scratch: Path = service.app.state.settings.effective_scratch_dir
    return not scratch.exists() or not any(scratch.iterdir())


class TestExecutorEndings:
    def test_a_vanished_sample_fails_the_job_and_removes_the_scratch_copy(
        self, service: Service, queued: uuid.UUID
    ) -> None:
        with service.db.session() as session:
            victim = session.scalars(select(TrainingSetSample.sample_id)).first()
            session.execute(delete(Sample).where(Sample.id == victim))
        job = run(service)
        assert job.status == "failed"
        assert job.error is not None
        assert f"Sample {victim} of the training set is gone" in job.error
        assert scratch_is_empty(service)
        with service.db.session() as session:
            assert session.scalars(select(ModelVersion)).first() is None

    def test_a_cancel_during_decryption_cancels_and_removes_the_scratch_copy(
        self, service: Service, queued: uuid.UUID
    ) -> None:
        # The cancel arrives between the claim and the first check (set while still queued,
        # so the job starts and meets it at once).
        with service.db.session() as session:
            session.execute(
                update(TrainingJob).where(TrainingJob.id == queued).values(cancel_requested=True)
            )
        job = run(service)
        assert job.status == "cancelled"
        assert scratch_is_empty(service)
