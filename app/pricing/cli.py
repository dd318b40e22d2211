"""``mip prices``: the effective-dated price book."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from app.kit.cli import CLI_ACTOR, cli_session, print_json, print_record, print_table
from app.kit.money import usd_to_micros
from app.pricing import service

prices_app = typer.Typer(help="The price book: rate per audio minute by plan and model tier.")


@prices_app.command("list")
def list_prices(json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List every price-book row."""
    with cli_session() as session:
        rows = [
            {
                "plan": e.plan,
                "tier": e.tier,
                "rate_micros_per_minute": e.rate_micros_per_minute,
                "effective_from": e.effective_from.isoformat(),
                "version": e.version,
            }
            for e in service.list_prices(session)
        ]
    if json_output:
        print_json(rows)
    else:
        print_table(
            "Price book",
            ["plan", "tier", "rate_micros_per_minute", "effective_from", "version"],
            [list(r.values()) for r in rows],
        )


@prices_app.command("set")
def set_price(
    plan: Annotated[str, typer.Option(help="pay_as_you_go | growth | enterprise")],
    rate: Annotated[str, typer.Option(help="USD per audio minute, e.g. 0.0043")],
    effective_from: Annotated[
        dt.datetime, typer.Option(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"], help="UTC")
    ],
    version: Annotated[str, typer.Option(help="Price-book version label, e.g. 2027-01")],
    tier: Annotated[str, typer.Option(help="Model tier; '*' = any tier")] = "*",
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Add a rate from a date on. Requests already recorded keep the rate they were billed."""
    with cli_session() as session:
        entry = service.set_price(
            session,
            plan=plan,
            tier=tier,
            rate_micros_per_minute=usd_to_micros(rate),
            effective_from=effective_from.replace(tzinfo=dt.UTC),
            version=version,
            actor=CLI_ACTOR,
        )
        out = {
            "id": str(entry.id),
            "plan": plan,
            "tier": tier,
            "rate_micros_per_minute": entry.rate_micros_per_minute,
            "effective_from": entry.effective_from.isoformat(),
            "version": version,
        }
    print_json(out) if json_output else print_record("Price set", out)
