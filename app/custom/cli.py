"""``mip custom``: resellers' custom models (create, list, show, archive) and their training
pairs (upload, data, remove-data, upload-archive).

The rest of the group's life cycle lives beside it and joins it in ``app/cli.py``'s
``GROUPS["custom"]``: the data set, vocabulary, versions, sharing and usage in
``app/custom/cli_versions.py``; training and its jobs in ``app/training/custom_cli.py``.

The CLI acts as staff: every reseller's models; `--reseller` names the owner. Exit status: 0
success; 1 a refused action (a name taken, archived already); 2 bad input.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.kit.cli import CLI_ACTOR, cli_session, exit_on_error, print_json, print_record, print_table

if TYPE_CHECKING:  # imported lazily at run time: `mip custom --help` loads no torch
    from app.kit.settings import Settings
    from app.tables.custom import CustomModel
    from asr.pairs import TranscriptScorer

custom_app = typer.Typer(
    help="Custom models of resellers: create, list, archive; their training data, vocabulary, "
    "training, versions (publish, roll back), sharing and usage."
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (with ids) for scripts.")]


def _out(session: Any, model: Any) -> dict[str, Any]:
    """The model as the HTTP API shows it, with its published version's number."""
    from app.custom.versions import read_model

    return read_model(session, model).model_dump(mode="json")


@custom_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Unique per reseller: a-z, 0-9 and dashes.")],
    reseller: Annotated[str, typer.Option(help="The owning reseller's id.")],
    language: Annotated[str, typer.Option(help="BCP-47, e.g. en or en-US.")] = "en",
    domain: Annotated[str, typer.Option(help="e.g. medical, finance.")] = "general",
    base_model: Annotated[
        str | None, typer.Option(help="Served model to start from (default: the default model).")
    ] = None,
    description: Annotated[str, typer.Option(help="What the model is for.")] = "",
    json_output: JsonOpt = False,
) -> None:
    """Create a custom model (status `collecting`) on a served base model."""
    from app.custom import service
    from app.engine.registry import open_model_registry
    from app.kit.settings import get_settings

    with exit_on_error():
        service.check_fields(name=name, language=language, domain=domain)
        registry = open_model_registry(get_settings())
        registry.scan()
        base = service.resolve_base(registry, base_model, language)
        with cli_session() as session:
            model = service.create_model(
                session,
                reseller_id=uuid.UUID(reseller),
                name=name,
                description=description,
                language=language,
                domain=domain,
                base=base,
                actor=CLI_ACTOR,
            )
            out = _out(session, model)
    print_json(out) if json_output else print_record("Custom model created", out)


@custom_app.command("list")
def list_models(
    reseller: Annotated[str | None, typer.Option(help="Only this reseller's models.")] = None,
    status: Annotated[str | None, typer.Option(help="Only models in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    json_output: JsonOpt = False,
) -> None:
    """List custom models, newest first."""
    from app.custom import repository, service

    with exit_on_error(), cli_session() as session:
        rows, total = repository.list_models(
            session,
            reseller_id=uuid.UUID(reseller) if reseller else None,
            status=service.check_status(status),
            limit=limit,
            offset=0,
        )
        models = [_out(session, row) for row in rows]
    if json_output:
        print_json({"models": models, "total": total})
        return
    print_table(
        f"Custom models ({total})",
        ["id", "reseller", "name", "language", "domain", "base", "status", "created"],
        [
            [
                m["id"],
                m["reseller_id"],
                m["name"],
                m["language"],
                m["domain"],
                f"{m['base_model']['name']} {m['base_model']['version']}",
                m["status"],
                m["created_at"],
            ]
            for m in models
        ],
    )


@custom_app.command("show")
def show(
    model: Annotated[str, typer.Argument(help="The model's id.")], json_output: JsonOpt = False
) -> None:
    """Show one custom model."""
    from app.custom import service

    with exit_on_error(), cli_session() as session:
        out = _out(session, service.get_visible_model(session, None, uuid.UUID(model)))
    print_json(out) if json_output else print_record("Custom model", out)


@custom_app.command("archive")
def archive(
    model: Annotated[str, typer.Argument(help="The model's id.")], json_output: JsonOpt = False
) -> None:
    """Archive a custom model: no more uploads, training or serving (its history stays)."""
    from app.custom import service, versions
    from app.kit.settings import get_settings

    with exit_on_error(), cli_session() as session:
        row = service.get_visible_model(session, None, uuid.UUID(model))
        out = _out(session, versions.archive(session, get_settings(), row, actor=CLI_ACTOR))
    print_json(out) if json_output else print_record("Custom model archived", out)


def _scorer(settings: Settings, model: CustomModel) -> TranscriptScorer | None:
    """The scorer of the model's base (loaded from the model directories), None when that
    base is no longer there: the transcript is then not scored."""
    from app.engine.registry import open_model_registry
    from asr.pairs import TranscriptScorer

    registry = open_model_registry(settings)
    registry.scan()
    base = registry.get(model.base_model_uuid)
    return TranscriptScorer(base.package) if base else None


@custom_app.command("upload")
def upload(
    model: Annotated[str, typer.Argument(help="The model's id.")],
    audio: Annotated[Path, typer.Argument(help="A WAV, MP3, FLAC or OGG file.")],
    transcript: Annotated[str | None, typer.Option(help="What is said in the audio.")] = None,
    transcript_file: Annotated[
        Path | None, typer.Option(help="A UTF-8 text file holding the transcript.")
    ] = None,
    speaker: Annotated[str | None, typer.Option(help="The speaker's id, if known.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Upload one training pair: checked with the base model, then kept sealed (accepted or
    rejected, with every reason)."""
    from app.custom import data, service
    from app.custom.schemas import DataFileRead
    from app.kit.settings import get_settings
    from app.samples.runtime import open_sample_store

    if (transcript is None) == (transcript_file is None):
        raise typer.BadParameter("Give --transcript or --transcript-file (one of them).")
    settings = get_settings()
    with exit_on_error():
        raw = transcript_file.read_bytes() if transcript_file else (transcript or "").encode()
        text = data.decode_transcript(raw)
        content = audio.read_bytes()
        with cli_session() as session:
            row = service.get_visible_model(session, None, uuid.UUID(model))
            data.check_open(row)
            record = data.upload_pair(
                session,
                open_sample_store(settings),
                row,
                name=audio.name,
                audio=content,
                transcript=text,
                speaker=speaker,
                scorer=_scorer(settings, row),
                actor=CLI_ACTOR,
            )
            out = DataFileRead.of(record).model_dump(mode="json")
    print_json(out) if json_output else print_record(f"Training pair {out['status']}", out)


@custom_app.command("data")
def list_data(
    model: Annotated[str, typer.Argument(help="The model's id.")],
    status: Annotated[str | None, typer.Option(help="accepted, rejected or removed only.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """The model's training pairs and its data set's validation report."""
    from app.custom import data, service
    from app.custom.schemas import DataFileRead

    if status not in (None, "accepted", "rejected", "removed"):
        raise typer.BadParameter("--status is accepted, rejected or removed.")
    with exit_on_error(), cli_session() as session:
        row = service.get_visible_model(session, None, uuid.UUID(model))
        files = [
            DataFileRead.of(f).model_dump(mode="json")
            for f in data.list_files(session, row, status=status)
        ]
        report = data.data_report(session, row)
    if json_output:
        print_json({"files": files, "report": report})
        return
    print_table(
        f"Training data of {row.name}",
        ["id", "name", "status", "seconds", "loss/char", "reasons"],
        [
            [
                f["id"],
                f["name"],
                f["status"],
                f"{f['duration_seconds']:.2f}" if f["duration_seconds"] else "",
                f"{f['loss_per_char']:.2f}" if f["loss_per_char"] is not None else "",
                ", ".join(r["code"] for r in f["reasons"]),
            ]
            for f in files
        ],
    )
    print_record("Data set", report)


@custom_app.command("remove-data")
def remove_data(
    model: Annotated[str, typer.Argument(help="The model's id.")],
    file: Annotated[str, typer.Argument(help="The training pair's id.")],
    json_output: JsonOpt = False,
) -> None:
    """Remove a training pair: its sealed audio and transcript are deleted, its record stays."""
    from app.custom import data, service
    from app.custom.schemas import DataFileRead
    from app.kit.settings import get_settings
    from app.samples.runtime import open_sample_store

    with exit_on_error(), cli_session() as session:
        row = service.get_visible_model(session, None, uuid.UUID(model))
        record = data.get_file(session, row, uuid.UUID(file))
        removed = data.remove_file(
            session, open_sample_store(get_settings()), row, record, actor=CLI_ACTOR
        )
        out = DataFileRead.of(removed).model_dump(mode="json")
    print_json(out) if json_output else print_record("Training pair removed", out)


@custom_app.command("upload-archive")
def upload_archive(
    model: Annotated[str, typer.Argument(help="The model's id.")],
    archive: Annotated[Path, typer.Argument(help="A zip, tar or tar.gz of pairs.")],
    json_output: JsonOpt = False,
) -> None:
    """Upload an archive of training pairs (audio beside its .txt, or a manifest.csv/.jsonl
    with speakers): each pair checked and kept, each unusable entry reported."""
    from app.custom import data, service
    from app.custom.schemas import DataFileRead
    from app.kit.settings import get_settings
    from app.samples.runtime import open_sample_store

    settings = get_settings()
    with exit_on_error():
        content = archive.read_bytes()
        if len(content) > settings.custom_max_archive_bytes:
            raise typer.BadParameter(
                f"{archive} is over MIP_CUSTOM_MAX_ARCHIVE_BYTES "
                f"({settings.custom_max_archive_bytes} bytes)."
            )
        with cli_session() as session:
            row = service.get_visible_model(session, None, uuid.UUID(model))
            data.check_open(row)
            result = data.upload_archive(
                session,
                open_sample_store(settings),
                row,
                content,
                scorer=_scorer(settings, row),
                actor=CLI_ACTOR,
            )
            files = [DataFileRead.of(r).model_dump(mode="json") for r in result.files]
            report = data.data_report(session, row)
    if json_output:
        out = {
            "format": result.format,
            "mode": result.mode,
            "files": files,
            "problems": result.problems,
            "report": report,
        }
        print_json(out)
        return
    accepted = sum(1 for f in files if f["status"] == "accepted")
    print_table(
        f"{archive.name}: {len(files)} pairs, {accepted} accepted",
        ["name", "status", "reasons"],
        [[f["name"], f["status"], ", ".join(r["code"] for r in f["reasons"])] for f in files]
        + [[p["name"], "not used", p["code"]] for p in result.problems],
    )
