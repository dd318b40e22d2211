"""FastAPI dependencies shared by every domain: the session, the settings, the caller.

Who the caller is comes from the tenancy domain, which owns the key table; the kit cannot
import it (it sits below every domain), so the application factory hands the kit its
:data:`Authenticator` on ``app.state.authenticate``. Role checks live here, so that any domain
(the audit log included) can require a role without importing tenancy.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from app.kit.auth import Principal, Role
from app.kit.db import session_scope
from app.kit.errors import Forbidden
from app.kit.settings import Settings

# (session, the Authorization header or None) -> the caller, or Unauthorized.
Authenticator = Callable[[Session, str | None], Principal]
# (session, the caller) -> uuids of the restricted packages (custom models) the caller may see.
# The custom-model domain sits above the model directory; the factory installs its answer on
# ``app.state.visible_restricted`` so that ``/v1/models`` can list them without importing it.
VisibleRestricted = Callable[[Session, Principal], Collection[str]]


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


def get_any_principal(request: Request, session: SessionDep) -> Principal:
    """Whoever the key belongs to: project, staff or reseller."""
    # A request with a body was authenticated by the request guard before it was read.
    known = getattr(request.state, "principal", None)
    if isinstance(known, Principal):
        return known
    authenticate: Authenticator = request.app.state.authenticate
    principal = authenticate(session, request.headers.get("authorization"))
    request.state.principal = principal
    return principal


def get_principal(principal: Annotated[Principal, Depends(get_any_principal)]) -> Principal:
    """A project or staff key. A reseller key is refused here, once for every endpoint but
    the few that name it (:data:`ResellerOrStaff`): code written for project and staff keys
    never sees a caller that is neither."""
    if principal.reseller_id is not None:
        raise Forbidden("A reseller key manages custom models only (/v1/governance/custom-models).")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
# Any key; the endpoint decides what a reseller key may do (custom models).
ResellerOrStaff = Annotated[Principal, Depends(get_any_principal)]


def require_roles(*roles: Role) -> Callable[[Principal], Principal]:
    """Dependency factory: a staff key holding one of ``roles`` (admin always passes)."""
    allowed = {Role.ADMIN, *roles}

    def dependency(principal: CurrentPrincipal) -> Principal:
        if principal.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise Forbidden(f"This endpoint needs a staff key with role: {names}.")
        return principal

    return dependency


def get_visible_restricted(
    request: Request, session: SessionDep, principal: Annotated[Principal, Depends(get_principal)]
) -> frozenset[str]:
    """The restricted packages the caller may see (none unless the factory says otherwise)."""
    visible: VisibleRestricted | None = getattr(request.app.state, "visible_restricted", None)
    return frozenset(visible(session, principal)) if visible is not None else frozenset()


VisibleRestrictedModels = Annotated[frozenset[str], Depends(get_visible_restricted)]
