"""``mip worker``: periodic background tasks, one unit of work each.

Tasks: verify the audit chain and the sealed billing periods and log the results (an alert
hook for operators); check the signed checkpoints and sign a new one (hourly by default);
purge samples past their retention deadline; flag model versions trained
on tainted training sets; then run one queued training job, if any (taking jobs back from dead
workers first). A worker that just ran a job looks for the next one at once.

    run_worker(interval=60.0)            # mip worker
    run_worker(interval=60.0, jobs=False)  # mip worker --no-jobs: periodic tasks only
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import cast

from sqlalchemy.orm import Session, sessionmaker

from app.audit.service import verify_chain
from app.compliance.checkpoints import (
    ChainNotSignable,
    create_checkpoint,
    open_signing_key,
    verify_checkpoints,
)
from app.erasure.service import purge_expired
from app.kit.crypto.signing import SigningKey
from app.kit.db import create_db_engine, make_sessionmaker, session_scope, utcnow
from app.kit.logging import configure_logging
from app.kit.settings import Settings, get_settings
from app.ledger.seals import verify_seals
from app.samples.runtime import SampleStore, open_sample_store
from app.training.promotion import flag_tainted_versions
from app.training.queue import Executor, default_worker_id, work_once

log = logging.getLogger("mip.worker")


def check_audit_chain(session: Session) -> None:
    report = verify_chain(session)
    fields = {"entries": report.entries, "ok": report.ok, "first_bad_seq": report.first_bad_seq}
    if report.ok:
        log.info("audit chain verified", extra={"fields": fields})
    else:
        log.error("audit chain broken", extra={"fields": {**fields, "reason": report.reason}})


def check_sealed_periods(session: Session) -> None:
    checks = verify_seals(session)
    broken = [check.period for check in checks if not check.ok]
    fields = {"periods": len(checks), "broken": broken}
    if broken:
        log.error("sealed billing periods changed", extra={"fields": fields})
    else:
        log.info("sealed billing periods verified", extra={"fields": fields})


TASKS: tuple[Callable[[Session], None], ...] = (check_audit_chain,)


class Every:
    """Due at the first call, then once ``seconds`` have passed since it was last due.

    Re-hashing every closed month reads the whole ledger of those months; the worker loops
    every minute and again at once after a training job, so the seal check runs on a clock of
    its own (``MIP_WORKER_SEAL_CHECK_INTERVAL_SECONDS``), not on every loop.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last < self._seconds:
            return False
        self._last = now
        return True


def sign_checkpoint(factory: sessionmaker[Session], store: SampleStore, signer: SigningKey) -> None:
    """Check the checkpoints and anchors so far, then sign the current head."""
    with session_scope(factory) as session:
        status = verify_checkpoints(session, store, [signer.public_key])
        if not status.ok:
            log.error(
                "signed checkpoints do not verify",
                extra={"fields": {"problems": status.problems[:20]}},
            )
    try:
        with session_scope(factory) as session:
            entry = create_checkpoint(session, store, signer, actor="worker")
            log.info(
                "audit checkpoint signed",
                extra={"fields": {"seq": entry.seq, "key_id": signer.key_id}},
            )
    except ChainNotSignable as error:
        log.error("audit checkpoint refused", extra={"fields": {"reason": error.message}})


def purge_expired_samples(factory: sessionmaker[Session], store: SampleStore) -> None:
    report = purge_expired(factory, store, actor="worker")
    if report.purged:
        log.info("expired samples purged", extra={"fields": {"purged": report.purged}})


def flag_tainted_models(
    factory: sessionmaker[Session], store: SampleStore, settings: Settings
) -> None:
    with session_scope(factory) as session:
        flagged = flag_tainted_versions(session, store, settings, actor="worker")
        if flagged:
            log.warning(
                "model versions trained on tainted sets flagged",
                extra={"fields": {"versions": [str(v.id) for v in flagged]}},
            )


# A received upload is read right after its last PATCH is answered; one still unread after
# this long lost its server (a restart, a crash) and the worker reads it.
UPLOAD_VALIDATION_STALE_SECONDS = 300.0


def resume_upload_validations(
    factory: sessionmaker[Session],
    store: SampleStore,
    settings: Settings,
    *,
    stale_seconds: float = UPLOAD_VALIDATION_STALE_SECONDS,
) -> int:
    """Read the custom-model uploads whose server stopped before reading them."""
    from app.custom import uploads

    with session_scope(factory) as session:
        cutoff = utcnow() - dt.timedelta(seconds=stale_seconds)
        stale = uploads.stale_validations(session, older_than=cutoff)
    if not stale:
        return 0
    scorers = uploads.ScorerCache(settings)
    for upload_id in stale:
        outcome = uploads.validate_upload(
            factory, store, upload_id, scorer=scorers.for_upload(factory, upload_id), actor="worker"
        )
        log.info(
            "upload validated",
            extra={"fields": {"upload_id": str(upload_id), "status": outcome}},
        )
    return len(stale)


def load_executor() -> Executor | None:
    """The real executor, imported only when a job may run (it pulls in torch)."""
    try:
        module = importlib.import_module("app.training.runner")
    except ModuleNotFoundError as exc:
        if exc.name != "app.training.runner":
            raise
        return None
    return cast(Executor, module.execute_job)


def run_training_job(
    factory: sessionmaker[Session],
    store: SampleStore,
    settings: Settings,
    *,
    worker_id: str,
    stopping: threading.Event,
    execute: Executor | None = None,
) -> bool:
    """Run one queued training job to its end; False when none was queued."""
    execute = execute or load_executor()
    if execute is None:
        log.warning("training jobs are not run: app.training.runner is not installed")
        return False
    job_id = work_once(
        factory, store, settings, worker_id=worker_id, execute=execute, stopping=stopping
    )
    if job_id is not None:
        log.info("training job ended", extra={"fields": {"job_id": str(job_id)}})
    return job_id is not None


def run_worker(
    *, interval: float, once: bool = False, jobs: bool = True, execute: Executor | None = None
) -> None:
    """The worker loop; ``execute`` replaces the real executor (app.training.runner)."""
    settings = get_settings()
    configure_logging(settings.log_level, json_output=settings.log_json)
    engine = create_db_engine(settings.effective_database_url)
    try:
        _loop(
            make_sessionmaker(engine),
            settings,
            interval=interval,
            once=once,
            jobs=jobs,
            execute=execute,
        )
    finally:
        engine.dispose()


def _loop(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    interval: float,
    once: bool,
    jobs: bool,
    execute: Executor | None,
) -> None:
    store = open_sample_store(settings)
    worker_id = default_worker_id()
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    log.info(
        "worker started",
        extra={"fields": {"interval_s": interval, "worker_id": worker_id, "jobs": jobs}},
    )
    seal_check = Every(settings.worker_seal_check_interval_seconds)
    checkpoint = Every(settings.worker_checkpoint_interval_seconds)
    signer = open_signing_key(settings)
    while not stop.is_set():
        tasks = (*TASKS, check_sealed_periods) if seal_check.due() else TASKS
        for task in tasks:
            try:
                with session_scope(factory) as session:
                    task(session)
            except Exception:
                log.exception("task failed", extra={"fields": {"task": task.__name__}})
        if checkpoint.due():
            try:
                sign_checkpoint(factory, store, signer)
            except Exception:
                log.exception("task failed", extra={"fields": {"task": "sign_checkpoint"}})
        try:
            purge_expired_samples(factory, store)
        except Exception:
            log.exception("task failed", extra={"fields": {"task": "purge_expired_samples"}})
        try:
            flag_tainted_models(factory, store, settings)
        except Exception:
            log.exception("task failed", extra={"fields": {"task": "flag_tainted_models"}})
        try:
            resume_upload_validations(factory, store, settings)
        except Exception:
            log.exception("task failed", extra={"fields": {"task": "upload_validations"}})
        ran_job = False
        if jobs:
            try:
                # A stop signal reaches the running job through ``stopping``: it is handed
                # back to the queue instead of being killed half-way.
                ran_job = run_training_job(
                    factory, store, settings, worker_id=worker_id, stopping=stop, execute=execute
                )
            except Exception:
                log.exception("task failed", extra={"fields": {"task": "training_job"}})
        if once:
            break
        if not ran_job:
            stop.wait(interval)
    log.info("worker stopped")
