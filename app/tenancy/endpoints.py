"""Tenancy HTTP: Deepgram's projects, keys and balances, and the governance of tenants and keys.

``/v1/projects/…`` answers in the shapes of the official Deepgram SDK (project keys, or staff
keys reading any project); ``/v1/governance/…`` is for staff (admin writes; billing and auditor
read).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy.orm import Session

from app.kit.auth import Principal, Role
from app.kit.db import utcnow
from app.kit.deps import CurrentPrincipal, SessionDep, require_roles
from app.kit.errors import NotFound
from app.kit.money import micros_to_usd, micros_to_usd_float, usd_to_micros
from app.kit.openapi import error_responses
from app.tables.tenancy import ApiKey, Organization
from app.tenancy import repository, service
from app.tenancy.auth import KeysReader, KeysWriter, ProjectReader, UsageReader
from app.tenancy.schemas import (
    BalanceListV1Read,
    BalanceV1Read,
    KeyCreatedV1Read,
    KeyDetailV1Read,
    KeyGetV1Read,
    KeyItemV1Read,
    KeyListItemV1Read,
    KeyListV1Read,
    KeyMemberDetailV1Read,
    KeyMemberV1Read,
    KeyRevokedRead,
    KeySummaryV1Read,
    KeyV1Create,
    MessageV1Read,
    OrganizationCreate,
    OrganizationListRead,
    OrganizationRead,
    OrganizationUpdate,
    ProjectCreate,
    ProjectKeyCreate,
    ProjectKeyCreatedRead,
    ProjectListRead,
    ProjectListV1Read,
    ProjectRead,
    ProjectSummaryV1Read,
    ProjectV1Read,
    ResellerCreate,
    ResellerListRead,
    ResellerRead,
    StaffKeyCreate,
    StaffKeyCreatedRead,
)

projects_router = APIRouter(prefix="/v1/projects", tags=["projects (Deepgram)"])
governance_router = APIRouter(prefix="/v1/governance", tags=["governance: tenancy"])

_ERRORS = error_responses(400, 401, 403, 404)

Admin = Annotated[Principal, Depends(require_roles())]
StaffReader = Annotated[Principal, Depends(require_roles(Role.BILLING, Role.AUDITOR))]


# --- Deepgram-compatible ---------------------------------------------------------------------


def _member(key: ApiKey) -> KeyMemberV1Read:
    return KeyMemberV1Read(member_id=str(key.created_by), email="")


@projects_router.get(
    "",
    response_model=ProjectListV1Read,
    summary="List the projects this key can see",
    description="A project key sees its own project; staff admin, billing and auditor see all.",
    responses=_ERRORS,
)
def list_projects_v1(session: SessionDep, principal: CurrentPrincipal) -> ProjectListV1Read:
    projects = service.projects_visible_to(session, principal)
    return ProjectListV1Read(
        projects=[ProjectSummaryV1Read(project_id=str(p.id), name=p.name) for p in projects]
    )


@projects_router.get(
    "/{project_id}",
    response_model=ProjectV1Read,
    summary="Get a project",
    description="`mip_opt_out` is the organization's contract-level opt-out. "
    "`limit` and `page` are accepted for SDK compatibility and ignored.",
    responses=_ERRORS,
)
def get_project_v1(
    project_id: uuid.UUID,
    session: SessionDep,
    project: ProjectReader,
    _limit: Annotated[float | None, Query(alias="limit", ge=0)] = None,
    _page: Annotated[float | None, Query(alias="page", ge=0)] = None,
) -> ProjectV1Read:
    org = repository.get_organization_or_raise(session, project.organization_id)
    return ProjectV1Read(
        project_id=str(project.id),
        name=project.name,
        # Every request of the project is opted out: by contract or by a withdrawn consent.
        mip_opt_out=org.contract_opt_out
        or org.consent_withdrawn_at is not None
        or project.consent_withdrawn_at is not None,
    )


@projects_router.get(
    "/{project_id}/keys",
    response_model=KeyListV1Read,
    summary="List a project's API keys (never their secrets)",
    description="Revoked keys are gone. `status=active` keeps unexpired keys, "
    "`status=expired` expired ones.",
    responses=_ERRORS,
)
def list_keys_v1(
    project_id: uuid.UUID,
    session: SessionDep,
    project: KeysReader,
    key_status: Annotated[Literal["active", "expired"] | None, Query(alias="status")] = None,
) -> KeyListV1Read:
    keys = repository.list_project_keys(
        session, project_id=project_id, status=key_status, now=utcnow()
    )
    return KeyListV1Read(
        api_keys=[
            KeyListItemV1Read(
                member=_member(k),
                api_key=KeySummaryV1Read(
                    api_key_id=str(k.id), comment=k.comment, scopes=k.scopes, created=k.created_at
                ),
            )
            for k in keys
        ]
    )


@projects_router.post(
    "/{project_id}/keys",
    response_model=KeyCreatedV1Read,
    summary="Create an API key (the secret is returned once)",
    description="Needs `keys:write`. A project key can only grant scopes it holds itself.",
    responses=_ERRORS,
)
def create_key_v1(
    project_id: uuid.UUID,
    body: KeyV1Create,
    session: SessionDep,
    project: KeysWriter,
    principal: CurrentPrincipal,
) -> KeyCreatedV1Read:
    expires_at = body.expiration_date
    if body.time_to_live_in_seconds is not None:
        expires_at = utcnow() + dt.timedelta(seconds=body.time_to_live_in_seconds)
    key, secret = service.create_project_key(
        session,
        project_id=project_id,
        actor=principal.actor,
        scopes=body.scopes,
        comment=body.comment,
        tags=body.tags,
        expires_at=expires_at,
        grantor_scopes=None if principal.is_staff else principal.scopes,
    )
    return KeyCreatedV1Read(
        api_key_id=str(key.id),
        key=secret,
        comment=key.comment,
        scopes=key.scopes,
        tags=key.tags,
        expiration_date=key.expires_at,
    )


@projects_router.get(
    "/{project_id}/keys/{key_id}",
    response_model=KeyGetV1Read,
    summary="Get an API key (never its secret)",
    responses=_ERRORS,
)
def get_key_v1(
    project_id: uuid.UUID, key_id: uuid.UUID, session: SessionDep, project: KeysReader
) -> KeyGetV1Read:
    key = service.get_live_project_key_or_raise(session, project_id=project_id, key_id=key_id)
    member = _member(key)
    return KeyGetV1Read(
        item=KeyItemV1Read(
            member=KeyMemberDetailV1Read(
                member_id=member.member_id,
                email=member.email,
                api_key=KeyDetailV1Read(
                    api_key_id=str(key.id),
                    comment=key.comment,
                    scopes=key.scopes,
                    tags=key.tags,
                    expiration_date=key.expires_at,
                    created=key.created_at,
                ),
            )
        )
    )


@projects_router.delete(
    "/{project_id}/keys/{key_id}",
    response_model=MessageV1Read,
    summary="Delete (revoke) an API key; it stops working at once",
    responses=_ERRORS,
)
def delete_key_v1(
    project_id: uuid.UUID,
    key_id: uuid.UUID,
    session: SessionDep,
    project: KeysWriter,
    principal: CurrentPrincipal,
) -> MessageV1Read:
    key = service.get_live_project_key_or_raise(session, project_id=project_id, key_id=key_id)
    service.revoke_key(
        session,
        key=key,
        actor=principal.actor,
        revoker_scopes=None if principal.is_staff else principal.scopes,
    )
    return MessageV1Read(message=f"API key {key_id} deleted.")


def _balance(session: Session, organization_id: uuid.UUID) -> BalanceV1Read:
    micros = service.balance_micros(session, organization_id=organization_id)
    # Deepgram's shape wants a float; the exact figure stays in micro-dollars underneath.
    return BalanceV1Read(balance_id=str(organization_id), amount=micros_to_usd_float(micros))


@projects_router.get(
    "/{project_id}/balances",
    response_model=BalanceListV1Read,
    summary="List the project's balances (its organization's prepaid credit left)",
    description="One balance per organization: prepaid credit minus all recorded usage, in USD.",
    responses=_ERRORS,
)
def list_balances_v1(
    project_id: uuid.UUID, session: SessionDep, project: UsageReader
) -> BalanceListV1Read:
    return BalanceListV1Read(balances=[_balance(session, project.organization_id)])


@projects_router.get(
    "/{project_id}/balances/{balance_id}",
    response_model=BalanceV1Read,
    summary="Get one balance of the project",
    responses=_ERRORS,
)
def get_balance_v1(
    project_id: uuid.UUID, balance_id: uuid.UUID, session: SessionDep, project: UsageReader
) -> BalanceV1Read:
    if balance_id != project.organization_id:
        raise NotFound(f"Balance {balance_id} not found.")
    return _balance(session, project.organization_id)


# --- Governance ------------------------------------------------------------------------------


def _rates_to_micros(rates: dict[str, str] | None) -> dict[str, int] | None:
    if rates is None:
        return None
    return {tier: usd_to_micros(usd) for tier, usd in rates.items()}


def _organization_read(org: Organization) -> OrganizationRead:
    rates = org.contract_rates
    return OrganizationRead(
        id=org.id,
        name=org.name,
        plan=org.plan,
        reseller_id=org.reseller_id,
        contract_rates=({tier: micros_to_usd(m) for tier, m in rates.items()} if rates else None),
        contract_opt_out=org.contract_opt_out,
        retention_days=org.retention_days,
        prepaid_credit=micros_to_usd(org.prepaid_credit_micros),
        created_at=org.created_at,
    )


@governance_router.post(
    "/resellers",
    response_model=ResellerRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create a reseller (admin)",
    responses=_ERRORS,
)
def create_reseller(body: ResellerCreate, session: SessionDep, principal: Admin) -> ResellerRead:
    reseller = service.create_reseller(session, name=body.name, actor=principal.actor)
    return ResellerRead.model_validate(reseller)


@governance_router.get(
    "/resellers",
    response_model=ResellerListRead,
    summary="List resellers (admin, billing, auditor)",
    responses=_ERRORS,
)
def list_resellers(session: SessionDep, _principal: StaffReader) -> ResellerListRead:
    return ResellerListRead(
        resellers=[ResellerRead.model_validate(r) for r in repository.list_resellers(session)]
    )


@governance_router.post(
    "/organizations",
    response_model=OrganizationRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create an organization with its plan and contract (admin)",
    responses=_ERRORS,
)
def create_organization(
    body: OrganizationCreate, session: SessionDep, principal: Admin
) -> OrganizationRead:
    org = service.create_organization(
        session,
        name=body.name,
        plan=body.plan,
        actor=principal.actor,
        contract_rates=_rates_to_micros(body.contract_rates),
        contract_opt_out=body.contract_opt_out,
        retention_days=body.retention_days,
        reseller_id=body.reseller_id,
        prepaid_credit_micros=usd_to_micros(body.prepaid_credit),
    )
    return _organization_read(org)


@governance_router.get(
    "/organizations",
    response_model=OrganizationListRead,
    summary="List organizations (admin, billing, auditor)",
    responses=_ERRORS,
)
def list_organizations(session: SessionDep, _principal: StaffReader) -> OrganizationListRead:
    return OrganizationListRead(
        organizations=[_organization_read(o) for o in repository.list_organizations(session)]
    )


@governance_router.get(
    "/organizations/{organization_id}",
    response_model=OrganizationRead,
    summary="Get an organization (admin, billing, auditor)",
    responses=_ERRORS,
)
def get_organization(
    organization_id: uuid.UUID, session: SessionDep, _principal: StaffReader
) -> OrganizationRead:
    return _organization_read(repository.get_organization_or_raise(session, organization_id))


@governance_router.patch(
    "/organizations/{organization_id}",
    response_model=OrganizationRead,
    summary="Change plan, contract, retention or prepaid credit (admin; audit-logged)",
    description="Ledger rows already recorded keep the price they were billed with.",
    responses=_ERRORS,
)
def update_organization(
    organization_id: uuid.UUID, body: OrganizationUpdate, session: SessionDep, principal: Admin
) -> OrganizationRead:
    org = service.update_contract(
        session,
        organization_id=organization_id,
        actor=principal.actor,
        plan=body.plan,
        contract_rates=_rates_to_micros(body.contract_rates),
        contract_opt_out=body.contract_opt_out,
        retention_days=body.retention_days,
        prepaid_credit_micros=(
            usd_to_micros(body.prepaid_credit) if body.prepaid_credit is not None else None
        ),
    )
    return _organization_read(org)


@governance_router.post(
    "/organizations/{organization_id}/projects",
    response_model=ProjectRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create a project under an organization (admin)",
    responses=_ERRORS,
)
def create_project(
    organization_id: uuid.UUID, body: ProjectCreate, session: SessionDep, principal: Admin
) -> ProjectRead:
    project = service.create_project(
        session, organization_id=organization_id, name=body.name, actor=principal.actor
    )
    return ProjectRead.model_validate(project)


@governance_router.get(
    "/projects",
    response_model=ProjectListRead,
    summary="List projects, optionally of one organization (admin, billing, auditor)",
    responses=_ERRORS,
)
def list_projects(
    session: SessionDep,
    _principal: StaffReader,
    organization_id: uuid.UUID | None = None,
) -> ProjectListRead:
    projects = repository.list_projects(session, organization_id=organization_id)
    return ProjectListRead(projects=[ProjectRead.model_validate(p) for p in projects])


@governance_router.post(
    "/projects/{project_id}/keys",
    response_model=ProjectKeyCreatedRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create a project API key (admin; the secret is returned once)",
    responses=_ERRORS,
)
def create_project_key(
    project_id: uuid.UUID, body: ProjectKeyCreate, session: SessionDep, principal: Admin
) -> ProjectKeyCreatedRead:
    expires_at = (
        utcnow() + dt.timedelta(days=body.expires_in_days) if body.expires_in_days else None
    )
    key, secret = service.create_project_key(
        session,
        project_id=project_id,
        actor=principal.actor,
        scopes=body.scopes,
        comment=body.comment,
        tags=body.tags,
        expires_at=expires_at,
    )
    assert key.project_id is not None  # a project key always names its project
    return ProjectKeyCreatedRead(
        id=key.id,
        project_id=key.project_id,
        scopes=key.scopes,
        comment=key.comment,
        tags=key.tags,
        expires_at=key.expires_at,
        key=secret,
    )


@governance_router.post(
    "/staff-keys",
    response_model=StaffKeyCreatedRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create a staff key with a role (admin; the secret is returned once)",
    responses=_ERRORS,
)
def create_staff_key(
    body: StaffKeyCreate, session: SessionDep, principal: Admin
) -> StaffKeyCreatedRead:
    key, secret = service.create_staff_key(
        session, role=body.role.value, actor=principal.actor, comment=body.comment
    )
    assert key.role is not None  # a staff key always has a role
    return StaffKeyCreatedRead(id=key.id, role=key.role, comment=key.comment, key=secret)


@governance_router.post(
    "/keys/{key_id}/revoke",
    response_model=KeyRevokedRead,
    summary="Revoke any key, project or staff (admin); it stops working at once",
    description="Revoking a revoked key changes nothing and answers its first revocation time.",
    responses=_ERRORS,
)
def revoke_key(key_id: uuid.UUID, session: SessionDep, principal: Admin) -> KeyRevokedRead:
    key = repository.get_key(session, key_id)
    if key is None:
        raise service.KeyNotFound(f"API key {key_id} not found.")
    service.revoke_key(session, key=key, actor=principal.actor)
    assert key.revoked_at is not None  # set by revoke_key
    return KeyRevokedRead(id=key.id, revoked_at=key.revoked_at)


router = APIRouter()
router.include_router(projects_router)
router.include_router(governance_router)
