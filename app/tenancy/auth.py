"""Resolve ``Authorization: Token <key>`` (or ``Bearer``) to a :class:`Principal`, and decide
what a principal may do with a project.

:func:`authenticate` is the kit's ``Authenticator`` (the application factory installs it);
role checks that need no project live in :mod:`app.kit.deps`.

Missing or bad key → 401; a tenant key naming another tenant's project → 404; a known
project with too little scope, or a staff key without the role → 403.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from app.kit.auth import Principal, ResellerScope, Role, Scope, expand_scopes, hash_api_key
from app.kit.db import utcnow
from app.kit.deps import CurrentPrincipal, SessionDep
from app.kit.errors import Forbidden, NotFound, Unauthorized
from app.tables.tenancy import Project
from app.tenancy import repository

_SCHEMES = ("token", "bearer")


def authenticate(session: Session, authorization: str | None) -> Principal:
    if not authorization:
        raise Unauthorized("Missing credentials: send 'Authorization: Token <API key>'.")
    scheme, _, secret = authorization.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() not in _SCHEMES or not secret:
        raise Unauthorized("Malformed credentials: send 'Authorization: Token <API key>'.")
    key = repository.get_key_by_hash(session, hash_api_key(secret))
    now = utcnow()
    if key is None or key.revoked_at is not None or (key.expires_at and key.expires_at <= now):
        raise Unauthorized("Invalid credentials.")
    if key.role is not None:
        return Principal(key_id=key.id, role=Role(key.role))
    if key.reseller_id is not None:
        return Principal(
            key_id=key.id,
            reseller_id=key.reseller_id,
            reseller_scopes=frozenset(ResellerScope(scope) for scope in key.scopes),
        )
    assert key.project_id is not None  # guaranteed by the table's check constraint
    project = repository.get_project_or_raise(session, key.project_id)
    return Principal(
        key_id=key.id,
        project_id=project.id,
        organization_id=project.organization_id,
        scopes=expand_scopes(key.scopes),
    )


# Staff roles that may read (not change) any project's Deepgram-style usage and requests.
_STAFF_READERS: dict[Scope, frozenset[Role]] = {
    Scope.USAGE_READ: frozenset({Role.ADMIN, Role.BILLING, Role.AUDITOR}),
    Scope.PROJECT_READ: frozenset({Role.ADMIN, Role.BILLING, Role.AUDITOR}),
    # Auditors read organizations, projects and usage, not a project's keys (README, roles).
    Scope.KEYS_READ: frozenset({Role.ADMIN}),
    Scope.KEYS_WRITE: frozenset({Role.ADMIN}),
    Scope.LISTEN: frozenset(),
    Scope.SAMPLES_READ: frozenset({Role.ADMIN, Role.DATAOPS, Role.AUDITOR}),
    Scope.SAMPLES_WRITE: frozenset({Role.ADMIN, Role.DATAOPS}),
}


def authorize_project(
    session: Session, principal: Principal, project_id: uuid.UUID, scope: Scope
) -> Project:
    """The project if ``principal`` may use ``scope`` on it; 404 for another tenant's project."""
    if principal.is_staff:
        project = repository.get_project_or_raise(session, project_id)
        if principal.role not in _STAFF_READERS.get(scope, frozenset()):
            raise Forbidden(f"Role {principal.role} cannot use scope '{scope.value}'.")
        return project
    if principal.project_id != project_id:
        raise NotFound(f"Project {project_id} not found.")
    if scope not in principal.scopes:
        raise Forbidden(f"This key lacks the '{scope.value}' scope.")
    return repository.get_project_or_raise(session, project_id)


class ProjectAccess:
    """Dependency: the project of the path's ``project_id``, if the caller may use ``scope``
    on it (:func:`authorize_project`): one check for every project route.

        def list_keys(project: Annotated[Project, Depends(ProjectAccess(Scope.KEYS_READ))])
    """

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def __call__(
        self, project_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
    ) -> Project:
        return authorize_project(session, principal, project_id, self.scope)


ProjectReader = Annotated[Project, Depends(ProjectAccess(Scope.PROJECT_READ))]
KeysReader = Annotated[Project, Depends(ProjectAccess(Scope.KEYS_READ))]
KeysWriter = Annotated[Project, Depends(ProjectAccess(Scope.KEYS_WRITE))]
UsageReader = Annotated[Project, Depends(ProjectAccess(Scope.USAGE_READ))]
