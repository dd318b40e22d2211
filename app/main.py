"""The FastAPI application factory: every router is mounted here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.audit.endpoints import router as audit_router
from app.billing.endpoints import MAX_INVOICE_BYTES
from app.billing.endpoints import router as billing_router
from app.compliance.audit_endpoints import router as audit_signing_router
from app.compliance.checkpoints import open_signing_key
from app.compliance.endpoints import router as compliance_router
from app.custom import serving as custom_serving
from app.custom.contrib_endpoints import router as custom_contrib_router
from app.custom.endpoints import PAIR_BODY_LIMIT as CUSTOM_PAIR_BODY_LIMIT
from app.custom.endpoints import router as custom_router
from app.custom.version_endpoints import router as custom_versions_router
from app.datasets.endpoints import router as datasets_router
from app.engine.endpoints import router as models_router
from app.engine.registry import open_model_registry
from app.erasure.endpoints import router as erasure_router
from app.health.endpoints import router as health_router
from app.kit.db import create_db_engine, make_sessionmaker
from app.kit.guard import GuardRules, RequestGuardMiddleware
from app.kit.heap import settle_heap
from app.kit.http import RequestContextMiddleware, install_error_handlers
from app.kit.limits import ActiveRequests
from app.kit.logging import configure_logging
from app.kit.settings import Settings, get_settings
from app.ledger.endpoints import MAX_BODY_BYTES as LEDGER_MAX_BODY_BYTES
from app.ledger.endpoints import register_schemas as register_ledger_schemas
from app.ledger.endpoints import router as ledger_router
from app.listen.endpoints import router as listen_router
from app.listen.service import ListenRuntime, TranscriberCache
from app.pricing.endpoints import router as pricing_router
from app.samples.endpoints import router as samples_router
from app.samples.runtime import open_sample_store
from app.samples.service import MAX_TRANSCRIPT_BYTES
from app.sampling.endpoints import router as sampling_router
from app.sampling.policy import load_sampling_config
from app.tenancy.auth import authenticate
from app.tenancy.endpoints import router as tenancy_router
from app.training.custom_endpoints import router as custom_training_router
from app.training.endpoints import jobs_router as training_jobs_router
from app.training.endpoints import versions_router as model_versions_router
from app.usage.endpoints import router as usage_router

API_DESCRIPTION = """
Model Improvement Program governance. Two families of endpoints:

* **Deepgram-compatible** (`/v1/projects/…`): authenticate with `Authorization: Token <key>`;
  the official Deepgram SDKs work unchanged.
* **Governance** (`/v1/governance/…`): ledger ingest, billing reports, the encrypted sample
  store (samples, sampling rates, erasure requests), audit; staff keys with roles `admin`,
  `billing`, `dataops`, `auditor`.

Every error is `{"err_code", "err_msg", "request_id"}`; every response has `dg-request-id`.
"""


def guard_rules(settings: Settings) -> GuardRules:
    """The request guard's rules: body limits per route (the default for JSON bodies)."""
    return GuardRules(
        default_limit=settings.max_body_bytes,
        limits={
            ("POST", "/v1/listen"): settings.listen_max_audio_bytes,
            ("POST", "/v1/governance/samples"): (
                settings.max_sample_bytes + MAX_TRANSCRIPT_BYTES + 65536
            ),
            ("POST", "/v1/governance/ledger/events"): LEDGER_MAX_BODY_BYTES,
            ("POST", "/v1/governance/custom-models/{model_id}/data"): CUSTOM_PAIR_BODY_LIMIT,
            (
                "POST",
                "/v1/projects/{project_id}/custom-models/{model_id}/data",
            ): CUSTOM_PAIR_BODY_LIMIT,
            (
                "POST",
                "/v1/governance/custom-models/{model_id}/data/archive",
            ): settings.custom_max_archive_bytes,
            (
                "PATCH",
                "/v1/governance/custom-models/{model_id}/uploads/{upload_id}",
            ): settings.custom_max_archive_bytes,
            ("POST", "/v1/governance/billing/reconciliations"): MAX_INVOICE_BYTES,
        },
        idle_seconds=settings.body_idle_seconds,
        min_bytes_per_second=settings.body_min_bytes_per_second,
        # Every refused /v1/listen request is a ledger row: it sees the guard's refusals.
        records_failures=frozenset({("POST", "/v1/listen")}),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, json_output=settings.log_json)
    engine = create_db_engine(settings.effective_database_url)
    registry = open_model_registry(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        registry.start()  # loads every package before the first request, then polls
        settle_heap()  # everything is loaded by now: take it out of the collector's walks
        yield
        registry.stop()
        engine.dispose()

    app = FastAPI(
        title="MIP Governance Service",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    # The kit's dependencies ask tenancy (which owns the keys) who is calling through this.
    app.state.authenticate = authenticate
    app.state.store = open_sample_store(settings)
    app.state.signer = open_signing_key(settings)
    app.state.sampling = load_sampling_config(settings)
    app.state.models = registry
    app.state.visible_restricted = custom_serving.visible_to
    app.state.listen = ListenRuntime(
        models=registry,
        transcribers=TranscriberCache(),
        store=app.state.store,
        sampling=app.state.sampling,
        max_audio_seconds=settings.listen_max_audio_seconds,
    )
    # Checking training pairs (decoding, the base model's scoring) is the heavy part of an
    # upload: a few at once, and one reseller or organization holds at most its share.
    app.state.custom_upload_limiter = ActiveRequests(
        settings.custom_max_active_uploads, settings.custom_max_active_uploads_per_tenant
    )
    app.state.listen_limiter = ActiveRequests(
        settings.max_active_requests, settings.effective_max_active_requests_per_org
    )
    # Inner first: the guard's refusals pass through the request context (id, access log).
    app.add_middleware(RequestGuardMiddleware, rules=guard_rules(settings))
    app.add_middleware(RequestContextMiddleware)
    install_error_handlers(app)
    for router in (
        health_router,
        ledger_router,
        pricing_router,
        audit_router,
        audit_signing_router,
        compliance_router,
        tenancy_router,
        usage_router,
        billing_router,
        samples_router,
        sampling_router,
        erasure_router,
        datasets_router,
        training_jobs_router,
        model_versions_router,
        models_router,
        custom_router,
        custom_versions_router,
        custom_training_router,
        custom_contrib_router,
        listen_router,
    ):
        app.include_router(router)
    register_ledger_schemas(app)
    return app
