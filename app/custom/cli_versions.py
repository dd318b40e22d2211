"""``mip custom``, after the data: confirm or reopen the data set, the vocabulary, versions
(test report, publish, roll back, reject), sharing with organizations, and usage.

The same services as the HTTP endpoints (``app/custom/version_endpoints.py``), as staff:
every reseller's models. ``--json`` prints what the HTTP API returns. Exit status: 0 success;
1 a refused action (nothing to confirm, a version that cannot be published); 2 bad input.

    mip custom confirm MODEL
    mip custom vocabulary MODEL --set terms.csv
    mip custom publish MODEL 2          # publish 1 again to roll back
    mip custom assign MODEL ORG --mode default
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.kit.cli import (
    CLI_ACTOR,
    cli_session,
    console,
    err_console,
    exit_on_error,
    print_json,
    print_record,
    print_table,
)

if TYPE_CHECKING:  # imported lazily at run time: `mip custom --help` loads no torch
    from sqlalchemy.orm import Session

    from app.custom.version_schemas import AssignmentList
    from app.tables.custom import CustomModel, CustomModelAssignment, CustomModelVersion
    from asr.vocabulary import Vocabulary

versions_app = typer.Typer(
    help="Custom models after the data: confirm, vocabulary, versions, sharing, usage."
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (with ids) for scripts.")]
ModelArg = Annotated[str, typer.Argument(help="The model's id.")]
NumberArg = Annotated[int, typer.Argument(min=1, help="The version's number (1, 2, ...).")]
OrgsArg = Annotated[list[str], typer.Argument(help="Organization ids (one or more).")]

_CSV_COLUMNS = ("term", "sounds_like", "weight")


def _model_out(session: Session, model: CustomModel) -> dict[str, Any]:
    """The model as the HTTP API shows it: with the number of its published version."""
    from app.custom.versions import read_model

    return read_model(session, model).model_dump(mode="json")


def _get_model(session: Session, model: str) -> CustomModel:
    from app.custom import service

    return service.get_visible_model(session, None, uuid.UUID(model))


# --- the data set ---------------------------------------------------------------------------


@versions_app.command("confirm")
def confirm(model: ModelArg, json_output: JsonOpt = False) -> None:
    """Confirm (freeze) the data set; the model is then `ready_to_train`.

    The accepted pairs are frozen under a content hash: no uploads or removals until the set
    is reopened."""
    from app.custom import dataset
    from app.kit.settings import get_settings
    from app.samples.runtime import open_sample_store

    with exit_on_error(), cli_session() as session:
        row = _get_model(session, model)
        dataset.confirm(session, open_sample_store(get_settings()), row, actor=CLI_ACTOR)
        out = _model_out(session, row)
    print_json(out) if json_output else print_record("Data set confirmed", out)


@versions_app.command("reopen")
def reopen(model: ModelArg, json_output: JsonOpt = False) -> None:
    """Reopen a confirmed data set so that pairs can be added or removed."""
    from app.custom import dataset

    with exit_on_error(), cli_session() as session:
        row = _get_model(session, model)
        dataset.reopen(session, row, actor=CLI_ACTOR)
        out = _model_out(session, row)
    print_json(out) if json_output else print_record("Data set reopened", out)


# --- vocabulary -----------------------------------------------------------------------------


def _csv_terms(text: str, name: str) -> list[dict[str, Any]]:
    """Rows of a CSV with a header naming `term` and optionally `sounds_like` (spellings
    separated by semicolons) and `weight` (blank: the default)."""
    import csv
    import io

    from app.kit.errors import BadRequest

    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    if "term" not in columns:
        raise BadRequest(f"{name}: the first line names the columns: term,sounds_like,weight.")
    unknown = [c for c in columns if c not in _CSV_COLUMNS]
    if unknown:
        raise BadRequest(
            f"{name}: unknown columns {', '.join(unknown)} (term, sounds_like, weight)."
        )
    reader.fieldnames = columns
    terms: list[dict[str, Any]] = []
    for line, row in enumerate(reader, start=2):
        if None in row:
            raise BadRequest(f"{name} line {line}: more fields than columns.")
        if not any((v or "").strip() for v in row.values()):
            continue  # a blank line
        term: dict[str, Any] = {"term": (row.get("term") or "").strip()}
        spellings = [s.strip() for s in (row.get("sounds_like") or "").split(";")]
        if any(spellings):
            term["sounds_like"] = [s for s in spellings if s]
        weight = (row.get("weight") or "").strip()
        if weight:
            try:
                term["weight"] = float(weight)
            except ValueError:
                raise BadRequest(
                    f"{name} line {line}: weight {weight!r} is not a number."
                ) from None
        terms.append(term)
    return terms


def _read_vocabulary(path: Path) -> Vocabulary:
    """The vocabulary of a `.json` file (`{"terms": [...]}`) or a `.csv` file, checked as the
    HTTP API checks its body."""
    import json

    from pydantic import ValidationError

    from app.custom.version_schemas import VocabularyIn
    from app.kit.errors import BadRequest
    from asr.vocabulary import Vocabulary, VocabularyError

    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise BadRequest(f"{path.name}: give a .json or a .csv vocabulary file.")
    try:
        text = path.read_bytes().decode("utf-8-sig")
        raw = json.loads(text) if suffix == ".json" else {"terms": _csv_terms(text, path.name)}
        body = VocabularyIn.model_validate(raw)
    except UnicodeDecodeError:
        raise BadRequest(f"{path.name} is not UTF-8 text.") from None
    except json.JSONDecodeError as error:
        raise BadRequest(f"{path.name} is not valid JSON: {error}") from None
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(p) for p in e['loc']) or 'vocabulary'}: {e['msg']}"
            for e in error.errors()
        ]
        raise BadRequest(f"Invalid vocabulary in {path.name}: {'; '.join(problems)}.") from None
    try:
        return Vocabulary.parse(t.model_dump() for t in body.terms)
    except VocabularyError as error:
        raise BadRequest(f"Invalid vocabulary: {error}") from None


@versions_app.command("vocabulary")
def vocabulary(
    model: ModelArg,
    set_file: Annotated[
        Path | None,
        typer.Option(
            "--set",
            help='Replace it from a JSON file {"terms": [{"term", "sounds_like", "weight"}]} or '
            "a CSV file with the columns term,sounds_like,weight (sounds-like spellings "
            "separated by semicolons; a blank weight is the default, 1).",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Show the vocabulary the next version is trained with, or replace it (`--set`)."""
    from app.custom.version_schemas import VocabularyRead

    with exit_on_error():
        if set_file is None:
            with cli_session() as session:
                row = _get_model(session, model)
                out = VocabularyRead(terms=list(row.vocabulary or [])).model_dump(mode="json")
        else:
            from app.custom import versions
            from app.engine.registry import open_model_registry
            from app.kit.settings import get_settings

            parsed = _read_vocabulary(set_file)
            registry = open_model_registry(get_settings())
            registry.scan()
            with cli_session() as session:
                row = _get_model(session, model)
                versions.set_vocabulary(session, row, parsed, registry=registry, actor=CLI_ACTOR)
                out = VocabularyRead(terms=list(row.vocabulary)).model_dump(mode="json")
    if json_output:
        print_json(out)
        return
    print_table(
        f"Vocabulary ({len(out['terms'])} terms)",
        ["term", "sounds like", "weight"],
        [[t["term"], "; ".join(t.get("sounds_like", [])), t.get("weight")] for t in out["terms"]],
    )


# --- versions -------------------------------------------------------------------------------


def _rate(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else ""


def _version_out(version: CustomModelVersion) -> dict[str, Any]:
    from app.custom.version_schemas import VersionRead

    return VersionRead.of(version).model_dump(mode="json")


@versions_app.command("versions")
def list_versions(model: ModelArg, json_output: JsonOpt = False) -> None:
    """The model's versions, newest first, with their test against the standard model."""
    from app.custom import versions

    with exit_on_error(), cli_session() as session:
        row = _get_model(session, model)
        found = [_version_out(v) for v in versions.list_versions(session, row)]
    if json_output:
        print_json({"versions": found})
        return
    print_table(
        f"Versions of {row.name}",
        ["number", "status", "package", "WER custom", "WER standard", "files", "created"],
        [
            [
                v["number"],
                v["status"],
                f"{v['package_name']} {v['package_version']}",
                _rate(v["test"].get("wer_custom")),
                _rate(v["test"].get("wer_standard")),
                v["data_files"],
                v["created_at"],
            ]
            for v in found
        ],
    )


@versions_app.command("version")
def show_version(model: ModelArg, number: NumberArg, json_output: JsonOpt = False) -> None:
    """One version: what it was built from (data set, vocabulary, base, settings), its test."""
    from app.custom import versions

    with exit_on_error(), cli_session() as session:
        out = _version_out(versions.get_version(session, _get_model(session, model), number))
    print_json(out) if json_output else print_record(f"Version {number}", out)


@versions_app.command("report")
def report(
    model: ModelArg,
    number: NumberArg,
    format: Annotated[
        str | None,
        typer.Option(
            help="html or json (default: json printed here; with --output, html unless the file "
            "ends in .json).",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write the report to this file (required for html).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """The version's sealed test report against the standard model.

    WER and CER of both with confidence intervals, per speaker, the common errors (the HTML
    page also has plots). Without --output it prints the JSON report."""
    from app.custom import versions
    from app.kit.settings import get_settings
    from app.samples.runtime import open_sample_store

    if format is not None:
        chosen = format
    else:  # printed here: JSON; written to a file: HTML unless the file is a .json
        html = output is not None and output.suffix.lower() != ".json"
        chosen = "html" if html else "json"
    if chosen not in ("html", "json"):
        raise typer.BadParameter("--format is html or json.")
    if chosen == "html" and output is None:
        raise typer.BadParameter("An HTML report is written to a file: give --output.")
    with exit_on_error():
        with cli_session() as session:
            row = _get_model(session, model)
            version = versions.get_version(session, row, number)
            content = versions.read_report(
                open_sample_store(get_settings()), row, version, f"test.{chosen}"
            )
        if output is None:
            import sys

            sys.stdout.write(content.decode())
            sys.stdout.write("\n" if not content.endswith(b"\n") else "")
            return
        output.write_bytes(content)
    out = {
        "model_id": str(row.id),
        "version": number,
        "format": chosen,
        "output": str(output),
        "bytes": len(content),
    }
    print_json(out) if json_output else print_record("Report written", out)


@versions_app.command("publish")
def publish(model: ModelArg, number: NumberArg, json_output: JsonOpt = False) -> None:
    """Publish a version: accept its test, or roll back to an earlier one.

    Its package is written into the models directory and the previously published one
    retired. A running server serves it after its next poll of that directory
    (MIP_MODELS_POLL_SECONDS)."""
    from app.custom import versions
    from app.kit.settings import get_settings
    from app.samples.runtime import open_sample_store

    settings = get_settings()
    with exit_on_error(), cli_session() as session:
        row = _get_model(session, model)
        version = versions.get_version(session, row, number)
        versions.publish(
            session, open_sample_store(settings), settings, row, version, actor=CLI_ACTOR
        )
        out = _version_out(version)
    err_console.print(
        f"Wrote {out['filename']} into {settings.effective_models_dir}; a running server "
        f"serves it after its next poll (every {settings.models_poll_seconds:g} s).",
        soft_wrap=True,
    )
    print_json(out) if json_output else print_record(f"Version {number} published", out)


@versions_app.command("reject")
def reject(model: ModelArg, number: NumberArg, json_output: JsonOpt = False) -> None:
    """Reject a tested candidate version (retrain with more data or vocabulary)."""
    from app.custom import versions

    with exit_on_error(), cli_session() as session:
        row = _get_model(session, model)
        version = versions.get_version(session, row, number)
        out = _version_out(versions.reject(session, row, version, actor=CLI_ACTOR))
    print_json(out) if json_output else print_record(f"Version {number} rejected", out)


# --- sharing --------------------------------------------------------------------------------


def _moment(value: str | None, option: str) -> dt.datetime | None:
    """An ISO 8601 time with a time zone, in UTC (as the HTTP API takes it)."""
    from app.kit.errors import BadRequest

    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{option}: {value!r} is not an ISO 8601 time.") from None
    if moment.tzinfo is None:
        raise BadRequest("Give times with a time zone, e.g. 2026-12-31T00:00:00Z.")
    return moment.astimezone(dt.UTC)


def _assignments(rows: Iterable[CustomModelAssignment]) -> AssignmentList:
    """As the HTTP API lists them: ``active`` as of now."""
    from app.custom.version_schemas import AssignmentList, AssignmentRead
    from app.kit.db import utcnow

    now = utcnow()
    return AssignmentList(assignments=[AssignmentRead.of(r, now=now) for r in rows])


def _print_assignments(title: str, listing: AssignmentList, json_output: bool) -> None:
    out = listing.model_dump(mode="json")
    if json_output:
        print_json(out)
        return
    print_table(
        title,
        ["organization", "mode", "permissions", "active", "revoke at", "updated"],
        [
            [
                a["organization_id"],
                a["mode"],
                ", ".join(a["permissions"]),
                "yes" if a["active"] else "no",
                a["revoke_at"],
                a["updated_at"],
            ]
            for a in out["assignments"]
        ],
    )


@versions_app.command("assign")
def assign(
    model: ModelArg,
    organizations: OrgsArg,
    mode: Annotated[
        str,
        typer.Option(
            help="default (used when a request names no model; one per organization) or "
            "optional (used when a request names it)."
        ),
    ] = "optional",
    permission: Annotated[
        list[str] | None,
        typer.Option(
            "--permission",
            help="view, use or contribute; repeat for several (default: view and use).",
        ),
    ] = None,
    revoke_at: Annotated[
        str | None,
        typer.Option(help="End the share at this ISO time with a zone, e.g. 2026-12-31T00:00Z."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Share the model with organizations of its reseller (sharing again changes the share)."""
    from app.custom import sharing
    from app.custom.version_schemas import DEFAULT_PERMISSIONS

    with exit_on_error():
        ids = [uuid.UUID(o) for o in organizations]
        until = _moment(revoke_at, "--revoke-at")
        with cli_session() as session:
            row = _get_model(session, model)
            rows = sharing.assign(
                session,
                row,
                organization_ids=ids,
                mode=mode,
                permissions=set(permission or DEFAULT_PERMISSIONS),
                revoke_at=until,
                actor=CLI_ACTOR,
            )
            listing = _assignments(rows)
    _print_assignments(f"{row.name} shared", listing, json_output)


@versions_app.command("revoke")
def revoke(
    model: ModelArg,
    organizations: OrgsArg,
    at: Annotated[
        str | None,
        typer.Option(help="Revoke at this future ISO time with a zone (default: now)."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Revoke the model from organizations, now or at a scheduled time.

    From then on their requests for it are refused, without a restart."""
    from app.custom import sharing

    with exit_on_error():
        ids = [uuid.UUID(o) for o in organizations]
        moment = _moment(at, "--at")
        with cli_session() as session:
            row = _get_model(session, model)
            rows = sharing.revoke(session, row, organization_ids=ids, at=moment, actor=CLI_ACTOR)
            listing = _assignments(rows)
    _print_assignments(f"{row.name} revoked", listing, json_output)


@versions_app.command("assignments")
def assignments(
    model: ModelArg,
    include_revoked: Annotated[
        bool, typer.Option("--include-revoked", help="Also list ended shares.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """The organizations the model is shared with."""
    from app.custom import sharing

    with exit_on_error(), cli_session() as session:
        row = _get_model(session, model)
        listing = _assignments(
            sharing.list_assignments(session, row, include_revoked=include_revoked)
        )
    _print_assignments(f"{row.name} is shared with", listing, json_output)


# --- usage ----------------------------------------------------------------------------------


def _day(value: str | None, option: str) -> dt.date | None:
    from app.kit.errors import BadRequest

    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{option}: {value!r} is not a date (YYYY-MM-DD).") from None


@versions_app.command("usage")
def usage(
    model: ModelArg,
    start: Annotated[
        str | None, typer.Option(help="First UTC day, YYYY-MM-DD (default: 29 days before end).")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Last UTC day, YYYY-MM-DD, included (default: today).")
    ] = None,
    organization: Annotated[
        str | None, typer.Option(help="Only this organization's requests (its id).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Usage per day, organization and version: successful requests, audio minutes, last use."""
    from app.custom import usage as custom_usage
    from app.custom.version_schemas import UsageRead, UsageRow
    from app.kit.db import utcnow

    with exit_on_error():
        last = _day(end, "--end") or utcnow().date()
        first = _day(start, "--start") or last - dt.timedelta(days=29)
        org = uuid.UUID(organization) if organization else None
        with cli_session() as session:
            row = _get_model(session, model)
            lines = custom_usage.model_usage(
                session, row, start=first, end=last, organization_id=org
            )
    rows = [
        UsageRow(
            day=line.day,
            organization_id=line.organization_id,
            version=line.version,
            requests=line.requests,
            audio_minutes=round(line.audio_seconds / 60, 4),
            last_used=line.last_used,
        )
        for line in lines
    ]
    out = UsageRead(
        model_id=row.id,
        start=first,
        end=last,
        rows=rows,
        totals={
            "requests": sum(r.requests for r in rows),
            "audio_minutes": round(sum(line.audio_seconds for line in lines) / 60, 4),
        },
    ).model_dump(mode="json")
    if json_output:
        print_json(out)
        return
    print_table(
        f"Usage of {row.name}, {first} to {last}",
        ["day", "organization", "version", "requests", "audio minutes", "last used"],
        [
            [
                r["day"],
                r["organization_id"],
                r["version"],
                r["requests"],
                r["audio_minutes"],
                r["last_used"],
            ]
            for r in out["rows"]
        ],
    )
    console.print(
        f"Total: {out['totals']['requests']} requests, {out['totals']['audio_minutes']} minutes"
    )
