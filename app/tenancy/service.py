"""Rules for resellers, organizations, projects and keys. Every change is audit-logged."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal, InvalidOperation

from sqlalchemy.orm import Session

from app.audit.service import record_event
from app.kit.auth import Role, Scope, expand_scopes, generate_api_key, hash_api_key
from app.kit.db import utcnow
from app.kit.errors import BadRequest, NotFound
from app.tables.tenancy import ApiKey, Organization, Project, Reseller
from app.tenancy import repository

PLANS = ("pay_as_you_go", "growth", "enterprise")
MICROS_PER_DOLLAR = 1_000_000


class InvalidTenancyInput(BadRequest):
    """A tenancy value that cannot be accepted (plan, contract, scope, role, expiry)."""


def dollars_to_micros(value: str) -> int:
    """``"0.0043"`` → ``4300``. Refuses floats' rounding: at most 6 decimal places."""
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise InvalidTenancyInput(f"'{value}' is not a dollar amount.") from exc
    micros = amount * MICROS_PER_DOLLAR
    if not amount.is_finite() or micros != micros.to_integral_value() or amount < 0:
        raise InvalidTenancyInput(
            f"'{value}' must be a non-negative dollar amount with at most 6 decimal places."
        )
    return int(micros)


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
) -> Organization:
    _check_contract(plan, contract_rates, contract_opt_out)
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
) -> Organization:
    """Change plan or contract terms. Ledger rows keep the terms they were priced with."""
    org = repository.get_organization_or_raise(session, organization_id)
    before = {
        "plan": org.plan,
        "contract_rates": org.contract_rates,
        "contract_opt_out": org.contract_opt_out,
        "retention_days": org.retention_days,
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
) -> tuple[ApiKey, str]:
    """Create a key; the secret is returned once and only its hash is stored."""
    project = repository.get_project_or_raise(session, project_id)
    clean_scopes = _validate_scopes(scopes if scopes is not None else [Scope.MEMBER.value])
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidTenancyInput("The expiration date must be in the future.")
    secret = generate_api_key()
    key = ApiKey(
        project_id=project.id,
        scopes=clean_scopes,
        comment=comment,
        tags=tags or [],
        key_hash=hash_api_key(secret),
        key_prefix=secret[:8],
        expires_at=expires_at,
        created_by=actor,
    )
    session.add(key)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="api_key.created",
        target_type="api_key",
        target_id=str(key.id),
        organization_id=project.organization_id,
        details={"project_id": str(project.id), "scopes": clean_scopes, "comment": comment},
    )
    return key, secret


def create_staff_key(
    session: Session, *, role: str, actor: str, comment: str = ""
) -> tuple[ApiKey, str]:
    try:
        clean_role = Role(role)
    except ValueError as exc:
        roles = ", ".join(r.value for r in Role)
        raise InvalidTenancyInput(f"Unknown role '{role}'; expected one of {roles}.") from exc
    secret = generate_api_key()
    key = ApiKey(
        role=clean_role.value,
        scopes=[],
        comment=comment,
        tags=[],
        key_hash=hash_api_key(secret),
        key_prefix=secret[:8],
        created_by=actor,
    )
    session.add(key)
    session.flush()
    record_event(
        session,
        actor=actor,
        action="api_key.created",
        target_type="api_key",
        target_id=str(key.id),
        details={"role": clean_role.value, "comment": comment},
    )
    return key, secret


def revoke_key(session: Session, *, key: ApiKey, actor: str) -> ApiKey:
    if key.revoked_at is None:
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
