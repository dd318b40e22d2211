"""``mip``: the command line of the service (serve, worker, migrate, bootstrap, billing, audit).

Each command group lives beside its domain (``app/<domain>/cli.py``) and is imported only
when it runs: ``mip orgs list`` loads tenancy, not torch, pandas or great-expectations (a
test checks the modules a command loads). ``mip --help`` lists the groups from
:data:`GROUPS` without importing any of them.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Annotated

import typer
import typer.core
import typer.main
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

# Typer 0.29 vendors the part of click it uses; its groups take these classes.
from typer._click import Command, Context

from app.kit.cli import err_console, print_json, print_record
from app.kit.errors import MIPError
from app.kit.settings import get_settings


@dataclass(frozen=True, slots=True)
class LazyGroup:
    """A command group named here and built from ``module:attribute`` Typer apps on use."""

    help: str
    parts: tuple[str, ...]

    def load(self, name: str) -> Command:
        apps = [_attribute(part) for part in self.parts]
        if len(apps) == 1:
            group = apps[0]
        else:  # one group made of several domains' commands (``mip store``)
            group = typer.Typer(help=self.help)
            for part in apps:
                group.registered_commands.extend(part.registered_commands)
        command = typer.main.get_group(group)
        command.name = name
        return command


def _attribute(path: str) -> typer.Typer:
    module, _, attribute = path.partition(":")
    found: typer.Typer = getattr(importlib.import_module(module), attribute)
    return found


# Top-level groups, in ``mip --help`` order. Their help is written here so that listing them
# imports nothing; a test checks that it is each group's own help.
GROUPS: dict[str, LazyGroup] = {
    "resellers": LazyGroup(
        "Resellers (optional owners of customer organizations).",
        ("app.tenancy.cli:resellers_app",),
    ),
    "orgs": LazyGroup(
        "Organizations: plan, contract terms, retention.", ("app.tenancy.cli:orgs_app",)
    ),
    "projects": LazyGroup(
        "Projects under organizations (Deepgram's 'project').", ("app.tenancy.cli:projects_app",)
    ),
    "keys": LazyGroup(
        "Project API keys (the secret is shown once).", ("app.tenancy.cli:keys_app",)
    ),
    "staff": LazyGroup(
        "Staff keys with a role: admin, billing, dataops, auditor.",
        ("app.tenancy.cli:staff_app",),
    ),
    "prices": LazyGroup(
        "The price book: rate per audio minute by plan and model tier.",
        ("app.pricing.cli:prices_app",),
    ),
    "audit": LazyGroup(
        "The hash-chained audit log: verify, signed checkpoints, exports an auditor verifies "
        "offline.",
        ("app.audit.cli:audit_app", "app.compliance.audit_cli:audit_app"),
    ),
    "compliance": LazyGroup(
        "Compliance: the period report for auditors, a data subject's access export.",
        ("app.compliance.cli:compliance_app",),
    ),
    "billing": LazyGroup(
        "Billing: period reports, invoice reconciliation, period close.",
        ("app.billing.cli:billing_app",),
    ),
    "store": LazyGroup(
        "The encrypted sample store: verify, label, erase, purge, audit sampling.",
        (
            "app.samples.cli:store_app",
            "app.erasure.cli:erasure_app",
            "app.sampling.cli:sampling_app",
        ),
    ),
    "crypto": LazyGroup(
        "Envelope keys: rotate the key-encryption key or a data key.",
        ("app.samples.cli:crypto_app",),
    ),
    "asr": LazyGroup(
        "The ASR engine: synthetic corpora, base model training, evaluation.",
        ("app.engine.cli:asr_app",),
    ),
    "curate": LazyGroup(
        "Curation: build versioned, validated, balanced training sets from the sample store.",
        ("app.datasets.cli:curate_app",),
    ),
    "train": LazyGroup(
        "Fine-tuning jobs: submit, follow, cancel (run by `mip worker`).",
        ("app.training.cli:train_app",),
    ),
    "custom": LazyGroup(
        "Custom models of resellers: create, list, archive; their training data, vocabulary, "
        "training, versions (publish, roll back), sharing and usage.",
        (
            "app.custom.cli:custom_app",
            "app.custom.cli_versions:versions_app",
            "app.training.custom_cli:custom_training_app",
        ),
    ),
    "models": LazyGroup(
        "Model versions trained here: inspect, promote, demote, reject.",
        ("app.training.cli:models_app",),
    ),
}


class MipGroup(typer.core.TyperGroup):
    """The ``mip`` group: its own commands plus :data:`GROUPS`, imported when one runs."""

    def list_commands(self, ctx: Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in GROUPS if n not in self.commands)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in GROUPS:
            # For listing only (help, completion): a stand-in that carries the help text.
            return typer.core.TyperGroup(name=cmd_name, help=GROUPS[cmd_name].help)
        return command

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
        name = args[0] if args else None
        if name is not None and name in GROUPS and name not in self.commands:
            self.add_command(GROUPS[name].load(name), name)
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="mip",
    cls=MipGroup,
    help="MIP Governance Service: ledger, MIP pricing, billing, sample store, audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Effective configuration.")
app.add_typer(config_app, name="config")


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
    from migrations import run as migrations

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


__all__ = ["GROUPS", "app", "main", "print_json"]

if __name__ == "__main__":
    main()
