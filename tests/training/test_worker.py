"""``mip worker`` runs queued training jobs after its periodic tasks (unless ``--no-jobs``)."""

from __future__ import annotations

import threading

from app.kit.settings import Settings
from app.training.queue import JobContext, JobOutcome
from app.worker import run_worker
from tests.conftest import Database
from tests.training.conftest import add_training_set, load_job, log_lines, queue_job


def execute(ctx: JobContext) -> JobOutcome:
    ctx.log("hello from the worker")
    return JobOutcome(result={"model_version": "none"}, metrics={})


def run_once(*, jobs: bool) -> None:
    # A thread of its own: run_worker installs signal handlers only on the main thread.
    thread = threading.Thread(
        target=run_worker, kwargs={"interval": 0.1, "once": True, "jobs": jobs, "execute": execute}
    )
    thread.start()
    thread.join(timeout=60)
    if thread.is_alive():
        raise TimeoutError("the worker did not finish its round")


class TestWorkerRunsJobs:
    def test_a_queued_job_runs_to_its_end(self, db: Database, cli_env: Settings) -> None:
        add_training_set(db)
        job_id = queue_job(db, cli_env)
        run_once(jobs=True)
        job = load_job(db, job_id)
        assert (job.status, job.result) == ("succeeded", {"model_version": "none"})
        assert job.worker_id is not None
        assert "hello from the worker" in log_lines(db, job_id)

    def test_no_jobs_leaves_the_queue_alone(self, db: Database, cli_env: Settings) -> None:
        add_training_set(db)
        job_id = queue_job(db, cli_env)
        run_once(jobs=False)
        assert load_job(db, job_id).status == "queued"


class TestEvery:
    """The seal check's own clock: due at once, then once per interval (a clock list stands
    in for time)."""

    def test_due_first_then_after_each_interval(self) -> None:
        from app.worker import Every

        moments = iter([0.0, 10.0, 3599.0, 3600.0, 3601.0, 7200.5])
        every = Every(3600.0, clock=lambda: next(moments))
        assert [every.due() for _ in range(6)] == [True, False, False, True, False, True]
