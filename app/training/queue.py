"""The job queue: claim a job (never twice), heart-beat it, take it back from dead workers, run it.

    job_id = work_once(factory, store, settings, worker_id=default_worker_id(), execute=execute)
    # None: nothing was queued; otherwise the job ran to succeeded / failed / cancelled

The executor (what a job does: decrypt the set, fine-tune, evaluate, package) is a function
``Executor = Callable[[JobContext], JobOutcome]``. It reports through its context, which
writes in short transactions of its own; it raises :class:`JobCancelled` when
``ctx.cancelled()`` turns true, and any other exception fails the job with ``"Type: message"``.
Retries happen only for dead workers (:func:`reap_stale`): an executor that raised would raise
again.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

import orjson
from sqlalchemy.orm import Session, sessionmaker

from app.audit.service import record_event
from app.custom import service as custom_service
from app.datasets.service import check_trainable
from app.kit.db import session_scope, utcnow
from app.kit.settings import Settings
from app.samples.runtime import SampleStore
from app.tables.datasets import TrainingSet
from app.tables.training import TrainingJob
from app.training import repository

log = logging.getLogger("mip.training")

LOG_LEVELS = ("debug", "info", "warning", "error")
# ctx.cancelled() is called from training loops: one read a second is plenty.
CANCEL_POLL_SECONDS = 1.0
_TARGET = "training_job"


class JobCancelled(Exception):
    """Raised by an executor that saw ``ctx.cancelled()``: the job ends ``cancelled``."""


class JobLost(Exception):
    """The job was taken from this worker (missed heartbeats); whatever it did is abandoned."""


@dataclass
class JobOutcome:
    """What a successful executor returns: ``result`` (e.g. the candidate model version) and
    ``metrics`` ({"candidate": {...}, "base": {...}}, see :mod:`app.training.promotion`)."""

    result: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobContext:
    """What an executor gets: the job, its own session factory, settings and the store."""

    job_id: uuid.UUID
    worker_id: str
    factory: sessionmaker[Session]
    settings: Settings
    store: SampleStore
    lost: threading.Event = field(default_factory=threading.Event)  # set by the heartbeat
    stopping: threading.Event = field(default_factory=threading.Event)  # the worker shuts down
    cancel_seen: bool = field(default=False, init=False)  # a cancel was requested
    _checked_at: float = field(default=-math.inf, init=False)

    def progress(self, fraction: float, metrics: dict[str, float] | None = None) -> None:
        """Record progress (0..1) and the latest training figures; raises JobLost if taken."""
        values: dict[str, Any] = {"progress": min(max(float(fraction), 0.0), 1.0)}
        if metrics is not None:
            values["metrics"] = _plain(metrics)
        with session_scope(self.factory) as session:
            owned = repository.update_owned(
                session, self.job_id, worker_id=self.worker_id, values=values
            )
        if not owned:
            self.lost.set()
            raise JobLost(f"Training job {self.job_id} is no longer owned by {self.worker_id}.")

    def log(self, message: str, *, level: str = "info") -> None:
        """Append a line to the job's log (``mip train logs``)."""
        if level not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
        with session_scope(self.factory) as session:
            repository.add_log(session, self.job_id, level=level, message=message)

    def cancelled(self) -> bool:
        """True once a cancel was requested, the job was lost, or the worker is stopping."""
        if self.lost.is_set() or self.stopping.is_set():
            return True
        return self.cancel_requested()

    def cancel_requested(self, *, fresh: bool = False) -> bool:
        """Whether someone asked to cancel the job (read at most once a second unless fresh)."""
        now = time.monotonic()
        if not self.cancel_seen and (fresh or now - self._checked_at >= CANCEL_POLL_SECONDS):
            self._checked_at = now
            with session_scope(self.factory) as session:
                self.cancel_seen = repository.cancel_requested(session, self.job_id)
        return self.cancel_seen


Executor = Callable[[JobContext], JobOutcome]


def default_worker_id() -> str:
    """``host:pid:random``: unique per worker process, readable in logs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _plain(value: Any) -> Any:
    # JSON columns take plain values only; numpy or torch scalars would fail the final write.
    return orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY))


def _skip_locked(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# --- claiming and heartbeats ---


def claim_next(factory: sessionmaker[Session], *, worker_id: str) -> uuid.UUID | None:
    """Claim the oldest queued job for ``worker_id``, or None when nothing is queued.

    PostgreSQL locks the candidate row (``FOR UPDATE SKIP LOCKED``: concurrent workers take
    different jobs without waiting); on both backends the claim itself is an ``UPDATE … WHERE
    status = 'queued'`` that must change exactly one row, so a job is never claimed twice.
    """
    with session_scope(factory) as session:
        skip_locked = _skip_locked(session)
        while True:
            job_id = repository.oldest_queued_id(session, skip_locked=skip_locked)
            if job_id is None:
                return None
            if repository.claim(session, job_id, worker_id=worker_id, now=utcnow()):
                break
            # SQLite only: another worker claimed it between our read and our write.
        job = repository.get_job(session, job_id)
        if job is None:  # cannot happen: claimed in this transaction
            raise RuntimeError(f"claimed job {job_id} vanished")
        session.refresh(job)
        repository.add_log(
            session,
            job_id,
            level="info",
            message=f"claimed by worker {worker_id} (attempt {job.attempts} of {job.max_attempts})",
        )
        record_event(
            session,
            actor=f"worker:{worker_id}",
            action="training_job.started",
            target_type=_TARGET,
            target_id=str(job_id),
            details={"worker_id": worker_id, "attempt": job.attempts},
        )
        return job_id


def send_heartbeat(
    factory: sessionmaker[Session],
    *,
    job_id: uuid.UUID,
    worker_id: str,
    now: dt.datetime | None = None,
) -> bool:
    """Refresh the job's heartbeat; False (and nothing written) if ``worker_id`` lost it."""
    with session_scope(factory) as session:
        return repository.beat(session, job_id, worker_id=worker_id, now=now or utcnow())


class Heartbeat:
    """A thread that heart-beats the job every ``interval`` seconds while the executor runs.

    When the job turns out to be taken (requeued by a reaper, claimed by another worker) it
    sets ``lost`` and stops: the executor's next ``cancelled()`` is true and its result is
    abandoned. A failing database is logged and retried at the next beat.
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        job_id: uuid.UUID,
        worker_id: str,
        interval: float,
        lost: threading.Event,
    ) -> None:
        self.factory, self.job_id, self.worker_id = factory, job_id, worker_id
        self.interval = interval
        self.lost = lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                owned = send_heartbeat(self.factory, job_id=self.job_id, worker_id=self.worker_id)
            except Exception:
                log.exception("heartbeat failed", extra={"fields": {"job_id": str(self.job_id)}})
                continue
            if not owned:
                log.warning(
                    "training job taken from this worker",
                    extra={"fields": {"job_id": str(self.job_id), "worker_id": self.worker_id}},
                )
                self.lost.set()
                return


# --- dead workers ---


@dataclass(frozen=True)
class ReapedJob:
    job_id: uuid.UUID
    worker_id: str | None
    outcome: Literal["requeued", "failed", "cancelled"]


def reap_stale(
    factory: sessionmaker[Session],
    *,
    now: dt.datetime,
    stale_seconds: float,
    actor: str = "worker",
) -> list[ReapedJob]:
    """Take running jobs back from workers silent for ``stale_seconds``.

    Re-queued while ``attempts < max_attempts`` (a log line names the dead worker), else
    failed with the reason; a job whose cancel was requested ends cancelled. Audited.
    """
    cutoff = now - dt.timedelta(seconds=stale_seconds)
    reaped: list[ReapedJob] = []
    with session_scope(factory) as session:
        for job in repository.stale_jobs(session, cutoff=cutoff, skip_locked=_skip_locked(session)):
            silent = f"worker {job.worker_id} stopped heart-beating at {_iso(job.heartbeat_at)}"
            values: dict[str, Any]
            outcome: Literal["requeued", "failed", "cancelled"]
            if job.cancel_requested:
                outcome, message = "cancelled", f"{silent}; cancelled as requested"
                values = {"status": "cancelled", "finished_at": now}
            elif job.attempts < job.max_attempts:
                outcome = "requeued"
                message = f"{silent}; re-queued (attempt {job.attempts} of {job.max_attempts})"
                values = {"status": "queued", "worker_id": None, "heartbeat_at": None}
            else:
                outcome = "failed"
                message = f"{silent}; gave up after {job.attempts} attempts"
                values = {"status": "failed", "error": message, "finished_at": now}
            if not repository.release(session, job, cutoff=cutoff, values=values):
                continue  # it heart-beat or finished meanwhile
            if outcome != "requeued":
                custom_service.training_ended(
                    session, job.custom_model_id, job_id=job.id, job_status=outcome
                )
            repository.add_log(
                session,
                job.id,
                level="error" if outcome == "failed" else "warning",
                message=message,
            )
            record_event(
                session,
                actor=actor,
                action=f"training_job.{outcome}",
                target_type=_TARGET,
                target_id=str(job.id),
                details={"dead_worker": job.worker_id, "attempts": job.attempts, "reason": message},
            )
            log.warning(message, extra={"fields": {"job_id": str(job.id), "outcome": outcome}})
            reaped.append(ReapedJob(job.id, job.worker_id, outcome))
    return reaped


def _iso(moment: dt.datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "never"


# --- running one job ---


@dataclass(frozen=True)
class _Ending:
    kind: Literal["succeeded", "failed", "cancelled", "requeue", "lost"]
    outcome: JobOutcome | None = None
    error: str | None = None


def _check_training_set(ctx: JobContext) -> None:
    # Erasure may have tainted the set since submission: it must not feed training now.
    with session_scope(ctx.factory) as session:
        job = session.get(TrainingJob, ctx.job_id)
        set_id = job.training_set_id if job else None
        training_set = session.get(TrainingSet, set_id) if set_id is not None else None
        if training_set is not None:
            check_trainable(training_set)


def _run(ctx: JobContext, execute: Executor) -> _Ending:
    with Heartbeat(
        ctx.factory,
        job_id=ctx.job_id,
        worker_id=ctx.worker_id,
        interval=ctx.settings.job_heartbeat_seconds,
        lost=ctx.lost,
    ):
        try:
            _check_training_set(ctx)
            outcome = execute(ctx)
        except JobLost:
            return _Ending("lost")
        except JobCancelled:
            if ctx.lost.is_set():
                return _Ending("lost")
            if ctx.stopping.is_set() and not ctx.cancel_requested(fresh=True):
                return _Ending("requeue")
            return _Ending("cancelled")
        except Exception as exc:
            log.exception("training job failed", extra={"fields": {"job_id": str(ctx.job_id)}})
            return _Ending("failed", error=f"{type(exc).__name__}: {exc}"[:2000])
    if ctx.lost.is_set():
        return _Ending("lost")
    if not isinstance(outcome, JobOutcome):
        return _Ending("failed", error=f"TypeError: the executor returned {type(outcome).__name__}")
    return _Ending("succeeded", outcome=outcome)


def _final_values(ending: _Ending, now: dt.datetime) -> tuple[dict[str, Any], str]:
    if ending.kind == "succeeded":
        assert ending.outcome is not None  # set with kind "succeeded"
        values = {
            "status": "succeeded",
            "progress": 1.0,
            "result": _plain(ending.outcome.result),
            "metrics": _plain(ending.outcome.metrics),
            "finished_at": now,
        }
        return values, "succeeded"
    if ending.kind == "failed":
        return {"status": "failed", "error": ending.error, "finished_at": now}, "failed"
    if ending.kind == "cancelled":
        return {"status": "cancelled", "finished_at": now}, "cancelled"
    # A worker shutting down hands the job back without spending one of its attempts.
    values = {
        "status": "queued",
        "worker_id": None,
        "heartbeat_at": None,
        "attempts": TrainingJob.attempts - 1,
    }
    return values, "requeued"


def _finish(ctx: JobContext, ending: _Ending) -> None:
    worker = ctx.worker_id
    if ending.kind == "lost":
        log.warning(
            "training job lost; result abandoned", extra={"fields": {"job": str(ctx.job_id)}}
        )
        ctx.log(
            f"worker {worker} lost the job (missed heartbeats); its work is abandoned",
            level="warning",
        )
        return
    values, status = _final_values(ending, utcnow())
    with session_scope(ctx.factory) as session:
        if not repository.update_owned(session, ctx.job_id, worker_id=worker, values=values):
            log.warning("training job lost at the end", extra={"fields": {"job": str(ctx.job_id)}})
            return
        message = {
            "succeeded": f"succeeded on worker {worker}",
            "failed": f"failed on worker {worker}: {ending.error}",
            "cancelled": f"cancelled on worker {worker}",
            "requeued": f"worker {worker} is shutting down; re-queued",
        }[status]
        level = {"failed": "error", "requeued": "warning"}.get(status, "info")
        repository.add_log(session, ctx.job_id, level=level, message=message)
        if status in ("failed", "cancelled"):
            job = repository.get_job(session, ctx.job_id)
            custom_service.training_ended(
                session, job.custom_model_id if job else None, job_id=ctx.job_id, job_status=status
            )
        details: dict[str, Any] = {"worker_id": worker}
        if ending.error:
            details["error"] = ending.error
        if ending.outcome is not None:
            details["result"] = ending.outcome.result
        record_event(
            session,
            actor=f"worker:{worker}",
            action=f"training_job.{status}",
            target_type=_TARGET,
            target_id=str(ctx.job_id),
            details=details,
        )


def work_once(
    factory: sessionmaker[Session],
    store: SampleStore,
    settings: Settings,
    *,
    worker_id: str,
    execute: Executor,
    stopping: threading.Event | None = None,
) -> uuid.UUID | None:
    """Reap dead workers' jobs, claim one and run it to its end; None when none was queued."""
    reap_stale(
        factory, now=utcnow(), stale_seconds=settings.job_stale_seconds, actor=f"worker:{worker_id}"
    )
    job_id = claim_next(factory, worker_id=worker_id)
    if job_id is None:
        return None
    ctx = JobContext(
        job_id=job_id,
        worker_id=worker_id,
        factory=factory,
        settings=settings,
        store=store,
        stopping=stopping or threading.Event(),
    )
    log.info("training job started", extra={"fields": {"job_id": str(job_id)}})
    _finish(ctx, _run(ctx, execute))
    return job_id
