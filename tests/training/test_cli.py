"""``mip train`` and ``mip models`` against a real database, blob directory and model folders."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from app.cli import app as cli
from app.kit.settings import Settings
from app.samples.runtime import open_sample_store
from app.training import promotion, service
from tests.conftest import Database
from tests.training.conftest import (
    ARCHITECTURE,
    BASE_NAME,
    FAILING,
    Packages,
    add_training_set,
    register,
)

runner = CliRunner()


def mip(*args: str) -> Any:
    return runner.invoke(cli, list(args))


def mip_json(*args: str) -> Any:
    result = mip(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class TestHelp:
    @pytest.mark.parametrize(
        ("group", "commands"),
        [
            ("train", ["submit", "list", "show", "logs", "cancel"]),
            ("models", ["list", "show", "promote", "demote", "reject"]),
        ],
    )
    def test_every_command_documents_itself_and_json(self, group: str, commands: list[str]) -> None:
        overview = mip(group, "--help")
        assert overview.exit_code == 0
        for command in commands:
            assert command in overview.stdout
            page = mip(group, command, "--help")
            assert page.exit_code == 0, page.output
            assert "--json" in page.stdout

    def test_worker_can_leave_jobs_alone(self) -> None:
        assert "--no-jobs" in mip("worker", "--help").stdout


class TestTrain:
    def test_submit_list_show_logs_cancel(
        self, db: Database, cli_env: Settings, packages: Packages
    ) -> None:
        add_training_set(db)
        job = mip_json(
            "train",
            "submit",
            "--base",
            "general",
            "--set",
            "medical-en:1",
            "--minutes",
            "5",
            "--max-steps",
            "200",
            "--auto-promote",
            "--name",
            f"{ARCHITECTURE}-medical",
        )
        assert (job["status"], job["base_model"]) == ("queued", packages.base.uuid)
        assert job["hyperparameters"]["auto_promote"] is True
        assert job["hyperparameters"]["max_steps"] == 200
        assert job["hyperparameters"]["name"] == f"{ARCHITECTURE}-medical"
        assert mip_json("train", "list", "--status", "queued")["total"] == 1
        assert mip_json("train", "list", "--status", "running")["total"] == 0
        assert mip_json("train", "show", job["id"])["id"] == job["id"]
        table = mip("train", "list")
        assert job["id"] in table.stdout
        lines = mip_json("train", "logs", job["id"])["lines"]
        assert "queued by cli" in lines[0]["message"]
        assert "queued by cli" in mip("train", "logs", job["id"]).stdout
        assert mip_json("train", "cancel", job["id"])["status"] == "cancelled"
        again = mip("train", "cancel", job["id"])
        assert again.exit_code == 1
        assert isinstance(again.exception, service.JobFinished)

    @pytest.mark.parametrize(
        ("args", "error"),
        [
            (["--minutes", "0"], service.InvalidJob),
            (["--device", "tpu"], service.InvalidJob),
            (["--base", "nova-42"], service.UnknownBaseModel),
        ],
    )
    def test_bad_submissions_change_nothing(
        self, db: Database, cli_env: Settings, args: list[str], error: type[Exception]
    ) -> None:
        add_training_set(db)
        result = mip("train", "submit", "--base", "general", "--set", "medical-en", *args)
        assert result.exit_code == 1
        assert isinstance(result.exception, error)
        assert mip_json("train", "list")["total"] == 0

    def test_unknown_job(self, cli_env: Settings) -> None:
        result = mip("train", "show", "00000000-0000-0000-0000-000000000000")
        assert isinstance(result.exception, service.TrainingJobNotFound)


class TestModels:
    def test_list_show_promote_demote_reject(
        self, db: Database, cli_env: Settings, packages: Packages
    ) -> None:
        store = open_sample_store(cli_env)
        strong = register(db, store, packages.candidates[0])
        weak = register(db, store, packages.candidates[1], FAILING)
        listed = mip_json("models", "list", "--status", "candidate")
        assert listed["total"] == 2
        assert BASE_NAME in mip("models", "list").stdout
        shown = mip_json("models", "show", f"{BASE_NAME}:2030-01-01.2")
        assert shown["policy"]["passed"] is False

        promoted = mip_json("models", "promote", str(strong.id))
        assert promoted["status"] == "promoted"
        assert (cli_env.effective_models_dir / strong.filename).is_file()
        refused = mip("models", "promote", str(weak.id))
        assert isinstance(refused.exception, promotion.PromotionRefused)
        forced = mip_json("models", "promote", str(weak.id), "--force")
        assert forced["replaced_id"] == str(strong.id)
        assert not (cli_env.effective_models_dir / strong.filename).exists()

        assert mip_json("models", "demote", str(weak.id))["status"] == "demoted"
        assert (cli_env.effective_models_dir / strong.filename).is_file()  # restored
        rejected = mip("models", "reject", str(weak.id), "--reason", "worse")
        assert rejected.exit_code == 0, rejected.output
        assert f"Rejected {BASE_NAME} 2030-01-01.2" in rejected.stdout
        assert mip_json("models", "list", "--status", "rejected")["total"] == 1
        bad = mip("models", "list", "--status", "bogus")
        assert isinstance(bad.exception, promotion.InvalidCandidate)
