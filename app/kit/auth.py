"""Auth primitives: key secrets, their hashes, principals, roles and scopes.

The lookup of a presented key lives in :mod:`app.tenancy.auth`, next to the table it reads.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    BILLING = "billing"
    DATAOPS = "dataops"
    AUDITOR = "auditor"


class Scope(StrEnum):
    """Project key scopes. ``member`` and ``admin`` are bundles, as in Deepgram."""

    MEMBER = "member"
    ADMIN = "admin"
    LISTEN = "listen"
    USAGE_READ = "usage:read"
    KEYS_READ = "keys:read"
    KEYS_WRITE = "keys:write"
    PROJECT_READ = "project:read"
    SAMPLES_READ = "samples:read"
    SAMPLES_WRITE = "samples:write"


class ResellerScope(StrEnum):
    """Reseller key scopes: a reseller acts on its own custom models and organizations only."""

    CUSTOM_MODELS_READ = "custom_models:read"
    CUSTOM_MODELS_WRITE = "custom_models:write"
    CUSTOM_MODELS_ASSIGN = "custom_models:assign"


_BUNDLES: dict[Scope, frozenset[Scope]] = {
    Scope.MEMBER: frozenset(
        {Scope.LISTEN, Scope.USAGE_READ, Scope.KEYS_READ, Scope.PROJECT_READ, Scope.SAMPLES_READ}
    ),
    Scope.ADMIN: frozenset(
        {
            Scope.LISTEN,
            Scope.USAGE_READ,
            Scope.KEYS_READ,
            Scope.KEYS_WRITE,
            Scope.PROJECT_READ,
            Scope.SAMPLES_READ,
            Scope.SAMPLES_WRITE,
        }
    ),
}


def expand_scopes(scopes: list[str]) -> frozenset[Scope]:
    out: set[Scope] = set()
    for raw in scopes:
        scope = Scope(raw)
        out.add(scope)
        out |= _BUNDLES.get(scope, frozenset())
    return frozenset(out)


KEY_BYTES = 20  # 160 bits, shown as 40 hex characters like Deepgram keys


def generate_api_key() -> str:
    return secrets.token_hex(KEY_BYTES)


def hash_api_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a project key (tenant-scoped), a staff key (a role) or a reseller key
    (its reseller's custom models and organizations)."""

    key_id: uuid.UUID
    project_id: uuid.UUID | None = None
    organization_id: uuid.UUID | None = None
    scopes: frozenset[Scope] = frozenset()
    role: Role | None = None
    reseller_id: uuid.UUID | None = None
    reseller_scopes: frozenset[ResellerScope] = frozenset()

    @property
    def is_staff(self) -> bool:
        return self.role is not None

    @property
    def actor(self) -> str:
        if self.role:
            return f"staff:{self.role}:{self.key_id}"
        if self.reseller_id:
            return f"reseller:{self.reseller_id}:{self.key_id}"
        return f"key:{self.key_id}"

    def __repr__(self) -> str:
        return f"Principal({self.actor})"
