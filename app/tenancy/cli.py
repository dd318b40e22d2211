"""``mip resellers|orgs|projects|keys|staff``: bootstrap tenants and keys from the shell."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

import typer

from app.kit.cli import (
    CLI_ACTOR,
    cli_session,
    console,
    exit_on_error,
    print_json,
    print_record,
    print_table,
)
from app.kit.errors import NotFound
from app.kit.money import micros_to_usd, usd_to_micros
from app.tenancy import repository, service

resellers_app = typer.Typer(help="Resellers (optional owners of customer organizations).")
orgs_app = typer.Typer(help="Organizations: plan, contract terms, retention.")
projects_app = typer.Typer(help="Projects under organizations (Deepgram's 'project').")
keys_app = typer.Typer(help="Project API keys (the secret is shown once).")
staff_app = typer.Typer(help="Staff keys with a role: admin, billing, dataops, auditor.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (with ids) for scripts.")]


def _parse_rates(values: list[str]) -> dict[str, int] | None:
    """``0.0043`` (any tier) or ``TIER=0.0043`` → micro-dollars per minute by tier."""
    rates: dict[str, int] = {}
    for value in values:
        tier, sep, amount = value.rpartition("=")
        rates[tier if sep else "*"] = usd_to_micros(amount)
    return rates or None


@resellers_app.command("create")
def create_reseller(name: str, json_output: JsonOpt = False) -> None:
    """Create a reseller."""
    with cli_session() as session:
        reseller = service.create_reseller(session, name=name, actor=CLI_ACTOR)
        out = {"id": str(reseller.id), "name": reseller.name}
    print_json(out) if json_output else print_record("Reseller created", out)


@resellers_app.command("create-key")
def create_reseller_key(
    reseller: Annotated[str, typer.Argument(help="The reseller's id.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="custom_models:read, custom_models:write or custom_models:assign (repeatable; "
            "default: all three).",
        ),
    ] = None,
    comment: Annotated[str, typer.Option(help="Who holds the key.")] = "",
    json_output: JsonOpt = False,
) -> None:
    """Create a reseller key: the reseller's own custom models and organizations, nothing
    else. The secret is printed once; revoke it with `mip keys revoke KEY_ID`."""
    with exit_on_error(), cli_session() as session:
        key, secret = service.create_reseller_key(
            session,
            reseller_id=uuid.UUID(reseller),
            actor=CLI_ACTOR,
            scopes=scope,
            comment=comment,
        )
        out = {"id": str(key.id), "reseller_id": reseller, "scopes": key.scopes, "key": secret}
    if json_output:
        print_json(out)
    else:
        print_record("Reseller key created (copy the key now; it is not shown again)", out)


def _org_out(org_id: uuid.UUID) -> dict[str, object]:
    with cli_session() as session:
        org = repository.get_organization_or_raise(session, org_id)
        return {
            "id": str(org.id),
            "name": org.name,
            "plan": org.plan,
            "contract_rates_micros_per_minute": org.contract_rates,
            "contract_opt_out": org.contract_opt_out,
            "retention_days": org.retention_days,
            "reseller_id": str(org.reseller_id) if org.reseller_id else None,
            "prepaid_credit_usd": micros_to_usd(org.prepaid_credit_micros),
        }


@orgs_app.command("create")
def create_org(
    name: str,
    plan: Annotated[str, typer.Option(help="pay_as_you_go | growth | enterprise")],
    contract_rate: Annotated[
        list[str] | None,
        typer.Option(
            help="Enterprise rate in USD per audio minute, e.g. 0.0040 (any tier) or "
            "nova=0.0040; repeat for several tiers."
        ),
    ] = None,
    contract_opt_out: Annotated[
        bool, typer.Option("--contract-opt-out", help="Enterprise contract opts out of MIP.")
    ] = False,
    retention_days: Annotated[int, typer.Option(help="Days samples are kept.")] = 30,
    reseller: Annotated[str | None, typer.Option(help="Owning reseller id.")] = None,
    prepaid_credit: Annotated[
        str, typer.Option("--prepaid-credit", help="Prepaid credit in USD, e.g. 250.00.")
    ] = "0",
    json_output: JsonOpt = False,
) -> None:
    """Create an organization."""
    with cli_session() as session:
        org = service.create_organization(
            session,
            name=name,
            plan=plan,
            actor=CLI_ACTOR,
            contract_rates=_parse_rates(contract_rate or []),
            contract_opt_out=contract_opt_out,
            retention_days=retention_days,
            reseller_id=uuid.UUID(reseller) if reseller else None,
            prepaid_credit_micros=usd_to_micros(prepaid_credit),
        )
        org_id = org.id
    out = _org_out(org_id)
    print_json(out) if json_output else print_record("Organization created", out)


@orgs_app.command("update")
def update_org(
    org_id: Annotated[str, typer.Argument(help="Organization id.")],
    plan: Annotated[str | None, typer.Option(help="New plan.")] = None,
    contract_rate: Annotated[
        list[str] | None, typer.Option(help="New contract rate(s), as for create.")
    ] = None,
    contract_opt_out: Annotated[
        bool | None, typer.Option("--contract-opt-out/--no-contract-opt-out")
    ] = None,
    retention_days: Annotated[int | None, typer.Option()] = None,
    prepaid_credit: Annotated[
        str | None, typer.Option("--prepaid-credit", help="New prepaid credit in USD.")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Change an organization's plan or contract (audit-logged; past rows keep their price)."""
    with cli_session() as session:
        service.update_contract(
            session,
            organization_id=uuid.UUID(org_id),
            actor=CLI_ACTOR,
            plan=plan,
            contract_rates=_parse_rates(contract_rate) if contract_rate else None,
            contract_opt_out=contract_opt_out,
            retention_days=retention_days,
            prepaid_credit_micros=(
                usd_to_micros(prepaid_credit) if prepaid_credit is not None else None
            ),
        )
    out = _org_out(uuid.UUID(org_id))
    print_json(out) if json_output else print_record("Organization updated", out)


@orgs_app.command("list")
def list_orgs(json_output: JsonOpt = False) -> None:
    """List organizations."""
    with cli_session() as session:
        rows = [
            {
                "id": str(o.id),
                "name": o.name,
                "plan": o.plan,
                "contract_opt_out": o.contract_opt_out,
            }
            for o in repository.list_organizations(session)
        ]
    if json_output:
        print_json(rows)
    else:
        print_table(
            "Organizations",
            ["id", "name", "plan", "contract_opt_out"],
            [list(r.values()) for r in rows],
        )


@projects_app.command("create")
def create_project(
    name: str,
    org: Annotated[str, typer.Option("--org", help="Organization id.")],
    json_output: JsonOpt = False,
) -> None:
    """Create a project under an organization."""
    with cli_session() as session:
        project = service.create_project(
            session, organization_id=uuid.UUID(org), name=name, actor=CLI_ACTOR
        )
        out = {"id": str(project.id), "name": project.name, "org_id": str(project.organization_id)}
    print_json(out) if json_output else print_record("Project created", out)


@projects_app.command("list")
def list_projects(
    org: Annotated[str | None, typer.Option("--org", help="Only this organization.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """List projects."""
    with cli_session() as session:
        rows = [
            {"id": str(p.id), "name": p.name, "org_id": str(p.organization_id)}
            for p in repository.list_projects(
                session, organization_id=uuid.UUID(org) if org else None
            )
        ]
    if json_output:
        print_json(rows)
    else:
        print_table("Projects", ["id", "name", "org_id"], [list(r.values()) for r in rows])


@keys_app.command("create")
def create_key(
    project: Annotated[str, typer.Option("--project", help="Project id.")],
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="Scope (repeatable): member, admin, listen, usage:read, …"),
    ] = None,
    comment: Annotated[str, typer.Option(help="What the key is for.")] = "",
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="Expire after N days.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a project API key. The secret is printed once; only its hash is stored."""
    expires = (
        dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_in_days) if expires_in_days else None
    )
    with cli_session() as session:
        key, secret = service.create_project_key(
            session,
            project_id=uuid.UUID(project),
            actor=CLI_ACTOR,
            scopes=scope,
            comment=comment,
            expires_at=expires,
        )
        out = {
            "id": str(key.id),
            "project_id": str(key.project_id),
            "scopes": key.scopes,
            "expires_at": key.expires_at.isoformat() if key.expires_at else None,
            "key": secret,
        }
    if json_output:
        print_json(out)
    else:
        print_record("API key created (copy the key now; it is not shown again)", out)


@keys_app.command("list")
def list_keys(
    project: Annotated[str, typer.Option("--project", help="Project id.")],
    json_output: JsonOpt = False,
) -> None:
    """List a project's keys (never their secrets)."""
    with cli_session() as session:
        rows = [
            {
                "id": str(k.id),
                "prefix": k.key_prefix,
                "scopes": ",".join(k.scopes),
                "comment": k.comment,
                "expires_at": k.expires_at.isoformat() if k.expires_at else None,
                "revoked": k.revoked_at is not None,
            }
            for k in repository.list_project_keys(
                session, project_id=uuid.UUID(project), include_revoked=True
            )
        ]
    if json_output:
        print_json(rows)
    else:
        print_table("API keys", list(rows[0]) if rows else ["id"], [list(r.values()) for r in rows])


@keys_app.command("revoke")
def revoke_key(key_id: str, json_output: JsonOpt = False) -> None:
    """Revoke a key (project or staff); it stops working at once."""
    with cli_session() as session:
        key = repository.get_key(session, uuid.UUID(key_id))
        if key is None:
            raise NotFound(f"Key {key_id} not found.")
        service.revoke_key(session, key=key, actor=CLI_ACTOR)
        out = {"id": key_id, "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None}
    print_json(out) if json_output else console.print(f"Key {key_id} revoked.")


@staff_app.command("create-key")
def create_staff_key(
    role: Annotated[str, typer.Option(help="admin | billing | dataops | auditor")],
    comment: Annotated[str, typer.Option(help="Who holds the key.")] = "",
    json_output: JsonOpt = False,
) -> None:
    """Create a staff key with a role. The secret is printed once."""
    with cli_session() as session:
        key, secret = service.create_staff_key(session, role=role, actor=CLI_ACTOR, comment=comment)
        out = {"id": str(key.id), "role": key.role, "key": secret}
    if json_output:
        print_json(out)
    else:
        print_record("Staff key created (copy the key now; it is not shown again)", out)
