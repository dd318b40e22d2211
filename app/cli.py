"""``mip``: the command line of the service (serve, worker, migrate, bootstrap, billing, audit)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from app.audit.cli import audit_app
from app.billing.cli import billing_app
from app.datasets.cli import curate_app
from app.engine.cli import asr_app
from app.kit.cli import err_console, print_json, print_record
from app.kit.errors import MIPError
from app.kit.settings import get_settings
from app.pricing.cli import prices_app
from app.samples.cli import crypto_app, store_app
from app.tenancy.cli import keys_app, orgs_app, projects_app, resellers_app, staff_app
from app.training.cli import models_app, train_app

app = typer.Typer(
    name="mip",
    help="MIP Governance Service: ledger, MIP pricing, billing, sample store, audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Effective configuration.")
app.add_typer(config_app, name="config")
app.add_typer(resellers_app, name="resellers")
app.add_typer(orgs_app, name="orgs")
app.add_typer(projects_app, name="projects")
app.add_typer(keys_app, name="keys")
app.add_typer(staff_app, name="staff")
app.add_typer(prices_app, name="prices")
app.add_typer(audit_app, name="audit")
app.add_typer(billing_app, name="billing")
app.add_typer(store_app, name="store")
app.add_typer(crypto_app, name="crypto")
app.add_typer(asr_app, name="asr")
app.add_typer(curate_app, name="curate")
app.add_typer(train_app, name="train")
app.add_typer(models_app, name="models")


@config_app.command("show")
def config_show(json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print the effective settings (from MIP_* variables), secrets masked."""
    values = get_settings().masked()
    print_json(values) if json_output else print_record("Effective settings", values)


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    downgrade: Annotated[
        bool, typer.Option("--downgrade", help="Downgrade to --revision.")
    ] = False,
) -> None:
    """Apply the database migrations (creates the SQLite file on first run)."""
    from app.kit import migrate as migrations

    settings = get_settings()
    url = settings.effective_database_url
    if downgrade:
        migrations.downgrade(url, revision)
        err_console.print(f"Database at {revision}.")
        return
    migrations.upgrade(url, revision)
    err_console.print(f"Database at {revision}.")
    if settings.bootstrap_admin_key is not None and revision == "head":
        from app.kit.cli import CLI_ACTOR, cli_session
        from app.tenancy.service import ensure_bootstrap_admin_key

        with cli_session() as session:
            created = ensure_bootstrap_admin_key(
                session, secret=settings.bootstrap_admin_key.get_secret_value(), actor=CLI_ACTOR
            )
        if created:
            err_console.print("Bootstrap admin key registered (MIP_BOOTSTRAP_ADMIN_KEY).")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: MIP_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Default: MIP_PORT")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Uvicorn worker processes.")] = 1,
) -> None:
    """Run the HTTP API."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


@app.command()
def worker(
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between task runs.")] = 60.0,
    once: Annotated[bool, typer.Option("--once", help="Run every task once, then exit.")] = False,
    jobs: Annotated[
        bool, typer.Option("--jobs/--no-jobs", help="Also run queued training jobs.")
    ] = True,
) -> None:
    """Run background tasks: audit chain monitoring, retention purges, training jobs."""
    from app.worker import run_worker

    run_worker(interval=interval, once=once, jobs=jobs)


def main() -> None:
    try:
        app()
    except MIPError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        sys.exit(1)
    except ValueError as exc:
        # Ids and dates typed on the command line (e.g. a malformed UUID).
        err_console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
    except (OperationalError, ProgrammingError) as exc:
        # Most often a database that was never migrated, or MIP_DATA_DIR relative to another
        # working directory; the driver's message says which table or connection failed.
        url = make_url(get_settings().effective_database_url).render_as_string(hide_password=True)
        err_console.print(
            f"[red]database error[/red] at {url}: {exc.orig}\n"
            "Is this the right database (MIP_DATABASE_URL / MIP_DATA_DIR, relative to the "
            "current directory) and is it migrated (`mip migrate`)?",
            soft_wrap=True,
        )
        sys.exit(1)


__all__ = ["app", "main", "print_json"]

if __name__ == "__main__":
    main()
