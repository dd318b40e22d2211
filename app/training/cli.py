"""``mip train`` (submit, list, show, logs, cancel) and ``mip models`` (candidates, promotion).

mip train submit --base general --set medical-en:3 --minutes 30 --auto-promote
mip models promote ctcconformer-medical:2026-11-21.3
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer

from app.kit.cli import CLI_ACTOR, cli_session, console, print_json, print_record, print_table
from app.kit.settings import Settings, get_settings
from app.samples.runtime import open_sample_store
from app.tables.training import ModelVersion
from app.training import promotion, service
from app.training.schemas import ModelVersionRead, TrainingJobLogRead, TrainingJobRead

train_app = typer.Typer(help="Fine-tuning jobs: submit, follow, cancel (run by `mip worker`).")
models_app = typer.Typer(help="Model versions trained here: inspect, promote, demote, reject.")

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
JobId = Annotated[uuid.UUID, typer.Argument(help="Training job id.")]
VersionRef = Annotated[str, typer.Argument(help="Model version id, package uuid or NAME:VERSION.")]


def _job_record(job: TrainingJobRead) -> dict[str, Any]:
    return job.model_dump(mode="json")


def _print_job(job: TrainingJobRead, json_output: bool) -> None:
    if json_output:
        print_json(_job_record(job))
    else:
        print_record(f"Training job {job.id}", _job_record(job))


@train_app.command("submit")
def submit(
    base: Annotated[str, typer.Option("--base", help="Served base model: name, alias or uuid.")],
    training_set: Annotated[
        str, typer.Option("--set", help="Training set: NAME (latest), NAME:VERSION or id.")
    ],
    minutes: Annotated[float, typer.Option(help="Training time budget (0 < m <= 1440).")] = 10,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many steps.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    mix_fraction: Annotated[
        float, typer.Option(help="Share of general speech mixed in (0..0.9), against forgetting.")
    ] = 0.3,
    mix_utterances: Annotated[int, typer.Option(help="General-speech utterances to mix.")] = 1000,
    lm_min_count: Annotated[
        int, typer.Option(help="Samples that must share a word pair before the LM keeps it.")
    ] = 3,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    auto_promote: Annotated[
        bool, typer.Option("--auto-promote", help="Promote the result if it passes the policy.")
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="Candidate model name (default: the base model's).")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Queue a fine-tuning job of a served model on a (not tainted) training set."""
    raw: dict[str, Any] = {
        "minutes": minutes,
        "mix_fraction": mix_fraction,
        "mix_utterances": mix_utterances,
        "lm_min_count": lm_min_count,
        "device": device,
        "seed": seed,
        "auto_promote": auto_promote,
    }
    optional = {"max_steps": max_steps, "lr": lr, "name": name}
    raw.update({k: v for k, v in optional.items() if v is not None})
    params = service.parse_params(raw)
    with cli_session() as session:
        job = service.submit_job(
            session,
            get_settings(),
            base_model=base,
            training_set=training_set,
            hyperparameters=params,
            actor=CLI_ACTOR,
        )
        read = TrainingJobRead.model_validate(job)
    if json_output:
        print_json(_job_record(read))
    else:
        console.print(f"Queued training job {read.id} (base {read.base_model}).")


@train_app.command("list")
def list_jobs(
    status: Annotated[
        str | None, typer.Option(help="queued, running, succeeded, failed or cancelled.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 100,
    json_output: JsonOption = False,
) -> None:
    """Training jobs, newest first."""
    with cli_session() as session:
        rows, total = service.list_jobs(session, status=status, limit=limit)
        jobs = [TrainingJobRead.model_validate(r) for r in rows]
    if json_output:
        print_json({"jobs": [_job_record(j) for j in jobs], "total": total})
        return
    print_table(
        f"Training jobs ({total})",
        ["id", "status", "progress", "attempts", "worker", "created", "error"],
        [
            [j.id, j.status, f"{j.progress:.0%}", j.attempts, j.worker_id, j.created_at, j.error]
            for j in jobs
        ],
    )


@train_app.command("show")
def show(job_id: JobId, json_output: JsonOption = False) -> None:
    """One training job: status, progress, metrics, result or error."""
    with cli_session() as session:
        job = TrainingJobRead.model_validate(service.get_job_or_raise(session, job_id))
    _print_job(job, json_output)


@train_app.command("logs")
def logs(
    job_id: JobId,
    after: Annotated[int, typer.Option(min=0, help="Only lines after this line id.")] = 0,
    json_output: JsonOption = False,
) -> None:
    """The job's log lines in order."""
    with cli_session() as session:
        lines = [
            TrainingJobLogRead.model_validate(line)
            for line in service.job_logs(session, job_id, after_id=after, limit=10_000)
        ]
    if json_output:
        print_json(
            {"job_id": str(job_id), "lines": [line.model_dump(mode="json") for line in lines]}
        )
        return
    for line in lines:
        console.print(f"{line.at.isoformat(timespec='seconds')} {line.level:<7} {line.message}")


@train_app.command("cancel")
def cancel(job_id: JobId, json_output: JsonOption = False) -> None:
    """Cancel a job: a queued one at once, a running one at its executor's next check."""
    with cli_session() as session:
        job = TrainingJobRead.model_validate(service.cancel_job(session, job_id, actor=CLI_ACTOR))
    if json_output:
        print_json(_job_record(job))
    elif job.status == "cancelled":
        console.print(f"Training job {job.id} cancelled.")
    else:
        console.print(f"Training job {job.id}: cancel requested; its worker stops it shortly.")


# --- mip models ---


def version_read(version: ModelVersion, settings: Settings) -> ModelVersionRead:
    return ModelVersionRead.of(version, policy=promotion.policy_of(version, settings))


def _version_record(version: ModelVersionRead) -> dict[str, Any]:
    return version.model_dump(mode="json")


def _print_version(version: ModelVersionRead, json_output: bool, message: str) -> None:
    if json_output:
        print_json(_version_record(version))
    else:
        console.print(message)


@models_app.command("list")
def list_versions(
    name: Annotated[str | None, typer.Option(help="Only versions of this model name.")] = None,
    status: Annotated[
        str | None, typer.Option(help="candidate, promoted, demoted or rejected.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 100,
    json_output: JsonOption = False,
) -> None:
    """Model versions produced by training jobs, newest first, with their policy verdict."""
    settings = get_settings()
    with cli_session() as session:
        rows, total = promotion.list_versions(session, name=name, status=status, limit=limit)
        versions = [version_read(r, settings) for r in rows]
    if json_output:
        print_json({"versions": [_version_record(v) for v in versions], "total": total})
        return
    print_table(
        f"Model versions ({total})",
        ["id", "name", "version", "status", "policy", "created"],
        [
            [
                v.id,
                v.name,
                v.version,
                v.status,
                "pass" if v.policy and v.policy.get("passed") else "fail",
                v.created_at,
            ]
            for v in versions
        ],
    )


@models_app.command("show")
def show_version(ref: VersionRef, json_output: JsonOption = False) -> None:
    """One model version: metrics, policy verdict (every group's WER delta), lineage."""
    settings = get_settings()
    with cli_session() as session:
        version = version_read(promotion.get_version_or_raise(session, ref), settings)
    if json_output:
        print_json(_version_record(version))
    else:
        print_record(f"{version.name} {version.version}", _version_record(version))


@models_app.command("promote")
def promote(
    ref: VersionRef,
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if the policy fails (audited).")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Serve the version (copied into the models folder); the previous one steps down."""
    settings = get_settings()
    with cli_session() as session:
        row = promotion.promote(
            session, open_sample_store(settings), settings, ref, actor=CLI_ACTOR, force=force
        )
        version = version_read(row, settings)
    _print_version(version, json_output, f"Promoted {version.name} {version.version}.")


@models_app.command("demote")
def demote(ref: VersionRef, json_output: JsonOption = False) -> None:
    """Stop serving the version; the one it replaced (or the base model) serves again."""
    settings = get_settings()
    with cli_session() as session:
        row = promotion.demote(session, open_sample_store(settings), settings, ref, actor=CLI_ACTOR)
        version = version_read(row, settings)
    _print_version(version, json_output, f"Demoted {version.name} {version.version}.")


@models_app.command("reject")
def reject(
    ref: VersionRef,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit log).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Mark a candidate as never to be served."""
    settings = get_settings()
    with cli_session() as session:
        row = promotion.reject(session, ref, actor=CLI_ACTOR, reason=reason)
        version = version_read(row, settings)
    _print_version(version, json_output, f"Rejected {version.name} {version.version}.")


@models_app.command("flag-tainted")
def flag_tainted(json_output: JsonOption = False) -> None:
    """Flag versions trained on a tainted training set (`mip worker` does it periodically).

    A flagged version cannot be promoted; a served one is also demoted when
    MIP_TAINTED_MODEL_POLICY=demote.
    """
    settings = get_settings()
    with cli_session() as session:
        flagged = promotion.flag_tainted_versions(
            session, open_sample_store(settings), settings, actor=CLI_ACTOR
        )
        rows = [
            {
                "id": str(v.id),
                "name": v.name,
                "version": v.version,
                "status": v.status,
                "reason": v.taint_reason,
            }
            for v in flagged
        ]
    if json_output:
        print_json(rows)
        return
    print_table(
        "Flagged model versions",
        ["id", "name", "version", "status", "reason"],
        [list(row.values()) for row in rows],
    )
