"""Commands that need no model start without loading the heavy libraries.

Each command runs in a fresh interpreter (``python -m app.cli …``, as the ``mip`` script
does) and reports the modules it loaded. The check is on the import graph, not on a time:
``bench/cli.py`` measures the start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import GROUPS

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "great_expectations", "lhotse", "matplotlib")

_PROBE = """
import json, sys
from app.cli import main
sys.argv = ["mip", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\nLOADED " + json.dumps(sorted(sys.modules)) + "\\n")
"""


def loaded_modules(args: list[str], env: dict[str, str] | None = None) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )
    marker = result.stderr.rfind("LOADED ")
    assert marker >= 0, result.stderr
    return set(json.loads(result.stderr[marker + len("LOADED ") :]))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


class TestStartUp:
    def test_top_level_help_imports_no_domain(self) -> None:
        modules = loaded_modules(["--help"])
        assert heavy_in(modules) == []
        domains = {m.split(".")[1] for m in modules if m.startswith("app.") and "." in m}
        assert domains <= {"cli", "kit"}

    @pytest.mark.parametrize("group", sorted(GROUPS))
    def test_every_group_help_loads_no_heavy_library(self, group: str) -> None:
        assert heavy_in(loaded_modules([group, "--help"])) == []

    @pytest.mark.parametrize(
        "args",
        [
            ["billing", "report", "--help"],
            ["store", "erase", "--help"],
            ["asr", "train-base", "--help"],
            ["curate", "build", "--help"],
            ["train", "submit", "--help"],
        ],
    )
    def test_command_help_loads_no_heavy_library(self, args: list[str]) -> None:
        assert heavy_in(loaded_modules(args)) == []

    def test_a_tenancy_command_loads_tenancy_and_no_heavy_library(self, tmp_path: Path) -> None:
        env = {"MIP_DATA_DIR": str(tmp_path / "var"), "MIP_ENV": "development"}
        subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"],
            cwd=ROOT,
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            timeout=120,
        )
        modules = loaded_modules(["orgs", "list", "--json"], env)
        assert "app.tenancy.cli" in modules
        assert heavy_in(modules) == []
        # Nothing of the domains that need a model or a DataFrame.
        assert not {m for m in modules if m.startswith(("app.training", "app.datasets", "asr"))}

    def test_group_help_texts_are_the_groups_own(self) -> None:
        from typer.testing import CliRunner

        from app.cli import app

        for name, group in GROUPS.items():
            command = group.load(name)
            assert (command.help or "").startswith(group.help.rstrip(".")[:40]), name
            assert CliRunner().invoke(app, [name, "--help"]).exit_code == 0, name
