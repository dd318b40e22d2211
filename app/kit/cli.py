"""Helpers shared by the ``mip`` sub-commands: a unit-of-work session and output."""

from __future__ import annotations

import getpass
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from app.kit.db import create_db_engine, make_sessionmaker, session_scope
from app.kit.errors import BadRequest, MIPError
from app.kit.settings import get_settings

# Piped output (no terminal) gets a wide console: rich would otherwise cut figures to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)


def _cli_actor() -> str:
    """Who ran a command, for the audit log: ``cli:<OS user>@<host>``.

    The audit log's actor column holds 100 characters; a user or host name is cut to fit.
    """
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (a bare container)
        user = f"uid{os.getuid()}"
    return f"cli:{user[:40]}@{socket.gethostname()[:50]}"


CLI_ACTOR = _cli_actor()


@contextmanager
def cli_session() -> Iterator[Session]:
    """One command, one transaction (committed when the command succeeds)."""
    engine = create_db_engine(get_settings().effective_database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            yield session
    finally:
        engine.dispose()


@contextmanager
def cli_sessionmaker() -> Iterator[sessionmaker[Session]]:
    """For commands that commit step by step (purges, erasures, key rotation)."""
    engine = create_db_engine(get_settings().effective_database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


def print_json(payload: Any) -> None:
    sys.stdout.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2, default=str).decode())
    sys.stdout.write("\n")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        # Fold rather than truncate: a billing figure must never lose digits to an ellipsis.
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def print_record(title: str, record: dict[str, Any]) -> None:
    console.print(f"[bold]{title}[/bold]")
    for key, value in record.items():
        console.print(f"  {key}: {value}")


@contextmanager
def exit_on_error() -> Iterator[None]:
    """Errors become a message on stderr: exit 2 for bad input or an unwritable file, else 1."""
    try:
        yield
    except BadRequest as exc:
        err_console.print(f"[red]error:[/red] {exc.message}", soft_wrap=True)
        raise typer.Exit(2) from exc
    except MIPError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}", soft_wrap=True)
        raise typer.Exit(1) from exc
    except (OSError, ValueError) as exc:  # an unwritable file; a malformed file or argument
        err_console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
