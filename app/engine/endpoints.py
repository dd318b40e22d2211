"""Model directory HTTP: ``GET /v1/models`` and ``GET /v1/models/{model_id}`` (Deepgram's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from app.engine.registry import ModelRegistry
from app.engine.schemas import ModelsRead, SttModelRead
from app.kit.deps import CurrentPrincipal, VisibleRestrictedModels
from app.kit.openapi import error_responses

router = APIRouter(prefix="/v1", tags=["models"])

_ERRORS = error_responses(401, specific={400: "Malformed query parameter"})


def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.models
    return registry


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]


@router.get(
    "/models",
    response_model=ModelsRead,
    summary="List the speech-to-text models this service serves",
    description=(
        "The latest version of every installed model (`include_outdated=true`: every version), "
        "and the custom models shared with the caller's organization with the `view` "
        "permission. Any valid project or staff key may call it."
    ),
    responses=_ERRORS,
)
def list_models(
    registry: RegistryDep,
    _principal: CurrentPrincipal,
    visible: VisibleRestrictedModels,
    include_outdated: Annotated[
        bool, Query(description="also list versions that a newer one replaced")
    ] = False,
) -> ModelsRead:
    models = registry.models()  # by name, newest version first
    if not include_outdated:
        newest: dict[str, str] = {}
        for loaded in models:
            newest.setdefault(loaded.manifest.name, loaded.manifest.version)
        models = [m for m in models if m.manifest.version == newest[m.manifest.name]]
    shared = [m for m in (registry.restricted(u) for u in sorted(visible)) if m is not None]
    return ModelsRead(stt=[SttModelRead.of(m) for m in [*models, *shared]], tts=[])


@router.get(
    "/models/{model_id}",
    response_model=SttModelRead,
    summary="One model by its uuid",
    responses={**_ERRORS, **error_responses(specific={404: "No installed model has this uuid"})},
)
def get_model(
    model_id: str,
    registry: RegistryDep,
    _principal: CurrentPrincipal,
    visible: VisibleRestrictedModels,
) -> SttModelRead:
    wanted = model_id.strip().lower()
    shared = registry.restricted(wanted) if wanted in visible else None
    return SttModelRead.of(shared or registry.get_or_raise(model_id))
