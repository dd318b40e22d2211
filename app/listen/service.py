"""/v1/listen rules: resolve the model, decode, transcribe, bill, and sample — one transaction.

Every request that reaches the service with a valid key writes its ledger row, failed ones
too (their status and whatever was known: model, duration). An opted-in request that the
sampler selects keeps its audio and transcript encrypted; an opted-out one leaves nothing
behind: its audio only ever lives in this process's memory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.orm import Session

from app.custom import serving as custom_serving
from app.engine.registry import LoadedModel, ModelRegistry, NoSuchModel
from app.kit.auth import Principal
from app.kit.errors import MIPError, PayloadTooLarge
from app.ledger.schemas import LedgerEventIn
from app.ledger.service import record_request
from app.listen.formatting import format_words, split_utterances, transcript_of
from app.listen.params import InvalidListenParameter, ListenParams, require_feature_models
from app.samples import service as samples
from app.samples.runtime import SampleStore
from app.sampling.policy import SamplingConfig
from app.tables.ledger import LedgerEntry
from asr.audio import AudioError, AudioTooLong, decode
from asr.inference import Transcriber

log = logging.getLogger("mip.listen")

UNKNOWN_MODEL = "unknown"


class UndecodableAudio(MIPError):
    status_code = 400
    err_code = "Bad Request"


class TranscriberCache:
    """One :class:`Transcriber` per loaded model (by uuid), built on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_uuid: dict[str, tuple[LoadedModel, Transcriber]] = {}

    def get(self, model: LoadedModel) -> Transcriber:
        with self._lock:
            cached = self._by_uuid.get(model.key.uuid)
            if cached is not None and cached[0] is model:
                return cached[1]
        transcriber = Transcriber(model.package)  # outside the lock: ~50 ms per model
        with self._lock:
            self._by_uuid[model.key.uuid] = (model, transcriber)
        return transcriber

    def prune(self, served_uuids: Collection[str]) -> None:
        """Forget transcribers of models no longer served (their package was removed)."""
        with self._lock:
            for uuid in set(self._by_uuid) - set(served_uuids):
                del self._by_uuid[uuid]


@dataclass
class ListenRequest:
    """What is known about one request; failures record whatever was filled in."""

    request_id: str
    principal: Principal
    created: dt.datetime
    params: ListenParams | None = None
    model: LoadedModel | None = None
    custom: custom_serving.Grant | None = None  # the custom model that served it, if one did
    duration: float = 0.0
    channels: int = 1
    features: list[str] = field(default_factory=list)


@dataclass
class ListenRuntime:
    models: ModelRegistry
    transcribers: TranscriberCache
    store: SampleStore
    sampling: SamplingConfig
    max_audio_seconds: float


def transcribe(
    session: Session, runtime: ListenRuntime, request: ListenRequest, audio: bytes
) -> dict[str, Any]:
    """The Deepgram response body for ``audio``; writes the ledger row (and maybe a sample)."""
    params = request.params
    assert params is not None  # parsed by the endpoint before the body is read
    model = _resolve(session, runtime, request, params)
    request.model = model
    require_feature_models(params.feature_models, runtime.models.feature_kinds())
    served = runtime.models.models(include_restricted=True)
    runtime.transcribers.prune([m.key.uuid for m in served])
    transcriber = runtime.transcribers.get(model)
    _check_boost(params, transcriber)
    try:
        decoded = decode(audio, max_seconds=runtime.max_audio_seconds)
    except AudioTooLong as exc:
        raise PayloadTooLarge(str(exc)) from None
    except AudioError as exc:
        raise UndecodableAudio(str(exc)) from None
    request.duration = decoded.source.duration
    request.channels = decoded.source.channels

    result = transcriber.transcribe(decoded.samples, transcriber.options(keywords=params.boost))
    body = response_body(
        request,
        model,
        params,
        audio=audio,
        words=result.hypothesis.words,
        confidence=result.confidence,
        duration=decoded.source.duration,
    )

    entry = record_request(session, ledger_event(request, status=200), sampling=runtime.sampling)
    if entry.sample_selected:
        _keep(session, runtime.store, entry=entry, audio=audio, body=body)
    return body


def _resolve(
    session: Session, runtime: ListenRuntime, request: ListenRequest, params: ListenParams
) -> LoadedModel:
    """The organization's custom model when the request names one shared with it for use (or
    names none and it has a default one), else the served model the parameters name."""
    organization_id = request.principal.organization_id
    grant = (
        None
        if organization_id is None
        else custom_serving.choose(session, organization_id, requested=params.model)
    )
    if grant is None:
        return runtime.models.resolve(
            model=params.model, language=params.language, version=params.version
        )
    model = runtime.models.restricted(grant.package_uuid)
    if model is None:  # published a moment ago, before the directory's next poll
        runtime.models.scan()
        model = runtime.models.restricted(grant.package_uuid)
    languages = {code.split("-")[0] for code in model.manifest.languages} if model else set()
    if model is None or (params.language and params.language.split("-")[0] not in languages):
        raise NoSuchModel()
    request.custom = grant
    return model


def _check_boost(params: ListenParams, transcriber: Transcriber) -> None:
    # A term the model cannot spell (digits, another script) would fail the decoder: say so.
    for term in params.boost:
        if not transcriber.tokenizer.normalize(term):
            raise InvalidListenParameter(
                f"keyterm/keywords {term!r} has no characters this model can spell."
            )


def _keep(
    session: Session,
    store: SampleStore,
    *,
    entry: LedgerEntry,
    audio: bytes,
    body: dict[str, Any],
) -> None:
    # The store's guards decide (an erasure under way refuses, for one). A sample that cannot
    # be kept must not fail the customer's request: the savepoint undoes the sample's rows,
    # the ledger row stays (selected, not kept) for audit-sampling to show.
    try:
        with session.begin_nested():
            samples.keep_for(
                session,
                store,
                entry,
                audio=audio,
                response=orjson.dumps(body),
                audio_sha256=body["metadata"]["sha256"],
            )
    except Exception as exc:
        log.warning(
            "sample not kept",
            extra={"fields": {"request_id": entry.request_id, "error": type(exc).__name__}},
        )


def record_failure(
    session: Session, runtime: ListenRuntime, request: ListenRequest, status: int
) -> None:
    """The ledger row of a request that failed with ``status`` (after a rollback)."""
    record_request(session, ledger_event(request, status=status), sampling=runtime.sampling)


def ledger_event(request: ListenRequest, *, status: int) -> LedgerEventIn:
    params = request.params
    model = request.model
    # An unparseable opt-out is recorded as opted out: the safe reading of a failed request.
    mip_opt_out = params.mip_opt_out if params is not None else True
    return LedgerEventIn(
        request_id=request.request_id,
        project_id=request.principal.project_id,
        api_key_id=request.principal.key_id,
        created=request.created,
        endpoint="/v1/listen",
        method="sync",
        model=_model_name(request),
        model_uuid=model.key.uuid if model else None,
        model_version=model.key.version if model else None,
        model_tier=custom_serving.PRICE_TIER if request.custom else "standard",
        language=params.language[:32] if params and params.language else None,
        features=params.features if params else [],
        tags=[t[:128] for t in params.tags] if params else [],
        duration=request.duration,
        channels=request.channels,
        status=status,
        mip_opt_out=mip_opt_out,
    )


def _model_name(request: ListenRequest) -> str:
    if request.custom is not None:
        return request.custom.model_name
    if request.model is not None:
        return request.model.key.name
    params = request.params
    return (params.model if params and params.model else UNKNOWN_MODEL)[:128]


def response_body(
    request: ListenRequest,
    model: LoadedModel,
    params: ListenParams,
    *,
    audio: bytes,
    words: Any,
    confidence: float,
    duration: float,
) -> dict[str, Any]:
    punctuate = params.punctuate or params.smart_format
    formatted = format_words(words, punctuate=punctuate, replace=params.replace, duration=duration)
    key = model.key
    metadata: dict[str, Any] = {
        "transaction_key": "deprecated",
        "request_id": request.request_id,
        "sha256": hashlib.sha256(audio).hexdigest(),
        "created": request.created.isoformat().replace("+00:00", "Z"),
        "duration": round(duration, 3),
        "channels": 1,
        "models": [key.uuid],
        "model_info": {
            key.uuid: {"name": key.name, "version": key.version, "arch": key.architecture}
        },
    }
    if params.extra:
        metadata["extra"] = params.extra
    alternative = {
        "transcript": transcript_of(formatted, punctuate=punctuate),
        "confidence": round(confidence, 4),
        "words": [w.to_dict() for w in formatted],
    }
    results: dict[str, Any] = {"channels": [{"alternatives": [alternative]}]}
    if params.utterances:
        results["utterances"] = split_utterances(
            formatted, gap=params.utt_split, punctuate=punctuate, model_uuid=key.uuid
        )
    return {"metadata": metadata, "results": results}
