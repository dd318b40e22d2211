"""``mip custom train|jobs|job|logs|cancel``: train a custom model, follow its jobs.

The same services as the HTTP endpoints (``app/training/custom_endpoints.py``), as staff:
every reseller's models. ``--json`` prints what the HTTP API returns. The job is queued here
and run by ``mip worker``. Exit status: 0 success; 1 a refused action (a data set not
confirmed or too small, a finished job); 2 bad input.

    mip custom train MODEL --minutes 30
    mip custom logs MODEL JOB
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any

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

if TYPE_CHECKING:  # imported lazily at run time: `mip custom --help` loads no torch
    from sqlalchemy.orm import Session

    from app.tables.custom import CustomModel
    from app.tables.training import TrainingJob
    from app.training.schemas import CustomJobParams

custom_training_app = typer.Typer(
    help="Train a custom model (run by `mip worker`) and follow its jobs."
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (with ids) for scripts.")]
ModelArg = Annotated[str, typer.Argument(help="The custom model's id.")]
JobArg = Annotated[str, typer.Argument(help="The training job's id.")]


def _get_model(session: Session, model: str) -> CustomModel:
    from app.custom import service

    return service.get_visible_model(session, None, uuid.UUID(model))


def _job_out(job: TrainingJob) -> dict[str, Any]:
    from app.training.schemas import TrainingJobRead

    return TrainingJobRead.model_validate(job).model_dump(mode="json")


def _params(raw: dict[str, Any]) -> CustomJobParams:
    """:class:`CustomJobParams` from the options given (the others keep their defaults), or
    a 400 naming every bad one."""
    from pydantic import ValidationError

    from app.kit.errors import BadRequest
    from app.training.schemas import CustomJobParams

    try:
        return CustomJobParams.model_validate({k: v for k, v in raw.items() if v is not None})
    except ValidationError as exc:
        problems = [
            f"--{'.'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}"
            for err in exc.errors()
        ]
        raise BadRequest(f"Invalid training settings: {'; '.join(problems)}.") from None


@custom_training_app.command("train")
def train(
    model: ModelArg,
    minutes: Annotated[
        float | None, typer.Option(help="Training time budget in minutes, up to 1440 (default 10).")
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after this many steps (default: the time budget).")
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate (default: the recipe's).")
    ] = None,
    mix_fraction: Annotated[
        float | None,
        typer.Option(help="Share of each batch of general speech, 0 to 0.9 (default 0.3)."),
    ] = None,
    mix_utterances: Annotated[
        int | None,
        typer.Option(help="General-speech utterances mixed in against forgetting (default 1000)."),
    ] = None,
    test_fraction: Annotated[
        float | None,
        typer.Option(
            help="Share of the data set held out to test against the standard model, 0.02 to "
            "0.5 (default 0.1; whole speakers when speakers are given)."
        ),
    ] = None,
    lm_min_count: Annotated[
        int | None,
        typer.Option(
            help="Files that must contain a word pair before the language model keeps it "
            "(default 1)."
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda (default auto).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default 0).")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Queue a training job for a new version; `mip worker` runs it.

    From the confirmed data set: fine-tune the base model, build the language model with the
    vocabulary, test the version against the standard model. Refused when the set is not
    confirmed or holds fewer hours than MIP_CUSTOM_MIN_HOURS."""
    from app.kit.settings import get_settings
    from app.training import custom_jobs

    with exit_on_error():
        params = _params(
            {
                "minutes": minutes,
                "max_steps": max_steps,
                "lr": lr,
                "mix_fraction": mix_fraction,
                "mix_utterances": mix_utterances,
                "test_fraction": test_fraction,
                "lm_min_count": lm_min_count,
                "device": device,
                "seed": seed,
            }
        )
        with cli_session() as session:
            row = _get_model(session, model)
            job = custom_jobs.submit_custom_job(
                session, get_settings(), row, params=params, actor=CLI_ACTOR
            )
            out = _job_out(job)
    if json_output:
        print_json(out)
        return
    console.print(
        f"Queued training job {out['id']} for custom model {row.name}; `mip worker` runs it "
        f"(follow it with `mip custom job {row.id} {out['id']}`)."
    )


@custom_training_app.command("jobs")
def jobs(
    model: ModelArg,
    page: Annotated[int, typer.Option(min=0, max=1_000_000, help="Page number, from 0.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Jobs per page.")] = 100,
    json_output: JsonOpt = False,
) -> None:
    """The model's training jobs, newest first."""
    from app.training import custom_jobs

    with exit_on_error(), cli_session() as session:
        row = _get_model(session, model)
        rows, total = custom_jobs.list_custom_jobs(session, row, limit=limit, offset=page * limit)
        found = [_job_out(r) for r in rows]
    if json_output:
        print_json({"jobs": found, "total": total, "page": page, "limit": limit})
        return
    print_table(
        f"Training jobs of {row.name} ({total})",
        ["id", "status", "progress", "attempts", "worker", "created", "error"],
        [
            [
                j["id"],
                j["status"],
                f"{j['progress']:.0%}",
                j["attempts"],
                j["worker_id"],
                j["created_at"],
                j["error"],
            ]
            for j in found
        ],
    )


@custom_training_app.command("job")
def job(model: ModelArg, job_id: JobArg, json_output: JsonOpt = False) -> None:
    """One training job of the model: status, progress, figures, result or error."""
    from app.training import custom_jobs

    with exit_on_error(), cli_session() as session:
        row = _get_model(session, model)
        out = _job_out(custom_jobs.get_custom_job(session, row, uuid.UUID(job_id)))
    print_json(out) if json_output else print_record(f"Training job {out['id']}", out)


@custom_training_app.command("logs")
def logs(
    model: ModelArg,
    job_id: JobArg,
    after: Annotated[int, typer.Option(min=0, help="Only lines after this line id.")] = 0,
    json_output: JsonOpt = False,
) -> None:
    """A training job's log lines, in order."""
    from app.training import custom_jobs, service
    from app.training.schemas import TrainingJobLogRead, TrainingJobLogs

    with exit_on_error(), cli_session() as session:
        row = _get_model(session, model)
        found = custom_jobs.get_custom_job(session, row, uuid.UUID(job_id))
        lines = service.job_logs(session, found.id, after_id=after)
        out = TrainingJobLogs(
            job_id=found.id, lines=[TrainingJobLogRead.model_validate(line) for line in lines]
        )
    if json_output:
        print_json(out.model_dump(mode="json"))
        return
    for line in out.lines:
        console.print(f"{line.at.isoformat(timespec='seconds')} {line.level:<7} {line.message}")


@custom_training_app.command("cancel")
def cancel(model: ModelArg, job_id: JobArg, json_output: JsonOpt = False) -> None:
    """Cancel a training job: a queued one at once, a running one at its worker's next check.

    The model goes back to where it was."""
    from app.training import custom_jobs, service

    with exit_on_error(), cli_session() as session:
        row = _get_model(session, model)
        found = custom_jobs.get_custom_job(session, row, uuid.UUID(job_id))
        out = _job_out(service.cancel_job(session, found.id, actor=CLI_ACTOR))
    if json_output:
        print_json(out)
    elif out["status"] == "cancelled":
        console.print(f"Training job {out['id']} cancelled.")
    else:
        console.print(f"Training job {out['id']}: cancel requested; its worker stops it shortly.")
