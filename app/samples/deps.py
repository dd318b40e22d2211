"""The sample store as a FastAPI dependency, for every domain whose endpoints read samples."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.samples.runtime import SampleStore


def get_store(request: Request) -> SampleStore:
    store: SampleStore = request.app.state.store
    return store


StoreDep = Annotated[SampleStore, Depends(get_store)]
