"""Submitting, listing, reading and cancelling training jobs: the service and its HTTP API."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import update

from app.datasets.service import TrainingSetNotFound, TrainingSetTainted
from app.kit.settings import Settings
from app.tables.training import TrainingJob
from app.training import service
from app.training.schemas import JobParams
from tests.conftest import Database
from tests.training.conftest import (
    BASE_NAME,
    Api,
    Packages,
    add_training_set,
    audit_actions,
    load_job,
    log_lines,
    queue_job,
)

JOBS = "/v1/governance/training-jobs"


def set_status(db: Database, job_id: uuid.UUID, status: str, **values: Any) -> None:
    with db.session() as session:
        session.execute(
            update(TrainingJob).where(TrainingJob.id == job_id).values(status=status, **values)
        )


class TestSubmit:
    def test_queued_with_the_base_uuid_the_set_and_defaults(
        self, db: Database, settings: Settings, packages: Packages
    ) -> None:
        training_set = add_training_set(db, version=1)
        add_training_set(db, version=2)
        job = load_job(db, queue_job(db, settings, training_set="medical-en:1", minutes=5))
        assert job.status == "queued"
        assert job.base_model == packages.base.uuid  # "general" is an alias of the base
        assert job.training_set_id == training_set.id
        assert job.max_attempts == settings.job_max_attempts
        assert job.attempts == 0
        assert job.hyperparameters == JobParams(minutes=5).model_dump(mode="json")
        assert job.hyperparameters["mix_fraction"] == 0.3
        assert job.hyperparameters["mix_utterances"] == 1000
        assert audit_actions(db, job.id) == ["training_job.submitted"]
        assert "training set medical-en:1" in log_lines(db, job.id)[0]

    def test_a_bare_name_takes_the_latest_version(self, db: Database, settings: Settings) -> None:
        add_training_set(db, version=1)
        latest = add_training_set(db, version=2)
        assert load_job(db, queue_job(db, settings)).training_set_id == latest.id

    def test_unknown_base_model_is_a_400_naming_it(self, db: Database, settings: Settings) -> None:
        add_training_set(db)
        with db.session() as session, pytest.raises(service.UnknownBaseModel) as caught:
            service.submit_job(
                session,
                settings,
                base_model="nova-42",
                training_set="medical-en",
                hyperparameters=JobParams(),
                actor="test",
            )
        assert "nova-42" in caught.value.message
        assert caught.value.status_code == 400

    def test_unknown_and_tainted_sets_are_refused(self, db: Database, settings: Settings) -> None:
        add_training_set(db, "erased", status="tainted")
        with pytest.raises(TrainingSetNotFound):
            queue_job(db, settings, training_set="nope")
        with pytest.raises(TrainingSetTainted):
            queue_job(db, settings, training_set="erased")
        with db.session() as session:
            assert service.list_jobs(session)[1] == 0  # nothing half-written

    def test_a_set_without_an_evaluation_split_is_refused(
        self, db: Database, settings: Settings
    ) -> None:
        add_training_set(db, "no-eval", eval_count=0)
        with pytest.raises(service.InvalidJob, match="evaluation samples"):
            queue_job(db, settings, training_set="no-eval")

    @pytest.mark.parametrize(
        "params",
        [
            {"minutes": 0},
            {"minutes": 1441},
            {"mix_fraction": 0.95},
            {"device": "tpu"},
            {"lr": -1},
            {"name": "Has Spaces"},
            {"epochs": 3},
        ],
    )
    def test_bad_hyperparameters_name_the_field(self, params: dict[str, Any]) -> None:
        with pytest.raises(service.InvalidJob) as caught:
            service.parse_params(params)
        assert next(iter(params)) in caught.value.message


class TestListShowCancel:
    def test_list_filters_by_status_newest_first(self, db: Database, settings: Settings) -> None:
        add_training_set(db)
        ids = [queue_job(db, settings) for _ in range(4)]
        set_status(db, ids[0], "succeeded")
        set_status(db, ids[1], "running", worker_id="w")
        with db.session() as session:
            rows, total = service.list_jobs(session)
            queued, queued_total = service.list_jobs(session, status="queued")
            with pytest.raises(service.InvalidJob):
                service.list_jobs(session, status="done")
        assert total == 4
        assert [r.id for r in rows] == ids[::-1]
        assert (queued_total, {r.id for r in queued}) == (2, {ids[2], ids[3]})

    def test_cancel_queued_is_immediate(self, db: Database, settings: Settings) -> None:
        add_training_set(db)
        job_id = queue_job(db, settings)
        with db.session() as session:
            job = service.cancel_job(session, job_id, actor="alice")
        assert (job.status, job.finished_at is not None) == ("cancelled", True)
        assert audit_actions(db, job_id)[-1] == "training_job.cancelled"

    def test_cancel_running_asks_the_executor(self, db: Database, settings: Settings) -> None:
        add_training_set(db)
        job_id = queue_job(db, settings)
        set_status(db, job_id, "running", worker_id="w-1")
        with db.session() as session:
            job = service.cancel_job(session, job_id, actor="alice")
        assert (job.status, job.cancel_requested) == ("running", True)
        assert "cancel requested by alice" in log_lines(db, job_id)[-1]

    @pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
    def test_cancel_finished_is_a_conflict(
        self, db: Database, settings: Settings, status: str
    ) -> None:
        add_training_set(db)
        job_id = queue_job(db, settings)
        set_status(db, job_id, status)
        with db.session() as session, pytest.raises(service.JobFinished, match=status):
            service.cancel_job(session, job_id, actor="alice")
        assert load_job(db, job_id).status == status

    def test_unknown_job(self, db: Database) -> None:
        with db.session() as session, pytest.raises(service.TrainingJobNotFound):
            service.get_job_or_raise(session, uuid.uuid4())


class TestHttp:
    def test_submit_show_logs_list_cancel(self, db: Database, api: Api, packages: Packages) -> None:
        add_training_set(db)
        body = {"base_model": BASE_NAME, "training_set": "medical-en"}
        created = api.post(JOBS, {**body, "hyperparameters": {"minutes": 3, "seed": 7}})
        assert created.status_code == 201, created.text
        job = created.json()
        assert (job["status"], job["base_model"]) == ("queued", packages.base.uuid)
        assert job["hyperparameters"]["seed"] == 7
        shown = api.get(f"{JOBS}/{job['id']}", headers=api.auditor)
        assert shown.json()["id"] == job["id"]
        logs = api.get(f"{JOBS}/{job['id']}/logs", headers=api.auditor).json()
        assert len(logs["lines"]) == 1
        assert (
            api.get(f"{JOBS}/{job['id']}/logs", after_id=logs["lines"][0]["id"]).json()["lines"]
            == []
        )
        listed = api.get(JOBS, status="queued").json()
        assert [j["id"] for j in listed["jobs"]] == [job["id"]]
        cancelled = api.post(f"{JOBS}/{job['id']}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        again = api.post(f"{JOBS}/{job['id']}/cancel")
        assert again.status_code == 409
        assert set(again.json()) >= {"err_code", "err_msg", "request_id"}

    @pytest.mark.parametrize(
        ("body", "status", "words"),
        [
            ({"base_model": "nope"}, 400, "nope"),
            ({"training_set": "missing"}, 404, "missing"),
            ({"training_set": "erased"}, 409, "tainted"),
            ({"training_set": "medical-en:x"}, 400, "NAME:VERSION"),
            ({"hyperparameters": {"minutes": -1}}, 400, "minutes"),
            ({"hyperparameters": {"mix_fraction": 2}}, 400, "mix_fraction"),
            ({"hyperparameters": {"bogus": 1}}, 400, "bogus"),
            ({"extra": True}, 400, "extra"),
        ],
    )
    def test_bad_input_is_a_4xx_with_the_error_body(
        self, db: Database, api: Api, body: dict[str, Any], status: int, words: str
    ) -> None:
        add_training_set(db)
        add_training_set(db, "erased", status="tainted")
        full = {"base_model": "general", "training_set": "medical-en", **body}
        response = api.post(JOBS, full)
        assert response.status_code == status, response.text
        assert words in response.json()["err_msg"]
        assert api.get(JOBS).json()["total"] == 0

    def test_roles(self, db: Database, api: Api) -> None:
        add_training_set(db)
        body = {"base_model": "general", "training_set": "medical-en"}
        for headers in (api.auditor, api.billing, api.project):
            assert api.post(JOBS, body, headers=headers).status_code == 403
        job_id = api.post(JOBS, body).json()["id"]
        assert api.post(f"{JOBS}/{job_id}/cancel", headers=api.auditor).status_code == 403
        assert api.get(JOBS, headers=api.billing).status_code == 403
        assert api.get(f"{JOBS}/{job_id}", headers=api.project).status_code == 403
        assert api.client.get(JOBS).status_code == 401

    def test_unknown_ids_are_404(self, api: Api) -> None:
        missing = uuid.uuid4()
        assert api.get(f"{JOBS}/{missing}").status_code == 404
        assert api.get(f"{JOBS}/{missing}/logs").status_code == 404
        assert api.post(f"{JOBS}/{missing}/cancel").status_code == 404
        assert api.get(f"{JOBS}/not-a-uuid").status_code == 400

    def test_every_endpoint_is_documented(self, api: Api) -> None:
        paths = api.client.get("/openapi.json").json()["paths"]
        for path, method in [
            (JOBS, "post"),
            (JOBS, "get"),
            (f"{JOBS}/{{job_id}}", "get"),
            (f"{JOBS}/{{job_id}}/logs", "get"),
            (f"{JOBS}/{{job_id}}/cancel", "post"),
            ("/v1/governance/model-versions", "get"),
            ("/v1/governance/model-versions/{ref}", "get"),
            ("/v1/governance/model-versions/{ref}/promote", "post"),
            ("/v1/governance/model-versions/{ref}/demote", "post"),
            ("/v1/governance/model-versions/{ref}/reject", "post"),
        ]:
            operation = paths[path][method]
            assert {"403", "404"} <= set(operation["responses"]), (path, method)
            ok = operation["responses"].get("200") or operation["responses"].get("201")
            assert ok is not None
            assert "$ref" in str(ok["content"]["application/json"]["schema"])
