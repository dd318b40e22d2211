"""``mip worker``: periodic background tasks, one unit of work each.

Tasks: verify the audit chain and log the result (an alert hook for operators); purge
samples past their retention deadline. Later issues add training jobs here.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from app.audit.service import verify_chain
from app.kit.db import create_db_engine, make_sessionmaker, session_scope
from app.kit.logging import configure_logging
from app.kit.settings import get_settings
from app.samples.lifecycle import purge_expired
from app.samples.runtime import SampleStore, open_sample_store

log = logging.getLogger("mip.worker")


def check_audit_chain(session: Session) -> None:
    report = verify_chain(session)
    fields = {"entries": report.entries, "ok": report.ok, "first_bad_seq": report.first_bad_seq}
    if report.ok:
        log.info("audit chain verified", extra={"fields": fields})
    else:
        log.error("audit chain broken", extra={"fields": {**fields, "reason": report.reason}})


TASKS: tuple[Callable[[Session], None], ...] = (check_audit_chain,)


def purge_expired_samples(factory: sessionmaker[Session], store: SampleStore) -> None:
    report = purge_expired(factory, store, actor="worker")
    if report.purged:
        log.info("expired samples purged", extra={"fields": {"purged": report.purged}})


def run_worker(*, interval: float, once: bool = False) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, json_output=settings.log_json)
    factory = make_sessionmaker(create_db_engine(settings.effective_database_url))
    store = open_sample_store(settings)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    log.info("worker started", extra={"fields": {"interval_s": interval}})
    while not stop.is_set():
        for task in TASKS:
            try:
                with session_scope(factory) as session:
                    task(session)
            except Exception:
                log.exception("task failed", extra={"fields": {"task": task.__name__}})
        try:
            purge_expired_samples(factory, store)
        except Exception:
            log.exception("task failed", extra={"fields": {"task": "purge_expired_samples"}})
        if once:
            break
        stop.wait(interval)
    log.info("worker stopped")
