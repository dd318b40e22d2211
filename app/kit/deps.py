"""FastAPI dependencies shared by every domain."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from app.kit.db import session_scope
from app.kit.settings import Settings


def get_session(request: Request) -> Iterator[Session]:
    """One request, one transaction: committed before the response is sent, rolled back on error."""
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    with session_scope(factory) as session:
        yield session


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# scope="function" ends the dependency (and so commits) before the response is sent: an
# acknowledged write is a committed write.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
