"""Claiming (never twice), heartbeats, dead workers, and running a job through an executor.

The executors here are small functions written against the executor contract (that is what
the contract is for); the queue, database and audit log are the real ones.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.kit.db import utcnow
from app.kit.settings import Settings
from app.samples.runtime import SampleStore
from app.tables.datasets import TrainingSet
from app.tables.training import TrainingJob
from app.training import service
from app.training.queue import (
    JobCancelled,
    JobContext,
    JobOutcome,
    claim_next,
    reap_stale,
    send_heartbeat,
    work_once,
)
from tests.conftest import Database
from tests.training.conftest import (
    add_training_set,
    audit_actions,
    load_job,
    log_lines,
    queue_job,
)

METRICS = {"candidate": {"wer": 0.2, "utterances": 10}, "base": {"wer": 0.3, "utterances": 10}}


@pytest.fixture
def queued(db: Database, settings: Settings) -> uuid.UUID:
    add_training_set(db)
    return queue_job(db, settings)


def silence(db: Database, job_id: uuid.UUID, *, seconds: float = 3600) -> None:
    """What a dead worker leaves: a heartbeat that stopped long ago."""
    past = utcnow() - dt.timedelta(seconds=seconds)
    with db.session() as session:
        session.execute(
            update(TrainingJob).where(TrainingJob.id == job_id).values(heartbeat_at=past)
        )


def reap(factory: sessionmaker[Session], settings: Settings) -> list[str]:
    reaped = reap_stale(factory, now=utcnow(), stale_seconds=settings.job_stale_seconds)
    return [r.outcome for r in reaped]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.01)


class TestClaim:
    def test_claims_the_oldest_and_marks_it_running(
        self, db: Database, settings: Settings, factory: sessionmaker[Session]
    ) -> None:
        add_training_set(db)
        first, second = queue_job(db, settings), queue_job(db, settings)
        assert claim_next(factory, worker_id="w-1") == first
        job = load_job(db, first)
        assert (job.status, job.worker_id, job.attempts) == ("running", "w-1", 1)
        assert job.started_at is not None
        assert job.heartbeat_at == job.started_at
        assert claim_next(factory, worker_id="w-2") == second
        assert claim_next(factory, worker_id="w-3") is None
        assert audit_actions(db, first) == ["training_job.submitted", "training_job.started"]

    def test_concurrent_workers_claim_every_job_exactly_once(
        self, db: Database, settings: Settings, factory: sessionmaker[Session]
    ) -> None:
        add_training_set(db)
        jobs = {queue_job(db, settings) for _ in range(24)}
        claimed: list[uuid.UUID] = []
        errors: list[BaseException] = []
        start = threading.Barrier(6)

        def worker(name: str) -> None:
            try:
                start.wait()
                while (job_id := claim_next(factory, worker_id=name)) is not None:
                    claimed.append(job_id)
            except BaseException as exc:  # surfaced below: a thread cannot fail the test
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(f"w-{i}",)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert Counter(claimed) == Counter(jobs)  # all of them, none twice
        attempts = {load_job(db, j).attempts for j in jobs}
        assert attempts == {1}


class TestDeadWorkers:
    def test_requeued_then_failed_after_max_attempts(
        self, db: Database, settings: Settings, factory: sessionmaker[Session], queued: uuid.UUID
    ) -> None:
        claim_next(factory, worker_id="w-dead")
        assert reap(factory, settings) == []  # fresh heartbeat: left alone
        silence(db, queued)
        assert reap(factory, settings) == ["requeued"]
        job = load_job(db, queued)
        assert (job.status, job.worker_id, job.attempts) == ("queued", None, 1)
        assert "worker w-dead stopped heart-beating at" in log_lines(db, queued)[-1]

        assert claim_next(factory, worker_id="w-dead-too") == queued
        silence(db, queued)
        assert reap(factory, settings) == ["failed"]
        job = load_job(db, queued)
        assert job.status == "failed"
        assert job.finished_at is not None
        assert job.error is not None
        assert job.error.startswith("worker w-dead-too stopped heart-beating at ")
        assert job.error.endswith("gave up after 2 attempts")
        assert audit_actions(db, queued)[-3:] == [
            "training_job.requeued",
            "training_job.started",
            "training_job.failed",
        ]

    def test_a_dead_workers_cancelled_job_ends_cancelled(
        self, db: Database, settings: Settings, factory: sessionmaker[Session], queued: uuid.UUID
    ) -> None:
        claim_next(factory, worker_id="w-dead")
        with db.session() as session:
            service.cancel_job(session, queued, actor="alice")
        silence(db, queued)
        assert reap(factory, settings) == ["cancelled"]
        assert load_job(db, queued).status == "cancelled"

    def test_heartbeats_of_a_worker_that_lost_the_job_are_ignored(
        self, db: Database, settings: Settings, factory: sessionmaker[Session], queued: uuid.UUID
    ) -> None:
        claim_next(factory, worker_id="w-slow")
        assert send_heartbeat(factory, job_id=queued, worker_id="w-slow")
        silence(db, queued)
        reap(factory, settings)
        claim_next(factory, worker_id="w-new")
        owner_beat = load_job(db, queued).heartbeat_at
        late = utcnow() + dt.timedelta(minutes=5)
        assert not send_heartbeat(factory, job_id=queued, worker_id="w-slow", now=late)
        job = load_job(db, queued)
        assert (job.worker_id, job.heartbeat_at) == ("w-new", owner_beat)


class TestWorkOnce:
    def test_success_records_result_metrics_progress_and_heartbeats(
        self,
        db: Database,
        settings: Settings,
        factory: sessionmaker[Session],
        store: SampleStore,
        queued: uuid.UUID,
    ) -> None:
        def execute(ctx: JobContext) -> JobOutcome:
            ctx.log("fine-tuning")
            ctx.progress(0.5, {"loss": 1.25, "step": 10})
            running = load_job(db, ctx.job_id)
            assert (running.progress, running.metrics) == (0.5, {"loss": 1.25, "step": 10})
            time.sleep(0.3)  # several heartbeats
            assert not ctx.cancelled()
            return JobOutcome(result={"model_version": "v-1"}, metrics=METRICS)

        assert work_once(factory, store, settings, worker_id="w-1", execute=execute) == queued
        job = load_job(db, queued)
        assert (job.status, job.progress, job.error) == ("succeeded", 1.0, None)
        assert (job.result, job.metrics) == ({"model_version": "v-1"}, METRICS)
        assert job.started_at is not None
        assert job.heartbeat_at is not None
        assert job.heartbeat_at > job.started_at
        lines = log_lines(db, queued)
        assert lines[-2:] == ["fine-tuning", "succeeded on worker w-1"]
        assert audit_actions(db, queued)[-1] == "training_job.succeeded"

    def test_nothing_queued(
        self, settings: Settings, factory: sessionmaker[Session], store: SampleStore
    ) -> None:
        def execute(ctx: JobContext) -> JobOutcome:
            raise AssertionError("no job to run")

        assert work_once(factory, store, settings, worker_id="w", execute=execute) is None

    def test_an_executor_exception_fails_the_job_without_retry(
        self,
        db: Database,
        settings: Settings,
        factory: sessionmaker[Session],
        store: SampleStore,
        queued: uuid.UUID,
    ) -> None:
        def execute(ctx: JobContext) -> JobOutcome:
            raise ValueError("the training set decrypts to nothing")

        work_once(factory, store, settings, worker_id="w-1", execute=execute)
        job = load_job(db, queued)
        assert (job.status, job.attempts) == ("failed", 1)
        assert job.error == "ValueError: the training set decrypts to nothing"
        assert log_lines(db, queued)[-1] == f"failed on worker w-1: {job.error}"
        assert audit_actions(db, queued)[-1] == "training_job.failed"
        assert claim_next(factory, worker_id="w-2") is None

    def test_cancel_reaches_the_executor_through_its_context(
        self,
        db: Database,
        settings: Settings,
        factory: sessionmaker[Session],
        store: SampleStore,
        queued: uuid.UUID,
    ) -> None:
        def execute(ctx: JobContext) -> JobOutcome:
            assert not ctx.cancelled()
            with db.session() as session:  # someone presses cancel
                service.cancel_job(session, ctx.job_id, actor="alice")
            wait_until(ctx.cancelled)
            raise JobCancelled

        work_once(factory, store, settings, worker_id="w-1", execute=execute)
        job = load_job(db, queued)
        assert (job.status, job.cancel_requested) == ("cancelled", True)
        assert job.finished_at is not None
        assert job.result is None
        assert log_lines(db, queued)[-1] == "cancelled on worker w-1"

    def test_a_job_taken_away_mid_run_is_abandoned(
        self,
        db: Database,
        settings: Settings,
        factory: sessionmaker[Session],
        store: SampleStore,
        queued: uuid.UUID,
    ) -> None:
        def execute(ctx: JobContext) -> JobOutcome:
            # The worker stalls: it is declared dead and another one takes the job. (Its
            # heartbeat thread may beat between silence and reap: then try again.)
            def declare_dead() -> bool:
                silence(db, ctx.job_id)
                return reap(factory, settings) == ["requeued"]

            wait_until(declare_dead)
            # SKIP LOCKED passes over the row while w-1's heartbeat is writing it: retry.
            claimed: list[uuid.UUID | None] = []

            def claim_as_w2() -> bool:
                claimed.append(claim_next(factory, worker_id="w-2"))
                return claimed[-1] is not None

            wait_until(claim_as_w2)
            assert claimed[-1] == ctx.job_id
            wait_until(ctx.cancelled)  # its own heartbeat finds the job gone
            return JobOutcome(result={"stale": True}, metrics=METRICS)

        work_once(factory, store, settings, worker_id="w-1", execute=execute)
        job = load_job(db, queued)
        assert (job.status, job.worker_id, job.attempts) == ("running", "w-2", 2)
        assert job.result is None
        assert "worker w-1 lost the job" in log_lines(db, queued)[-1]

    def test_a_stopping_worker_hands_the_job_back(
        self,
        db: Database,
        settings: Settings,
        factory: sessionmaker[Session],
        store: SampleStore,
        queued: uuid.UUID,
    ) -> None:
        stopping = threading.Event()

        def execute(ctx: JobContext) -> JobOutcome:
            stopping.set()  # SIGTERM arrives
            if ctx.cancelled():
                raise JobCancelled
            raise AssertionError("cancelled() must turn true when the worker stops")

        work_once(factory, store, settings, worker_id="w-1", execute=execute, stopping=stopping)
        job = load_job(db, queued)
        assert (job.status, job.worker_id, job.attempts) == ("queued", None, 0)
        assert log_lines(db, queued)[-1] == "worker w-1 is shutting down; re-queued"

    def test_a_set_tainted_after_submission_never_trains(
        self,
        db: Database,
        settings: Settings,
        factory: sessionmaker[Session],
        store: SampleStore,
        queued: uuid.UUID,
    ) -> None:
        with db.session() as session:
            session.execute(update(TrainingSet).values(status="tainted", taint_reason="erasure"))
        ran: list[uuid.UUID] = []

        def execute(ctx: JobContext) -> JobOutcome:
            ran.append(ctx.job_id)
            return JobOutcome()

        work_once(factory, store, settings, worker_id="w-1", execute=execute)
        job = load_job(db, queued)
        assert ran == []
        assert job.status == "failed"
        assert job.error is not None
        assert job.error.startswith("TrainingSetTainted: ")

    def test_log_levels_are_checked(
        self, settings: Settings, factory: sessionmaker[Session], store: SampleStore
    ) -> None:
        ctx = JobContext(uuid.uuid4(), "w", factory, settings, store)
        with pytest.raises(ValueError, match="log level"):
            ctx.log("x", level="loud")
