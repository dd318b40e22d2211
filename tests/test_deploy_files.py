"""The deployment files hold together (no Docker engine needed to check their structure)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML comes with uvicorn[standard]; no stubs

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("api", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            out.append((instruction.upper(), rest.strip()))
    return out


def args_of(dockerfile: list[tuple[str, str]], instruction: str) -> list[str]:
    return [rest for name, rest in dockerfile if name == instruction]


class TestDockerfile:
    def test_multi_stage_with_a_slim_runtime(self, dockerfile: list[tuple[str, str]]) -> None:
        stages = args_of(dockerfile, "FROM")
        assert len(stages) >= 2
        assert stages[0].endswith("AS builder")
        assert stages[-1].endswith("AS runtime")
        (base,) = {a for a in args_of(dockerfile, "ARG") if a.startswith("PYTHON_IMAGE=")}
        assert "3.11" in base
        assert "slim" in base
        assert any("--from=builder" in a for a in args_of(dockerfile, "COPY"))

    def test_runs_as_a_non_root_user(self, dockerfile: list[tuple[str, str]]) -> None:
        users = args_of(dockerfile, "USER")
        assert users
        final_user = users[-1].split(":")[0]
        assert final_user == "mip"
        assert final_user not in {"root", "0"}
        runtime = dockerfile[[n for n, _ in dockerfile].index("FROM", 1) :]
        assert any(n == "RUN" and "useradd" in a and " mip" in a for n, a in runtime)

    def test_healthcheck_polls_healthz_with_python(self, dockerfile: list[tuple[str, str]]) -> None:
        (check,) = args_of(dockerfile, "HEALTHCHECK")
        assert "CMD" in check
        assert "python" in check
        assert "urllib" in check
        assert "/healthz" in check

    def test_exposes_8000_and_migrates_before_serving(
        self, dockerfile: list[tuple[str, str]]
    ) -> None:
        assert args_of(dockerfile, "EXPOSE") == ["8000"]
        (cmd,) = args_of(dockerfile, "CMD")
        assert re.search(r"mip migrate && (exec )?mip serve --host 0\.0\.0\.0", cmd)

    def test_copies_every_package_the_wheel_needs(self, dockerfile: list[tuple[str, str]]) -> None:
        copied = " ".join(args_of(dockerfile, "COPY"))
        for needed in (
            "pyproject.toml",
            "README.md",
            "app",
            "asr",
            "curation",
            "durable",
            "migrations",
        ):
            assert needed in copied


class TestDockerignore:
    def test_keeps_local_state_and_secrets_out(self) -> None:
        lines = (ROOT / ".dockerignore").read_text().splitlines()
        ignored = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
        assert {".git", ".venv", "var", ".env", "tests"} <= ignored
        # The build needs these, so they must not be ignored.
        assert not {"app", "migrations", "pyproject.toml", "README.md"} & ignored


class TestCompose:
    def test_services(self, compose: dict[str, Any]) -> None:
        assert set(compose["services"]) == {"api", "worker", "postgres", "minio", "minio-init"}
        assert compose["services"]["postgres"]["image"] == "postgres:16"
        assert "minio/minio" in compose["services"]["minio"]["image"]

    @pytest.mark.parametrize("name", ["postgres", "minio"])
    def test_backing_services_have_healthchecks(self, compose: dict[str, Any], name: str) -> None:
        check = compose["services"][name]["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"}
        assert check["retries"] >= 1

    def test_api_and_worker_share_the_image_and_settings(self, compose: dict[str, Any]) -> None:
        api, worker = (compose["services"][s] for s in APP_SERVICES)
        assert api["image"] == worker["image"]
        assert api["build"] == worker["build"] == "."
        assert api["environment"] == worker["environment"]
        assert shlex.join(worker["command"]) == "mip worker"
        assert worker["healthcheck"] == {"disable": True}
        assert "command" not in api  # the image's CMD: migrate, then serve
        assert api["ports"] == ["${MIP_PUBLISH_PORT:-8000}:8000"]

    @pytest.mark.parametrize("name", APP_SERVICES)
    def test_environment(self, compose: dict[str, Any], name: str) -> None:
        env = compose["services"][name]["environment"]
        assert env["MIP_DATABASE_URL"].startswith("postgresql://mip:${POSTGRES_PASSWORD")
        assert env["MIP_DATABASE_URL"].endswith("@postgres:5432/mip")
        assert env["MIP_BLOB_URL"] == "s3://mip-samples"
        assert env["MIP_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert env["MIP_ENV"] == "production"

    @pytest.mark.parametrize("name", APP_SERVICES)
    def test_waits_for_healthy_dependencies(self, compose: dict[str, Any], name: str) -> None:
        depends = compose["services"][name]["depends_on"]
        assert depends["postgres"] == {"condition": "service_healthy"}
        assert depends["minio"] == {"condition": "service_healthy"}

    def test_bucket_is_created_before_the_api_starts(self, compose: dict[str, Any]) -> None:
        init = compose["services"]["minio-init"]
        assert init["depends_on"]["minio"] == {"condition": "service_healthy"}
        assert "mc mb --ignore-existing mip/mip-samples" in " ".join(init["command"])
        assert init["restart"] == "no"
        api_depends = compose["services"]["api"]["depends_on"]
        assert api_depends["minio-init"] == {"condition": "service_completed_successfully"}
        assert compose["services"]["worker"]["depends_on"]["api"] == {
            "condition": "service_healthy"
        }

    def test_secrets_are_required_not_defaulted(self, compose: dict[str, Any]) -> None:
        text = (ROOT / "docker-compose.yml").read_text()
        for secret in (
            "POSTGRES_PASSWORD",
            "MINIO_ROOT_USER",
            "MINIO_ROOT_PASSWORD",
            "MIP_SAMPLING_SECRET",
        ):
            uses = re.findall(r"\$\{" + secret + r"(:?[?-])", text)
            assert uses
            assert set(uses) == {":?"}, f"{secret} must have no default"
        assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
            "${POSTGRES_PASSWORD:?"
        )

    def test_data_lives_in_named_volumes(self, compose: dict[str, Any]) -> None:
        assert set(compose["volumes"]) == {"mip-data", "postgres-data", "minio-data"}
        assert (
            "postgres-data:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]
        )
        assert "minio-data:/data" in compose["services"]["minio"]["volumes"]
