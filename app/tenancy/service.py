"""Rules for resellers, organizations, projects and keys. Every change is audit-logged."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.kit.auth import (
    Principal,
    ResellerScope,
    Role,
    Scope,
    expand_scopes,
    generate_api_key,
    hash_api_key,
)
from app.kit.db import utcnow
from app.kit.errors import BadRequest, Conflict, Forbidden, NotFound
from app.kit.money import MICROS_PER_USD
from app.tables.tenancy import ApiKey, Organization, Project, Reseller
from app.tenancy import repository

PLANS = ("pay_as_you_go", "growth", "enterprise")
# A trillion dollars: far above any real credit, far below BIGINT, so sums cannot overflow.
MAX_CREDIT_MICROS = 10**18


class InvalidTenancyInput(BadRequest):
    """A tenancy value that cannot be accepted (plan, contract, scope, role, expiry)."""


class ScopeEscalation(Forbidden):
    """A key tried to create a key with scopes it does not hold itself."""


class KeyNotFound(NotFound):
    """No live key with this id in this project (revoked keys count as deleted)."""


class ResellerNotFound(NotFound):
    """No reseller with this id."""


_BUNDLE_NAMES = frozenset({Scope.MEMBER, Scope.ADMIN})
# Staff roles that may list every project (as Deepgram's GET /v1/projects).
PROJECT_LIST_ROLES = frozenset({Role.ADMIN, Role.BILLING, Role.AUDITOR})


def _check_credit(prepaid_credit_micros: int) -> None:
    if not 0 <= prepaid_credit_micros <= MAX_CREDIT_MICROS:
        raise InvalidTenancyInput(
            f"Prepaid credit must be between 0 and {MAX_CREDIT_MICROS // MICROS_PER_USD} USD."
        )


def _check_contract(
    plan: str, contract_rates: dict[str, int] | None, contract_opt_out: bool
) -> None:
    if plan not in PLANS:
        raise InvalidTenancyInput(f"Unknown plan '{plan}'; expected one of {', '.join(PLANS)}.")
    if plan == "enterprise":
        if not contract_rates:
            raise InvalidTenancyInput("Enterprise organizations need a contract rate.")
        if any(rate < 0 for rate in contract_rates.values()):
            raise InvalidTenancyInput("Contract rates must be non-negative.")
    elif contract_rates or contract_opt_out:
        raise InvalidTenancyInput(
            "Contract rates and contract-level MIP opt-out apply to enterprise organizations only."
        )


def create_reseller(session: Session, *, name: str, actor: str) -> Reseller:
    reseller = Reseller(name=name)
    session.add(reseller)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="reseller.created",
        target_type="reseller",
        target_id=str(reseller.id),
        details={"name": name},
    )
    return reseller


def create_organization(
    session: Session,
    *,
    name: str,
    plan: str,
    actor: str,
    contract_rates: dict[str, int] | None = None,
    contract_opt_out: bool = False,
    retention_days: int = 30,
    reseller_id: uuid.UUID | None = None,
    prepaid_credit_micros: int = 0,
) -> Organization:
    _check_contract(plan, contract_rates, contract_opt_out)
    _check_credit(prepaid_credit_micros)
    if retention_days <= 0:
        raise InvalidTenancyInput("Retention days must be positive.")
    if reseller_id is not None and repository.get_reseller(session, reseller_id) is None:
        raise NotFound(f"Reseller {reseller_id} not found.")
    org = Organization(
        name=name,
        plan=plan,
        contract_rates=contract_rates or None,
        contract_opt_out=contract_opt_out,
        retention_days=retention_days,
        reseller_id=reseller_id,
        prepaid_credit_micros=prepaid_credit_micros,
    )
    session.add(org)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="organization.created",
        target_type="organization",
        target_id=str(org.id),
        organization_id=org.id,
        details={
            "name": name,
            "plan": plan,
            "contract_rates": contract_rates,
            "contract_opt_out": contract_opt_out,
            "retention_days": retention_days,
            "reseller_id": str(reseller_id) if reseller_id else None,
            "prepaid_credit_micros": prepaid_credit_micros,
        },
    )
    return org


def update_contract(
    session: Session,
    *,
    organization_id: uuid.UUID,
    actor: str,
    plan: str | None = None,
    contract_rates: dict[str, int] | None = None,
    contract_opt_out: bool | None = None,
    retention_days: int | None = None,
    prepaid_credit_micros: int | None = None,
) -> Organization:
    """Change plan or contract terms. Ledger rows keep the terms they were priced with."""
    org = repository.get_organization_or_raise(session, organization_id)
    before = {
        "plan": org.plan,
        "contract_rates": org.contract_rates,
        "contract_opt_out": org.contract_opt_out,
        "retention_days": org.retention_days,
        "prepaid_credit_micros": org.prepaid_credit_micros,
    }
    new_plan = plan if plan is not None else org.plan
    new_rates = contract_rates if contract_rates is not None else org.contract_rates
    if new_plan != "enterprise" and plan is not None and contract_rates is None:
        new_rates = None
    new_opt_out = contract_opt_out if contract_opt_out is not None else org.contract_opt_out
    if new_plan != "enterprise" and contract_opt_out is None:
        new_opt_out = False
    _check_contract(new_plan, new_rates, new_opt_out)
    if retention_days is not None and retention_days <= 0:
        raise InvalidTenancyInput("Retention days must be positive.")
    if prepaid_credit_micros is not None:
        _check_credit(prepaid_credit_micros)
        org.prepaid_credit_micros = prepaid_credit_micros
    org.plan = new_plan
    org.contract_rates = new_rates or None
    org.contract_opt_out = new_opt_out
    if retention_days is not None:
        org.retention_days = retention_days
    session.flush()
    after = {
        "plan": org.plan,
        "contract_rates": org.contract_rates,
        "contract_opt_out": org.contract_opt_out,
        "retention_days": org.retention_days,
        "prepaid_credit_micros": org.prepaid_credit_micros,
    }
    record_event(
        session,
        actor=actor,
        action="organization.contract_changed",
        target_type="organization",
        target_id=str(org.id),
        organization_id=org.id,
        details={"before": before, "after": after},
    )
    return org


def create_project(
    session: Session, *, organization_id: uuid.UUID, name: str, actor: str
) -> Project:
    repository.get_organization_or_raise(session, organization_id)
    project = Project(organization_id=organization_id, name=name)
    session.add(project)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="project.created",
        target_type="project",
        target_id=str(project.id),
        organization_id=organization_id,
        details={"name": name},
    )
    return project


def _validate_scopes(scopes: list[str]) -> list[str]:
    if not scopes:
        raise InvalidTenancyInput("A key needs at least one scope.")
    valid = {s.value for s in Scope}
    unknown = [s for s in scopes if s not in valid]
    if unknown:
        raise InvalidTenancyInput(
            f"Unknown scope(s) {', '.join(unknown)}; expected some of {', '.join(sorted(valid))}."
        )
    return sorted(set(scopes))


def create_project_key(
    session: Session,
    *,
    project_id: uuid.UUID,
    actor: str,
    scopes: list[str] | None = None,
    comment: str = "",
    tags: list[str] | None = None,
    expires_at: dt.datetime | None = None,
    grantor_scopes: frozenset[Scope] | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; the secret is returned once and only its hash is stored.

    ``grantor_scopes`` are the scopes of the project key asking (``None`` for staff and the
    CLI): a key can only hand out scopes it holds itself.
    """
    project = repository.get_project_or_raise(session, project_id)
    clean_scopes = _validate_scopes(scopes if scopes is not None else [Scope.MEMBER.value])
    if grantor_scopes is not None:
        # Compare what the scopes allow, not their names: an admin key may grant "member".
        missing = expand_scopes(clean_scopes) - grantor_scopes - _BUNDLE_NAMES
        if missing:
            raise ScopeEscalation(
                "A key cannot grant scopes it does not hold: "
                f"{', '.join(sorted(s.value for s in missing))}."
            )
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidTenancyInput("The expiration date must be in the future.")
    return _store_key(
        session,
        ApiKey(
            project_id=project.id,
            scopes=clean_scopes,
            comment=comment,
            tags=tags or [],
            expires_at=expires_at,
        ),
        secret=generate_api_key(),
        actor=actor,
        organization_id=project.organization_id,
        details={"project_id": str(project.id), "scopes": clean_scopes, "comment": comment},
    )


def _store_key(
    session: Session,
    key: ApiKey,
    *,
    secret: str,
    actor: str,
    organization_id: uuid.UUID | None,
    details: dict[str, object],
) -> tuple[ApiKey, str]:
    """Persist ``key`` under the hash of ``secret`` (never the secret) and audit its creation."""
    key.key_hash = hash_api_key(secret)
    key.key_prefix = secret[:8]
    key.created_by = actor
    session.add(key)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="api_key.created",
        target_type="api_key",
        target_id=str(key.id),
        organization_id=organization_id,
        details=details,
    )
    return key, secret


def create_staff_key(
    session: Session, *, role: str, actor: str, comment: str = "", secret: str | None = None
) -> tuple[ApiKey, str]:
    """A staff key with a role; ``secret`` only for an operator-chosen bootstrap key."""
    try:
        clean_role = Role(role)
    except ValueError as exc:
        roles = ", ".join(r.value for r in Role)
        raise InvalidTenancyInput(f"Unknown role '{role}'; expected one of {roles}.") from exc
    return _store_key(
        session,
        ApiKey(role=clean_role.value, scopes=[], comment=comment, tags=[]),
        secret=secret or generate_api_key(),
        actor=actor,
        organization_id=None,
        details={"role": clean_role.value, "comment": comment},
    )


def create_reseller_key(
    session: Session,
    *,
    reseller_id: uuid.UUID,
    actor: str,
    scopes: list[str] | None = None,
    comment: str = "",
    expires_at: dt.datetime | None = None,
) -> tuple[ApiKey, str]:
    """A reseller key: its reseller's custom models and organizations, nothing else.

    ``scopes`` default to all three (read, write, assign); the secret is returned once.
    """
    if repository.get_reseller(session, reseller_id) is None:
        raise ResellerNotFound(f"Reseller {reseller_id} not found.")
    valid = {scope.value for scope in ResellerScope}
    wanted = sorted(set(scopes)) if scopes is not None else sorted(valid)
    unknown = [scope for scope in wanted if scope not in valid]
    if not wanted or unknown:
        raise InvalidTenancyInput(
            f"Unknown reseller scope(s) {', '.join(unknown) or '(none)'}; expected some of "
            f"{', '.join(sorted(valid))}."
        )
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidTenancyInput("The expiration date must be in the future.")
    return _store_key(
        session,
        ApiKey(
            reseller_id=reseller_id,
            scopes=wanted,
            comment=comment,
            tags=[],
            expires_at=expires_at,
        ),
        secret=generate_api_key(),
        actor=actor,
        organization_id=None,
        details={"reseller_id": str(reseller_id), "scopes": wanted, "comment": comment},
    )


BOOTSTRAP_COMMENT = "bootstrap admin key (MIP_BOOTSTRAP_ADMIN_KEY)"


def ensure_bootstrap_admin_key(session: Session, *, secret: str, actor: str) -> bool:
    """Make ``secret`` an admin staff key unless it already is one; True when created.

    Lets a container deployment start with a known first key instead of a shell session. A
    revoked bootstrap key stays revoked: it is never silently brought back.
    """
    if len(secret) < 32:
        raise InvalidTenancyInput("MIP_BOOTSTRAP_ADMIN_KEY must be at least 32 characters.")
    if repository.get_key_by_hash(session, hash_api_key(secret)) is not None:
        return False
    create_staff_key(
        session, role=Role.ADMIN.value, actor=actor, comment=BOOTSTRAP_COMMENT, secret=secret
    )
    return True


class LastAdminKey(Conflict):
    """Revoking this key would leave no working admin staff key."""


def revoke_key(
    session: Session,
    *,
    key: ApiKey,
    actor: str,
    revoker_scopes: frozenset[Scope] | None = None,
) -> ApiKey:
    """Revoke a key (idempotent). The last working admin staff key cannot be revoked: the
    governance API would be locked until someone with shell access ran ``mip staff create-key``.

    ``revoker_scopes`` are the scopes of the project key asking (``None`` for staff and the
    CLI): as with creating, a key can only revoke keys whose scopes it holds itself (a
    ``keys:write`` key could otherwise lock its project's admin key out).
    """
    if revoker_scopes is not None:
        missing = expand_scopes(key.scopes) - revoker_scopes - _BUNDLE_NAMES
        if missing:
            raise ScopeEscalation(
                "A key cannot delete a key with scopes it does not hold: "
                f"{', '.join(sorted(s.value for s in missing))}."
            )
    if key.revoked_at is None:
        if (
            key.role == Role.ADMIN.value
            and repository.count_live_admin_keys(session, now=utcnow()) <= 1
        ):
            raise LastAdminKey(
                f"Key {key.id} is the last working admin staff key; create another admin key "
                "before revoking it."
            )
        key.revoked_at = utcnow()
        session.flush()
        org_id = None
        if key.project_id is not None:
            org_id = repository.get_project_or_raise(session, key.project_id).organization_id
        record_event(
            session,
            actor=actor,
            action="api_key.revoked",
            target_type="api_key",
            target_id=str(key.id),
            organization_id=org_id,
            details={"project_id": str(key.project_id) if key.project_id else None},
        )
    return key


def scopes_of(key: ApiKey) -> frozenset[Scope]:
    return expand_scopes(key.scopes)


def projects_visible_to(session: Session, principal: Principal) -> Sequence[Project]:
    """A project key sees its own project; admin, billing and auditor staff see them all."""
    if principal.is_staff:
        if principal.role not in PROJECT_LIST_ROLES:
            raise Forbidden(f"Role {principal.role} cannot list projects.")
        return repository.list_projects(session)
    if Scope.PROJECT_READ not in principal.scopes:
        raise Forbidden(f"This key lacks the '{Scope.PROJECT_READ.value}' scope.")
    assert principal.project_id is not None  # a project key always names its project
    return [repository.get_project_or_raise(session, principal.project_id)]


def get_live_project_key_or_raise(
    session: Session, *, project_id: uuid.UUID, key_id: uuid.UUID
) -> ApiKey:
    key = repository.get_project_key(session, project_id=project_id, key_id=key_id)
    if key is None or key.revoked_at is not None:
        raise KeyNotFound(f"API key {key_id} not found.")
    return key


def balance_micros(session: Session, *, organization_id: uuid.UUID) -> int:
    """Prepaid credit minus everything the organization's ledger rows were billed."""
    balance = repository.get_balance_micros(session, organization_id=organization_id)
    if balance is None:
        raise NotFound(f"Organization {organization_id} not found.")
    return balance
