"""``mip curate``: build and inspect training sets; validate or balance a manifest file."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from app.datasets import reports, repository, service
from app.datasets.catalog import CatalogFilter
from app.datasets.schemas import TrainingSetRead, TrainingSetSummary
from app.kit.cli import (
    CLI_ACTOR,
    cli_session,
    cli_sessionmaker,
    console,
    exit_on_error,
    print_json,
    print_table,
)
from app.kit.settings import get_settings
from app.samples.runtime import open_sample_store
from curation.balance import balance

curate_app = typer.Typer(
    help="Curation: build versioned, validated, balanced training sets from the sample store."
)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
BalanceOption = Annotated[
    str,
    typer.Option("--balance", help="Comma-separated dimensions, e.g. accent,age_group,sex,noise."),
]
HoursOption = Annotated[float, typer.Option("--hours", help="Hours budget of the set.", min=0.0)]
TargetOption = Annotated[
    Path | None,
    typer.Option(
        "--target",
        help="JSON file: targets per dimension (uniform / proportional / shares), max_share, "
        "min_share.",
        exists=True,
        dir_okay=False,
    ),
]


def _dimensions(text: str) -> tuple[str, ...]:
    return tuple(d.strip() for d in text.split(",") if d.strip())


def _target(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise service.InvalidTrainingSet(f"--target {path}: not a JSON file ({exc})") from None
    if not isinstance(document, dict):
        raise service.InvalidTrainingSet(f"--target {path}: expected a JSON object")
    return document


@curate_app.command("build")
def build(
    name: Annotated[str, typer.Option("--name", help="Training set name (new version).")],
    dimensions: BalanceOption = "",
    hours: HoursOption = 1.0,
    target: TargetOption = None,
    domain: Annotated[str | None, typer.Option(help="Only samples of this domain.")] = None,
    language: Annotated[str | None, typer.Option(help="Only samples in this language.")] = None,
    organization: Annotated[
        list[uuid.UUID] | None, typer.Option(help="Only this organization (repeatable).")
    ] = None,
    reference_only: Annotated[
        bool, typer.Option(help="Only samples with a labeler's reference transcript.")
    ] = False,
    eval_fraction: Annotated[float, typer.Option(help="Share held out for evaluation.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Balancing seed.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """Build a new version of NAME from the sample store: validate, balance, record lineage."""
    store = open_sample_store(get_settings())
    with exit_on_error(), cli_session() as session:
        request = service.BuildRequest(
            name=name,
            dimensions=_dimensions(dimensions),
            hours=hours,
            target=_target(target),
            where=CatalogFilter(
                organization_ids=organization or None,
                domain=domain,
                language=language,
                reference_only=reference_only,
            ),
            eval_fraction=eval_fraction,
            seed=seed,
        )
        row = service.build_training_set(session, store, request, actor=CLI_ACTOR)
        read = TrainingSetRead.of(row)
    if json_output:
        print_json(read.model_dump(mode="json"))
        return
    stats = read.validation.get("statistics", {})
    console.print(
        f"built [bold]{read.name}:{read.version}[/bold] ({read.id}): {read.sample_count} train + "
        f"{read.eval_count} eval samples, {read.hours:.2f} h; validation: "
        f"{stats.get('quarantined_rows', 0)} of {stats.get('rows', 0)} quarantined; "
        f"manifest {read.manifest_hash[:12]}"
    )
    deficit = read.balance.get("deficit", [])
    if deficit:
        print_table(
            "Deficit (hours missing to reach the target)",
            ["dimension", "value", "target h", "selected h", "missing h"],
            [
                (
                    d["dimension"],
                    d["value"],
                    f"{d['target_hours']:.2f}",
                    f"{d['selected_hours']:.2f}",
                    f"{d['missing_hours']:.2f}",
                )
                for d in deficit
            ],
        )


@curate_app.command("list")
def list_sets(
    name: Annotated[str | None, typer.Option(help="Only versions of this name.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Training sets, newest first."""
    with cli_session() as session:
        rows, _ = repository.list_training_sets(session, name=name, limit=1000, offset=0)
        summaries = [TrainingSetSummary.of(r) for r in rows]
    if json_output:
        print_json([s.model_dump(mode="json") for s in summaries])
        return
    print_table(
        "Training sets",
        ["name", "version", "status", "train", "eval", "hours", "id"],
        [
            (s.name, s.version, s.status, s.sample_count, s.eval_count, s.hours, s.id)
            for s in summaries
        ],
    )


@curate_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="Id, NAME (latest) or NAME:VERSION.")],
    samples: Annotated[bool, typer.Option(help="Also list the sample ids.")] = False,
) -> None:
    """A training set's lineage: parameters, validation, balance, status (JSON)."""
    with exit_on_error(), cli_session() as session:
        row = service.get_training_set_or_raise(session, ref)
        payload: dict[str, Any] = TrainingSetRead.of(row).model_dump(mode="json")
        if samples:
            payload["samples"] = [
                {"sample_id": str(s), "organization_id": str(o), "split": p}
                for s, o, p in repository.members(session, row.id)
            ]
    print_json(payload)


@curate_app.command("report")
def report(
    ref: Annotated[str, typer.Argument(help="Id, NAME (latest) or NAME:VERSION.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the reports into.")],
) -> None:
    """Download a training set's reports (validation page, distribution and deficit plots).

    They are decrypted here and written in plaintext to --out: keep that folder private.
    """
    store = open_sample_store(get_settings())
    with exit_on_error(), cli_session() as session:
        row = service.get_training_set_or_raise(session, ref)
        contents = {name: reports.read_report(store, row, name) for name in reports.REPORT_FILES}
        out.mkdir(parents=True, exist_ok=True)
        for name, content in contents.items():
            (out / name).write_bytes(content)
    console.print(f"wrote {', '.join(reports.REPORT_FILES)} to {out}")


@curate_app.command("encrypt-reports")
def encrypt_reports(json_output: JsonOption = False) -> None:
    """Encrypt the plaintext reports of training sets built before reports were encrypted.

    Each set gets its report key; its reports are sealed, the key committed, then the
    plaintext deleted. A set already tainted by an erasure or a purge has its reports removed
    instead. Resumable: run it again after an interruption (one run at a time).
    """
    store = open_sample_store(get_settings())
    with exit_on_error(), cli_sessionmaker() as factory:
        done = reports.encrypt_legacy_reports(factory, store, actor=CLI_ACTOR)
    if json_output:
        print_json(done.as_dict())
        return
    console.print(
        f"encrypted the reports of {len(done.encrypted_sets)} training sets ({done.reports} "
        f"reports, {done.missing} missing); removed those of {len(done.removed_sets)} tainted "
        f"sets; {done.deleted} plaintext objects deleted"
    )


@curate_app.command("validate")
def validate_file(
    manifest: Annotated[Path, typer.Argument(help="A manifest: .csv, .parquet or .jsonl.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for validation.json/.html.")],
    min_duration: Annotated[float, typer.Option(help="Seconds.")] = 0.5,
    max_duration: Annotated[float, typer.Option(help="Seconds.")] = 30.0,
) -> None:
    """Validate a manifest file with great-expectations; write the results and the quarantine.

    Exits 1 when any row fails.
    """
    from curation.manifests import read_manifest
    from curation.validation import ValidationRules, validate  # ~1.5 s: only this command

    with exit_on_error():
        rules = ValidationRules(min_duration=min_duration, max_duration=max_duration)
        result = validate(read_manifest(manifest), rules)
        paths = result.save(out)
    stats = result.statistics
    console.print(
        f"{stats['valid_rows']} of {stats['rows']} rows valid, {stats['quarantined_rows']} "
        f"quarantined; wrote {', '.join(str(p) for p in paths.values())}"
    )
    if not result.success:
        raise typer.Exit(1)


@curate_app.command("balance")
def balance_file(
    manifest: Annotated[Path, typer.Argument(help="A manifest: .csv, .parquet or .jsonl.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the balanced manifest + plots.")],
    dimensions: BalanceOption = "",
    hours: HoursOption = 1.0,
    target: TargetOption = None,
    seed: Annotated[int, typer.Option(help="Balancing seed.")] = 0,
) -> None:
    """Balance a manifest file; write balanced.parquet, balance.json and the plots."""
    with exit_on_error():
        _balance_file(manifest, out, _dimensions(dimensions), hours, _target(target), seed)


def _balance_file(
    manifest: Path,
    out: Path,
    dimensions: tuple[str, ...],
    hours: float,
    target: dict[str, Any] | None,
    seed: int,
) -> None:
    from curation.manifests import read_manifest, write_manifest
    from curation.plots import plot_deficit, plot_distributions

    spec = service.balance_spec(dimensions, hours=hours, target=target, seed=seed)
    result = balance(read_manifest(manifest), spec)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(result.selected, out / "balanced.parquet")
    (out / "balance.json").write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    plot_distributions(result, out / "distributions.png")
    plot_deficit(result, out / "deficit.png")
    summary = result.summary
    console.print(
        f"selected {summary.get('selected_rows')} rows, {summary.get('selected_hours', 0):.2f} h "
        f"of {summary.get('input_hours', 0):.2f} h; {len(result.deficit)} groups short; "
        f"wrote {out}"
    )
